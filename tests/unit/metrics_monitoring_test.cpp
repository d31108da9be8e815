// The shipped dashboard and alert rules (deploy/monitoring/) name only metrics the controller
// exports, so neither rots when a metric is renamed; every alert has a severity, a summary and
// a runbook section that exists.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "runtime/json/value.hpp"
#include "tests/support/files.hpp"
#include "tests/support/metrics_exercise.hpp"

namespace {

namespace fs = std::filesystem;

using tidesync::test::source_dir;

std::string slurp(const fs::path& p) {
  return tidesync::test::read_file(p);
}

// Every family the registry exports ("# TYPE name kind" lines).
std::set<std::string> exported() {
  std::set<std::string> out;
  std::istringstream in(tidesync::test::every_metric_text());
  for (std::string line; std::getline(in, line);)
    if (line.rfind("# TYPE ", 0) == 0) out.insert(line.substr(7, line.find(' ', 7) - 7));
  return out;
}

// The metric names an expression uses (histogram series map to their family).
std::set<std::string> used(const std::string& expr) {
  static const std::regex name(R"(\b((?:tidesync|controller_runtime|workqueue)_[a-z_]+))");
  std::set<std::string> out;
  for (std::sregex_iterator it(expr.begin(), expr.end(), name), end; it != end; ++it) {
    std::string n = (*it)[1];
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      const std::string s(suffix);
      if (n.size() > s.size() && n.compare(n.size() - s.size(), s.size(), s) == 0 &&
          n.find("_seconds") != std::string::npos)
        n = n.substr(0, n.size() - s.size());
    }
    out.insert(n);
  }
  return out;
}

}  // namespace

TEST(Monitoring, TheDashboardUsesExportedMetrics) {
  auto families = exported();
  ASSERT_TRUE(families.count("tidesync_syncs_total"));
  auto dash =
      tidesync::json::parse(slurp(source_dir() / "deploy/monitoring/grafana-dashboard.json"));
  ASSERT_TRUE(dash.has_value()) << dash.error().message;
  size_t exprs = 0;
  std::set<std::string> seen;
  for (const auto& panel : dash->at("panels")->as_array())
    for (const auto& t : panel.at("targets")->as_array()) {
      ++exprs;
      for (const auto& n : used(std::string(t.get_string("expr")))) {
        seen.insert(n);
        EXPECT_TRUE(families.count(n))
            << panel.get_string("title") << ": " << n << " is not exported";
      }
    }
  EXPECT_GE(exprs, 20u);
  // The PodFilesystemSync, lock and watch families are on it.
  for (const char* n : {"tidesync_pfs_reports_total", "tidesync_locks_held", "workqueue_depth",
                        "tidesync_watch_reconnects_total"})
    EXPECT_TRUE(seen.count(n)) << n;
}

TEST(Monitoring, EveryAlertUsesExportedMetricsAndHasARunbookSection) {
  auto families = exported();
  auto rules = YAML::LoadFile((source_dir() / "deploy/monitoring/prometheus-rules.yaml").string());
  EXPECT_EQ(rules["kind"].as<std::string>(), "PrometheusRule");
  const auto runbook = slurp(source_dir() / "docs/runbook.md");
  size_t alerts = 0;
  for (const auto& group : rules["spec"]["groups"])
    for (const auto& rule : group["rules"]) {
      ++alerts;
      const auto alert = rule["alert"].as<std::string>();
      const auto expr = rule["expr"].as<std::string>();
      for (const auto& n : used(expr))
        EXPECT_TRUE(families.count(n)) << alert << ": " << n << " is not exported";
      EXPECT_FALSE(used(expr).empty()) << alert;
      EXPECT_TRUE(rule["for"]) << alert;
      const auto severity = rule["labels"]["severity"].as<std::string>();
      EXPECT_TRUE(severity == "warning" || severity == "critical") << alert;
      EXPECT_FALSE(rule["annotations"]["summary"].as<std::string>().empty()) << alert;
      std::string anchor = alert;
      for (auto& c : anchor)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      EXPECT_EQ(rule["annotations"]["runbook"].as<std::string>(), "docs/runbook.md#" + anchor);
      EXPECT_NE(runbook.find("\n## " + alert + "\n"), std::string::npos)
          << "docs/runbook.md has no section " << alert;
    }
  EXPECT_GE(alerts, 6u);
}
