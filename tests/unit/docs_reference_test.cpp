// The reference docs stay complete (docs/crds/README.md, "How the reference is checked"):
//
// - every field under spec and status of every served version of every CRD in deploy/crds/
//   has a row in a field table of the CRD's reference page (docs/crds/README.md names the
//   page of each kind), and every row of those tables names a field that exists;
// - each page has, for each kind it covers, a ```yaml example that the CRD schema accepts
//   without pruning anything and that the controller's parser accepts without a warning;
// - docs/metrics.md lists exactly the metric families the registry exports, with their type
//   and labels;
// - docs/policy-configmap.md lists exactly the keys the DataSync policy parser reads, with
//   their defaults, and the problem messages it quotes are the parser's own words.
//
// Field paths: `spec.schedule`, `spec.source.s3.bucket`; `[]` steps into the items of an
// array (`status.conditions[].reason`), `*` into the values of a map of objects.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "actors/datasync_logic.hpp"
#include "config/bucketsync.hpp"
#include "config/datasync.hpp"
#include "config/podfilesystemsync.hpp"
#include "config/sharedconfig.hpp"
#include "config/sharedvolume.hpp"
#include "runtime/apiserver/manifest.hpp"
#include "runtime/apiserver/schema.hpp"
#include "runtime/json/value.hpp"
#include "tests/support/files.hpp"
#include "tests/support/metrics_exercise.hpp"

namespace {

namespace fs = std::filesystem;
namespace json = tidesync::json;
namespace apiserver = tidesync::apiserver;

using tidesync::test::source_dir;

std::string slurp(const fs::path& p) {
  return tidesync::test::read_file(p);
}

std::string trim(std::string s) {
  auto space = [](unsigned char c) { return std::isspace(c) != 0; };
  while (!s.empty() && space(s.back()))
    s.pop_back();
  size_t b = 0;
  while (b < s.size() && space(s[b]))
    ++b;
  return s.substr(b);
}

std::string lower(std::string s) {
  for (auto& c : s)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// The `code spans` of a piece of Markdown, in order.
std::vector<std::string> code_spans(const std::string& text) {
  std::vector<std::string> out;
  size_t i = 0;
  while ((i = text.find('`', i)) != std::string::npos) {
    size_t e = text.find('`', i + 1);
    if (e == std::string::npos) break;
    out.push_back(text.substr(i + 1, e - i - 1));
    i = e + 1;
  }
  return out;
}

// Whether `word` occurs in `text` with no letter or digit on either side.
bool has_word(const std::string& text, const std::string& word) {
  for (size_t i = text.find(word); i != std::string::npos; i = text.find(word, i + 1)) {
    auto alnum = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; };
    bool left = i == 0 || !alnum(text[i - 1]);
    bool right = i + word.size() == text.size() || !alnum(text[i + word.size()]);
    if (left && right) return true;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// The CRDs

struct crd_version {
  std::string name;
  json::value schema;              // openAPIV3Schema
  std::vector<std::string> paths;  // every field under spec and status, in schema order
};

struct crd {
  std::string file;  // deploy/crds/...
  std::string group;
  std::string kind;
  std::vector<crd_version> versions;  // the served ones
};

void collect_paths(const json::value& schema, const std::string& path,
                   std::vector<std::string>& out) {
  if (const auto* props = schema.at("properties"); props && props->is_object())
    for (const auto& [name, sub] : props->as_object()) {
      std::string p = path + "." + name;
      out.push_back(p);
      collect_paths(sub, p, out);
    }
  if (const auto* items = schema.at("items"); items && items->is_object())
    collect_paths(*items, path + "[]", out);
  if (const auto* values = schema.at("additionalProperties"); values && values->is_object())
    collect_paths(*values, path + ".*", out);
}

std::vector<crd> load_crds() {
  std::vector<crd> out;
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(source_dir() / "deploy/crds"))
    if (e.path().extension() == ".yaml") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    const std::string rel = "deploy/crds/" + f.filename().string();
    auto docs = apiserver::parse_manifests(slurp(f), rel);
    EXPECT_TRUE(docs.has_value()) << (docs ? "" : docs.error().message);
    if (!docs) continue;
    for (const auto& d : *docs) {
      if (d.object.get_string("kind") != "CustomResourceDefinition") continue;
      crd c;
      c.file = rel;
      const auto* spec = d.object.at("spec");
      c.group = std::string(spec->get_string("group"));
      c.kind = std::string(spec->at("names")->get_string("kind"));
      for (const auto& v : spec->at("versions")->as_array()) {
        if (!v.get_bool("served")) continue;
        crd_version cv;
        cv.name = std::string(v.get_string("name"));
        const auto* schema = v.at_path({"schema", "openAPIV3Schema"});
        EXPECT_NE(schema, nullptr) << rel << " " << cv.name << " has no openAPIV3Schema";
        if (!schema) continue;
        cv.schema = *schema;
        for (const char* top : {"spec", "status"})
          if (const auto* s = schema->at_path({"properties", top}))
            collect_paths(*s, top, cv.paths);
        c.versions.push_back(std::move(cv));
      }
      out.push_back(std::move(c));
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Markdown, as far as the reference needs it

struct table_row {
  int line = 0;
  std::vector<std::string> header;  // lower-cased header cells of the row's table
  std::vector<std::string> cells;
  std::set<std::string> kinds;     // the kinds its section is about (see section_kinds)
  std::vector<std::string> bases;  // the field paths its section is about
};

struct code_block {
  int line = 0;  // of the opening fence
  std::string info;
  std::string text;
};

struct markdown {
  std::vector<table_row> rows;
  std::vector<code_block> blocks;
};

// Table cells, split at unescaped '|' (GitHub splits inside code spans too: write `\|`).
std::vector<std::string> split_cells(const std::string& line) {
  std::vector<std::string> cells;
  std::string cell;
  std::string s = trim(line);
  if (!s.empty() && s.front() == '|') s.erase(0, 1);
  if (!s.empty() && s.back() == '|' && (s.size() < 2 || s[s.size() - 2] != '\\')) s.pop_back();
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size() && s[i + 1] == '|') {
      cell += '|';
      ++i;
    } else if (s[i] == '|') {
      cells.push_back(trim(cell));
      cell.clear();
    } else {
      cell += s[i];
    }
  }
  cells.push_back(trim(cell));
  return cells;
}

// The field paths a heading names: `spec...`/`status...` code spans, else the word "spec" or
// "status" ("## BucketSyncPolicy spec", "## Status").
std::vector<std::string> heading_bases(const std::string& heading) {
  std::vector<std::string> out;
  for (const auto& span : code_spans(heading))
    for (const char* top : {"spec", "status"}) {
      std::string t(top);
      if (span == t || starts_with(span, t + ".") || starts_with(span, t + "["))
        out.push_back(span);
    }
  if (!out.empty()) return out;
  std::string l = lower(heading);
  for (const char* top : {"spec", "status"})
    if (has_word(l, top)) out.emplace_back(top);
  return out;
}

// Reads the headings, tables and fenced code blocks of `text`. A table row belongs to the
// section of the nearest heading above it; its kinds are those named by the nearest enclosing
// heading that names any of `kinds` (all of them when none does), its bases those of the
// nearest enclosing heading that has any.
markdown read_markdown(const std::string& text, const std::vector<std::string>& kinds) {
  struct heading {
    int level;
    std::set<std::string> kinds;
    std::vector<std::string> bases;
  };
  markdown md;
  std::vector<heading> stack;
  std::istringstream in(text);
  std::string line;
  int n = 0;
  std::optional<code_block> block;
  std::string fence;
  std::vector<std::string> header;
  bool in_table = false;
  while (std::getline(in, line)) {
    ++n;
    std::string t = trim(line);
    if (block) {
      if (starts_with(t, fence) && trim(t.substr(fence.size())).empty()) {
        md.blocks.push_back(std::move(*block));
        block.reset();
      } else {
        block->text += line + "\n";
      }
      continue;
    }
    if (starts_with(t, "```") || starts_with(t, "~~~")) {
      size_t len = t.find_first_not_of(t[0]);
      fence = t.substr(0, len == std::string::npos ? t.size() : len);
      block = code_block{n, trim(t.substr(fence.size())), {}};
      in_table = false;
      continue;
    }
    if (!t.empty() && t[0] == '#') {
      size_t level = t.find_first_not_of('#');
      if (level != std::string::npos && t[level] == ' ') {
        heading h{static_cast<int>(level), {}, heading_bases(t.substr(level))};
        for (const auto& k : kinds)
          if (has_word(t, k)) h.kinds.insert(k);
        while (!stack.empty() && stack.back().level >= h.level)
          stack.pop_back();
        stack.push_back(std::move(h));
      }
      in_table = false;
      continue;
    }
    if (t.empty() || t[0] != '|') {
      in_table = false;
      continue;
    }
    auto cells = split_cells(t);
    if (!in_table) {
      header.clear();
      for (const auto& c : cells)
        header.push_back(lower(c));
      in_table = true;
      continue;
    }
    if (std::all_of(t.begin(), t.end(),
                    [](char c) { return c == '|' || c == '-' || c == ':' || c == ' '; }))
      continue;  // the delimiter row
    table_row row{n, header, std::move(cells), {}, {}};
    for (auto it = stack.rbegin(); it != stack.rend(); ++it)
      if (!it->kinds.empty()) {
        row.kinds = it->kinds;
        break;
      }
    if (row.kinds.empty()) row.kinds.insert(kinds.begin(), kinds.end());
    for (auto it = stack.rbegin(); it != stack.rend(); ++it)
      if (!it->bases.empty()) {
        row.bases = it->bases;
        break;
      }
    md.rows.push_back(std::move(row));
  }
  EXPECT_FALSE(block) << "a code block opened on line " << (block ? block->line : 0)
                      << " is never closed";
  return md;
}

// The column of a table whose header is `name` (or the header's size).
size_t column(const table_row& row, const std::string& name) {
  return static_cast<size_t>(std::find(row.header.begin(), row.header.end(), name) -
                             row.header.begin());
}

// ---------------------------------------------------------------------------------------------
// The reference pages (docs/crds/README.md: a table "| kind | page | ... |")

std::map<std::string, std::string> reference_pages(const std::set<std::string>& kinds) {
  const std::string index = "docs/crds/README.md";
  std::map<std::string, std::string> out;
  auto md = read_markdown(slurp(source_dir() / index), {});
  static const std::regex link(R"(\]\(([^)#]+\.md)\))");
  for (const auto& row : md.rows) {
    if (row.header.empty() || row.header[0] != "kind") continue;
    auto spans = code_spans(row.cells[0]);
    std::string kind = trim(spans.empty() ? row.cells[0] : spans[0]);
    std::smatch m;
    std::string rest;
    for (size_t i = 1; i < row.cells.size(); ++i)
      rest += row.cells[i] + " ";
    if (!std::regex_search(rest, m, link)) {
      ADD_FAILURE() << index << ":" << row.line << ": the row of " << kind
                    << " links no page (write [bucketsync.md](bucketsync.md))";
      continue;
    }
    EXPECT_TRUE(kinds.count(kind)) << index << ":" << row.line << ": " << kind
                                   << " is not the kind of any CRD in deploy/crds/";
    EXPECT_FALSE(out.count(kind)) << index << ":" << row.line << ": " << kind << " twice";
    std::string page = "docs/crds/" + std::string(m[1]);
    EXPECT_TRUE(fs::exists(source_dir() / page))
        << index << ":" << row.line << ": " << page << " does not exist";
    out[kind] = page;
  }
  return out;
}

// The controller's parser of each kind: the error and the warnings it gives an object.
using parser = std::function<std::vector<std::string>(const json::value&)>;

template <class Parse>
parser parser_of(Parse parse) {
  return [parse](const json::value& obj) {
    std::vector<std::string> problems;
    auto r = parse(obj, &problems);
    if (!r) problems.insert(problems.begin(), r.error().message);
    return problems;
  };
}

const std::map<std::string, parser>& parsers() {
  namespace config = tidesync::config;
  static const std::map<std::string, parser> p = {
      {"BucketSyncPolicy", parser_of([](const json::value& o, std::vector<std::string>* w) {
         return config::parse_bucket_sync_policy(o, w);
       })},
      {"BucketSync", parser_of([](const json::value& o, std::vector<std::string>* w) {
         return config::parse_bucket_sync(o, w);
       })},
      {"DataSync", parser_of([](const json::value& o, std::vector<std::string>* w) {
         return config::parse_datasync(o, w);
       })},
      {"PodFilesystemSync", parser_of([](const json::value& o, std::vector<std::string>* w) {
         return config::parse_podfilesystemsync(o, w);
       })},
      {"SharedConfig", parser_of([](const json::value& o, std::vector<std::string>*) {
         return config::parse_sharedconfig(o);  // it has no warnings
       })},
      {"SharedVolume", parser_of([](const json::value& o, std::vector<std::string>* w) {
         return config::parse_sharedvolume(o, w);
       })},
      {"ClusterSharedVolume", parser_of([](const json::value& o, std::vector<std::string>* w) {
         return config::parse_sharedvolume(o, w);
       })},
  };
  return p;
}

// The members of `before` that `after` (its pruned copy) lacks, as field paths.
void pruned_fields(const json::value& before, const json::value& after, const std::string& path,
                   std::vector<std::string>& out) {
  if (before.is_object() && after.is_object()) {
    for (const auto& [k, v] : before.as_object()) {
      std::string p = path.empty() ? k : path + "." + k;
      if (const auto* a = after.at(k))
        pruned_fields(v, *a, p, out);
      else
        out.push_back(p);
    }
  } else if (before.is_array() && after.is_array()) {
    const auto& b = before.as_array();
    const auto& a = after.as_array();
    for (size_t i = 0; i < b.size() && i < a.size(); ++i)
      pruned_fields(b[i], a[i], path + "[" + std::to_string(i) + "]", out);
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------

TEST(DocsReference, EveryCrdFieldHasARowInItsReferencePage) {
  auto crds = load_crds();
  ASSERT_GE(crds.size(), 7u);
  std::set<std::string> kinds;
  for (const auto& c : crds)
    kinds.insert(c.kind);
  auto pages = reference_pages(kinds);

  // page → the CRDs it covers
  std::map<std::string, std::vector<const crd*>> by_page;
  for (const auto& c : crds) {
    auto it = pages.find(c.kind);
    if (it == pages.end()) {
      ADD_FAILURE() << c.file << ": " << c.kind << " has no row in docs/crds/README.md (add \"| "
                    << c.kind << " | [page.md](page.md) | ... |\" and write the page)";
      continue;
    }
    by_page[it->second].push_back(&c);
  }

  size_t checked = 0;
  for (const auto& [page, covered] : by_page) {
    std::vector<std::string> page_kinds;
    for (const auto* c : covered)
      page_kinds.push_back(c->kind);
    auto md = read_markdown(slurp(source_dir() / page), page_kinds);

    // kind → every path of its served versions; kind → the paths its rows document.
    std::map<std::string, std::set<std::string>> fields, documented;
    for (const auto* c : covered)
      for (const auto& v : c->versions)
        fields[c->kind].insert(v.paths.begin(), v.paths.end());

    for (const auto& row : md.rows) {
      if (row.header.empty() || row.header[0] != "field") continue;
      auto spans = code_spans(row.cells[0]);
      EXPECT_FALSE(spans.empty()) << page << ":" << row.line
                                  << ": a field row names no `field` in its first cell";
      bool says_something =
          row.cells.size() >= 3 && std::any_of(row.cells.begin() + 1, row.cells.end(),
                                               [](const std::string& c) { return !c.empty(); });
      for (const auto& span : spans) {
        std::vector<std::string> candidates{span};
        for (const auto& b : row.bases)
          candidates.push_back(b + "." + span);
        bool exists = false;
        for (const auto& k : row.kinds)
          for (const auto& p : candidates)
            if (fields[k].count(p)) {
              documented[k].insert(p);
              exists = true;
            }
        std::string under;
        for (const auto& b : row.bases)
          under += (under.empty() ? " (under `" : "`, `") + b;
        if (!under.empty()) under += "`)";
        EXPECT_TRUE(exists) << page << ":" << row.line << ": `" << span << "`" << under
                            << " is not a field of " << ::testing::PrintToString(row.kinds)
                            << " in deploy/crds/: a renamed or removed field?";
        EXPECT_TRUE(says_something) << page << ":" << row.line << ": the row of `" << span
                                    << "` is empty: give its type, default and meaning";
      }
    }
    for (const auto* c : covered)
      for (const auto& v : c->versions)
        for (const auto& p : v.paths) {
          ++checked;
          EXPECT_TRUE(documented[c->kind].count(p))
              << page << " does not document `" << p << "` of " << c->kind << " " << v.name << " ("
              << c->file << "): add a row to a field table (\"| field | type | ... |\")"
              << " under a heading about " << c->kind;
        }
  }
  EXPECT_GE(checked, 300u);
}

TEST(DocsReference, EveryReferencePageHasAValidExampleOfEachKind) {
  auto crds = load_crds();
  std::set<std::string> kinds;
  std::map<std::string, const crd*> by_kind;
  for (const auto& c : crds) {
    kinds.insert(c.kind);
    by_kind[c.kind] = &c;
  }
  auto pages = reference_pages(kinds);
  std::map<std::string, std::vector<std::string>> page_kinds;
  for (const auto& [kind, page] : pages)
    page_kinds[page].push_back(kind);

  for (const auto& [page, covered] : page_kinds) {
    auto md = read_markdown(slurp(source_dir() / page), covered);
    std::map<std::string, int> examples;  // "Kind group/version" → valid examples
    for (const auto& b : md.blocks) {
      if (b.info != "yaml") continue;
      const std::string where = page + ":" + std::to_string(b.line);
      auto docs = apiserver::parse_manifests(b.text, where);
      if (!docs) {
        ADD_FAILURE() << where << ": the yaml block does not parse: " << docs.error().message;
        continue;
      }
      for (const auto& d : *docs) {
        const auto& obj = d.object;
        std::string kind(obj.get_string("kind"));
        std::string api(obj.get_string("apiVersion"));
        if (kind.empty() || api.empty()) continue;  // a fragment
        EXPECT_FALSE(obj.at_path({"metadata", "name"}) == nullptr)
            << d.source << ": " << kind << " has no metadata.name (a complete manifest needs one;"
            << " leave out apiVersion or kind to show a fragment)";
        auto c = by_kind.find(kind);
        if (c == by_kind.end() || !starts_with(api, c->second->group + "/")) continue;
        const std::string version = api.substr(c->second->group.size() + 1);
        auto v = std::find_if(c->second->versions.begin(), c->second->versions.end(),
                              [&](const crd_version& cv) { return cv.name == version; });
        if (v == c->second->versions.end()) {
          ADD_FAILURE() << d.source << ": " << api << " is not a served version of " << kind;
          continue;
        }
        bool valid = true;
        json::value pruned = obj;
        apiserver::prune_custom_resource(pruned, v->schema);
        std::vector<std::string> unknown;
        pruned_fields(obj, pruned, "", unknown);
        for (const auto& f : unknown) {
          ADD_FAILURE() << d.source << ": " << kind << " " << f
                        << " is not in the schema (the API server would drop it)";
          valid = false;
        }
        apiserver::default_custom_resource(pruned, v->schema);
        for (const auto& cause : apiserver::validate_custom_resource(pruned, v->schema)) {
          ADD_FAILURE() << d.source << ": " << kind << " " << cause.field << ": " << cause.message;
          valid = false;
        }
        auto parse = parsers().find(kind);
        if (parse == parsers().end()) {
          ADD_FAILURE() << "no parser for " << kind << ": add it to parsers() in " << __FILE__;
          valid = false;
        } else {
          for (const auto& problem : parse->second(obj)) {
            ADD_FAILURE() << d.source << ": the controller says: " << problem;
            valid = false;
          }
        }
        if (valid) ++examples[kind + " " + api];
      }
    }
    for (const auto& kind : covered)
      for (const auto& v : by_kind[kind]->versions) {
        const std::string api = by_kind[kind]->group + "/" + v.name;
        EXPECT_GE(examples[kind + " " + api], 1) << page << " has no valid ```yaml example of "
                                                 << kind << " (apiVersion: " << api << ")";
      }
  }
}

// ---------------------------------------------------------------------------------------------
// docs/metrics.md

namespace {

struct family {
  std::string type;
  std::set<std::string> labels;  // without the histograms' `le`
};

std::map<std::string, family> exported_families() {
  std::map<std::string, family> out;
  std::istringstream in(tidesync::test::every_metric_text());
  static const std::regex label(R"re(([a-zA-Z_][a-zA-Z0-9_]*)=")re");
  for (std::string line; std::getline(in, line);) {
    if (starts_with(line, "# TYPE ")) {
      std::istringstream f(line.substr(7));
      std::string name, type;
      f >> name >> type;
      out[name].type = type;
      continue;
    }
    if (line.empty() || line[0] == '#') continue;
    std::string sample = line.substr(0, line.find_first_of("{ "));
    std::string name = sample;  // a histogram's series map to their family
    for (std::string suffix : {"_bucket", "_sum", "_count"})
      if (sample.size() > suffix.size() &&
          sample.compare(sample.size() - suffix.size(), suffix.size(), suffix) == 0) {
        auto base = out.find(sample.substr(0, sample.size() - suffix.size()));
        if (base != out.end() && base->second.type == "histogram") name = base->first;
      }
    auto f = out.find(name);
    if (f == out.end()) continue;
    auto open = line.find('{');
    if (open == std::string::npos || open > line.find(' ')) continue;
    std::string labels = line.substr(open, line.find('}') - open);
    for (std::sregex_iterator it(labels.begin(), labels.end(), label), end; it != end; ++it)
      if ((*it)[1] != "le") f->second.labels.insert((*it)[1]);
  }
  return out;
}

}  // namespace

TEST(DocsReference, TheMetricsExerciseCoversEveryRegisteredFamily) {
  // Every family runtime/metrics/metrics.cpp registers (.Name("...")) or adds at scrape time
  // (the process_* gauges), so a new metric cannot slip past every_metric_text().
  const std::string file = "runtime/metrics/metrics.cpp";
  const std::string src = slurp(source_dir() / file);
  static const std::regex name(R"re((?:\.Name|gauge)\("([a-z_]+)")re");
  auto families = exported_families();
  size_t found = 0;
  for (std::sregex_iterator it(src.begin(), src.end(), name), end; it != end; ++it, ++found)
    EXPECT_TRUE(families.count((*it)[1]))
        << file << " registers " << (*it)[1]
        << ", which tests/support/metrics_exercise.hpp does not make: call the registry"
           " method that sets it there";
  EXPECT_GE(found, 25u);
}

TEST(DocsReference, TheMetricsPageListsEveryExportedMetric) {
  const std::string page = "docs/metrics.md";
  auto families = exported_families();
  ASSERT_GE(families.size(), 25u);
  auto md = read_markdown(slurp(source_dir() / page), {});
  std::set<std::string> listed;
  for (const auto& row : md.rows) {
    if (row.header.empty() || row.header[0] != "metric") continue;
    const size_t type_col = column(row, "type");
    const size_t labels_col = column(row, "labels");
    ASSERT_LT(labels_col, row.header.size())
        << page << ":" << row.line << ": the table needs columns metric, type, labels";
    ASSERT_LT(type_col, row.header.size()) << page << ":" << row.line;
    auto spans = code_spans(row.cells[0]);
    ASSERT_EQ(spans.size(), 1u) << page << ":" << row.line
                                << ": name one `metric` per row (its type and labels differ)";
    const std::string& n = spans[0];
    EXPECT_TRUE(listed.insert(n).second) << page << ":" << row.line << ": " << n << " twice";
    auto f = families.find(n);
    if (f == families.end()) {
      ADD_FAILURE() << page << ":" << row.line << ": " << n
                    << " is not exported by the registry (runtime/metrics/metrics.cpp)";
      continue;
    }
    std::string type = row.cells.size() > type_col ? lower(row.cells[type_col]) : "";
    EXPECT_EQ(type, f->second.type) << page << ":" << row.line << ": the type of " << n;
    std::set<std::string> labels;
    if (row.cells.size() > labels_col)
      for (const auto& l : code_spans(row.cells[labels_col]))
        labels.insert(l);
    EXPECT_EQ(labels, f->second.labels)
        << page << ":" << row.line << ": the labels of " << n << " (write each as `label`)";
    EXPECT_TRUE(row.cells.size() > 3 && !row.cells.back().empty())
        << page << ":" << row.line << ": say what " << n << " means";
  }
  for (const auto& [n, f] : families)
    EXPECT_TRUE(listed.count(n)) << page << " does not list " << n << " (" << f.type
                                 << "): add a row \"| `" << n << "` | " << f.type
                                 << " | labels | meaning |\"";
}

// ---------------------------------------------------------------------------------------------
// docs/policy-configmap.md

namespace {

tidesync::datasync::policy_result parse_one(const std::string& key, const std::string& value) {
  std::map<std::string, std::string> data{{key, value}};
  return tidesync::datasync::parse_policy(&data);
}

}  // namespace

TEST(DocsReference, ThePolicyPageListsEveryKeyWithItsDefault) {
  const std::string page = "docs/policy-configmap.md";
  auto md = read_markdown(slurp(source_dir() / page), {});
  std::set<std::string> known;
  for (auto k : tidesync::datasync::k_policy_keys)
    known.insert(std::string(k));
  ASSERT_EQ(known.size(), 5u);
  std::set<std::string> listed;
  for (const auto& row : md.rows) {
    if (row.header.empty() || row.header[0] != "key") continue;
    const size_t default_col = column(row, "default");
    ASSERT_LT(default_col, row.header.size())
        << page << ":" << row.line << ": the key table needs a default column";
    auto spans = code_spans(row.cells[0]);
    ASSERT_EQ(spans.size(), 1u) << page << ":" << row.line << ": one `key` per row";
    const std::string& key = spans[0];
    EXPECT_TRUE(listed.insert(key).second) << page << ":" << row.line << ": " << key << " twice";
    // Independent of k_policy_keys: the parser itself must not call the key unknown.
    for (const auto& p : parse_one(key, "1").problems)
      EXPECT_NE(p.what, tidesync::datasync::policy_problem::kind::unknown_key)
          << page << ":" << row.line << ": " << p.message;
    // An unreadable value falls back to the default, which the problem names.
    auto r = parse_one(key, "not a value");
    if (r.problems.size() != 1 || r.problems[0].used.empty()) {
      ADD_FAILURE() << page << ":" << row.line << ": no default of " << key << " to compare";
      continue;
    }
    const std::string& used = r.problems[0].used;
    std::string cell = row.cells.size() > default_col ? row.cells[default_col] : "";
    auto defaults = code_spans(cell);
    EXPECT_TRUE(std::find(defaults.begin(), defaults.end(), used) != defaults.end())
        << page << ":" << row.line << ": the default of " << key << " is `" << used
        << "`, the page says " << cell;
    EXPECT_TRUE(row.cells.size() >= 3 && !row.cells.back().empty())
        << page << ":" << row.line << ": say what " << key << " means";
  }
  for (const auto& k : known)
    EXPECT_TRUE(listed.count(k)) << page << " does not list the key `" << k
                                 << "` that actors/datasync_logic.cpp reads";
  for (const auto& k : listed)
    EXPECT_TRUE(known.count(k)) << page << " lists `" << k
                                << "`, which is not in datasync::k_policy_keys";
}

TEST(DocsReference, ThePolicyPageQuotesTheParsersMessages) {
  // Every line of a ```text block that starts "ConfigMap tidesync-policy: " is a message the
  // parser gives for a ConfigMap holding just that key and value, word for word; together they
  // show every kind of problem for every key.
  const std::string page = "docs/policy-configmap.md";
  const std::string prefix =
      "ConfigMap " + std::string(tidesync::datasync::k_policy_config_map) + ": ";
  auto md = read_markdown(slurp(source_dir() / page), {});
  static const std::regex unknown(R"re(^unknown key "([^"]*)")re");
  static const std::regex invalid(R"re(^([A-Za-z]+) "([^"]*)")re");
  std::set<std::string> keys_shown;
  std::set<std::string> problems_shown;
  size_t quoted = 0;
  for (const auto& b : md.blocks) {
    if (b.info != "text") continue;
    std::istringstream in(b.text);
    int n = b.line;
    for (std::string line; std::getline(in, line);) {
      ++n;
      if (!starts_with(line, prefix)) continue;
      ++quoted;
      std::string rest = line.substr(prefix.size());
      std::smatch m;
      std::string key, value = "1";
      if (std::regex_search(rest, m, unknown)) {
        key = m[1];
        problems_shown.insert("unknown key");
      } else if (std::regex_search(rest, m, invalid)) {
        key = m[1];
        value = m[2];
        keys_shown.insert(key);
      } else {
        ADD_FAILURE() << page << ":" << n << ": not a policy message: " << line;
        continue;
      }
      auto r = parse_one(key, value);
      bool same = std::any_of(r.problems.begin(), r.problems.end(),
                              [&](const auto& p) { return p.message == line; });
      std::string actual;
      for (const auto& p : r.problems)
        actual += "\n  " + p.message;
      EXPECT_TRUE(same) << page << ":" << n << ": the parser does not say\n  " << line << "\nfor "
                        << key << ": \"" << value << "\"; it says:" << actual;
      for (const char* why :
           {"is empty", "is not a whole number", "is out of range", "is not a valid duration",
            "is longer than", "is below", "did you mean", "known keys"})
        if (line.find(why) != std::string::npos) problems_shown.insert(why);
    }
  }
  EXPECT_GE(quoted, 1u) << page << " quotes no message in a ```text block";
  for (auto k : tidesync::datasync::k_policy_keys)
    EXPECT_TRUE(keys_shown.count(std::string(k))) << page << " quotes no message about " << k;
  for (const char* why :
       {"is empty", "is not a whole number", "is out of range", "is not a valid duration",
        "is longer than", "is below", "unknown key", "did you mean", "known keys"})
    EXPECT_TRUE(problems_shown.count(why))
        << page << " quotes no message that says \"" << why << "\"";
}
