// remotePath templates (config/path_template.hpp): the Jinja2 subset, Go-style spellings, errors
// with positions, and the safety of the rendered path.
#include <gtest/gtest.h>

#include <string>

#include "config/path_template.hpp"
#include "runtime/json/value.hpp"

using namespace tidesync;
using namespace tidesync::config;

namespace {

json::value pod(
    const std::string& labels = R"({"app":"press","tier":"web"})",
    const std::string& annotations = R"({"subdir":"uploads","example.com/team":"blue"})") {
  auto v = json::parse(R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":"press-0",
      "namespace":"sites","labels":)" +
                       labels + R"(,"annotations":)" + annotations + "}}");
  EXPECT_TRUE(v.has_value());
  return v ? std::move(*v) : json::value{};
}

std::string render_text(const std::string& text, const json::value& p = pod()) {
  auto t = parse_template(text);
  if (!t) return "parse error: " + t.error().message;
  auto r = render(*t, p);
  return r ? *r : "render error: " + r.error().message;
}

bool fails_with(const std::string& text, const std::string& needle) {
  auto t = parse_template(text);
  if (t) {
    ADD_FAILURE() << text << " parsed";
    return false;
  }
  EXPECT_NE(t.error().message.find(needle), std::string::npos) << t.error().message;
  return t.error().message.find(needle) != std::string::npos;
}

}  // namespace

TEST(PathTemplate, LiteralPathsAreNormalised) {
  EXPECT_EQ(render_text("/example-org-bucket"), "example-org-bucket");
  EXPECT_EQ(render_text("bucket/dir/"), "bucket/dir");
  EXPECT_EQ(render_text("//bucket///dir//"), "bucket/dir");
  auto t = parse_template("bucket/dir");
  ASSERT_TRUE(t.has_value());
  EXPECT_TRUE(t->is_literal());
  ASSERT_EQ(t->parts.size(), 1u);
  EXPECT_EQ(t->parts[0].text, "bucket/dir");
}

TEST(PathTemplate, RendersPodFields) {
  EXPECT_EQ(render_text("b/{{ pod.metadata.namespace }}/{{ pod.metadata.name }}"),
            "b/sites/press-0");
  EXPECT_EQ(render_text("b/{{pod.metadata.name}}"), "b/press-0");
  EXPECT_EQ(render_text("b/{{   pod.metadata.labels[\"app\"]   }}-data"), "b/press-data");
  EXPECT_EQ(render_text("b/{{ pod.metadata.labels['tier'] }}"), "b/web");
  EXPECT_EQ(render_text("b/{{ pod.metadata.annotations[\"example.com/team\"] }}/x"), "b/blue/x");
  EXPECT_EQ(render_text("b/{{ pod.metadata.labels[ \"app\" ] }}"), "b/press");
  auto t = parse_template("a{{ pod.metadata.name }}b");
  ASSERT_TRUE(t.has_value());
  EXPECT_FALSE(t->is_literal());
  ASSERT_EQ(t->parts.size(), 3u);
  EXPECT_EQ(t->parts[1].what, template_part::kind::name);
  EXPECT_EQ(t->parts[1].position, 2u);
}

TEST(PathTemplate, GoSpellings) {
  EXPECT_EQ(render_text("/stalin/{{ pod.ObjectMeta.Annotations[\"subdir\"] }}"), "stalin/uploads");
  EXPECT_EQ(render_text("{{ pod.ObjectMeta.Namespace }}/{{ pod.ObjectMeta.Name }}/"
                        "{{ pod.ObjectMeta.Labels[\"app\"] }}"),
            "sites/press-0/press");
}

TEST(PathTemplate, ErrorsNamePositionAndExpression) {
  EXPECT_TRUE(fails_with("b/{{ pod.spec.nodeName }}", "position 3"));
  EXPECT_TRUE(fails_with("b/{{ pod.spec.nodeName }}", "unknown expression \"pod.spec.nodeName\""));
  EXPECT_TRUE(fails_with("b/{{ pod.metadata.name", "position 3"));
  EXPECT_TRUE(fails_with("b/{{ pod.metadata.name", "not closed"));
  EXPECT_TRUE(fails_with("b/{{ }}", "empty expression"));
  EXPECT_TRUE(fails_with("b/{{ pod.metadata.name | upper }}", "filters"));
  EXPECT_TRUE(fails_with("b/{% for x in y %}", "statements"));
  EXPECT_TRUE(fails_with("b/{# note #}", "comments"));
  EXPECT_TRUE(fails_with("b/{{ pod.metadata.labels[app] }}", "quoted key"));
  EXPECT_TRUE(fails_with("b/{{ pod.metadata.labels[\"bad key\"] }}", "not a valid label key"));
  EXPECT_TRUE(fails_with("b/{{ pod.metadata.Name }}", "unknown expression"));
  EXPECT_TRUE(fails_with("b/{{ 1 + 2 }}", "unknown expression"));
  EXPECT_TRUE(fails_with("b/{{ pod.metadata.name {{ x }}", "before the next"));
}

TEST(PathTemplate, UnsafeLiteralTextRefusedAtParse) {
  EXPECT_TRUE(fails_with("bucket/../other", "\"..\""));
  EXPECT_TRUE(fails_with("./bucket", "\".\""));
  EXPECT_TRUE(fails_with("/", "root"));
  EXPECT_TRUE(fails_with("//", "root"));
  EXPECT_TRUE(fails_with("bucket/\x01x", "control character"));
  EXPECT_TRUE(fails_with("bucket\\dir", "'\\'"));
  EXPECT_TRUE(fails_with(std::string(2000, 'a'), "longer than"));
}

TEST(PathTemplate, MissingLabelOrAnnotationIsNamed) {
  auto r = render_text("b/{{ pod.metadata.labels[\"zone\"] }}");
  EXPECT_NE(r.find("render error"), std::string::npos) << r;
  EXPECT_NE(r.find("label \"zone\""), std::string::npos) << r;
  EXPECT_NE(r.find("pod sites/press-0"), std::string::npos) << r;
  r = render_text("b/{{ pod.ObjectMeta.Annotations[\"subdir2\"] }}");
  EXPECT_NE(r.find("annotation \"subdir2\""), std::string::npos) << r;
  r = render_text("b/{{ pod.metadata.name }}", *json::parse(R"({"metadata":{}})"));
  EXPECT_NE(r.find("no metadata.name"), std::string::npos) << r;
}

TEST(PathTemplate, InjectionThroughValuesRefused) {
  // A value that is exactly ".." would climb out of the template's folder.
  auto r = render_text("b/{{ pod.metadata.labels[\"app\"] }}/data", pod(R"({"app":".."})"));
  EXPECT_NE(r.find("render error"), std::string::npos) << r;
  EXPECT_NE(r.find("\"..\""), std::string::npos) << r;
  r = render_text("b/{{ pod.metadata.labels[\"app\"] }}", pod(R"({"app":"."})"));
  EXPECT_NE(r.find("render error"), std::string::npos) << r;
  // Annotations may hold anything: '/' would let a pod write into another pod's folder.
  r = render_text("b/{{ pod.metadata.annotations[\"subdir\"] }}",
                  pod("{}", R"({"subdir":"../../etc"})"));
  EXPECT_NE(r.find("contains '/'"), std::string::npos) << r;
  r = render_text("b/{{ pod.metadata.annotations[\"subdir\"] }}", pod("{}", R"({"subdir":"a/b"})"));
  EXPECT_NE(r.find("contains '/'"), std::string::npos) << r;
  r = render_text("b/{{ pod.metadata.annotations[\"subdir\"] }}",
                  pod("{}", R"({"subdir":"a\nb"})"));
  EXPECT_NE(r.find("control character"), std::string::npos) << r;
  r = render_text("b/{{ pod.metadata.annotations[\"subdir\"] }}", pod("{}", R"({"subdir":""})"));
  EXPECT_NE(r.find("is empty"), std::string::npos) << r;
  // As part of a folder name, dots are harmless.
  EXPECT_EQ(render_text("b/v-{{ pod.metadata.labels[\"app\"] }}", pod(R"({"app":".."})")),
            "b/v-..");
  // A template of only a value that renders to the root is refused.
  r = render_text("/{{ pod.metadata.labels[\"app\"] }}/", pod(R"({"app":".."})"));
  EXPECT_NE(r.find("render error"), std::string::npos) << r;
}

TEST(PathTemplate, NormalizeRemotePath) {
  EXPECT_EQ(*normalize_remote_path("/a//b/"), "a/b");
  EXPECT_FALSE(normalize_remote_path("").has_value());
  EXPECT_FALSE(normalize_remote_path("a/../b").has_value());
  EXPECT_FALSE(normalize_remote_path("a/\x7f").has_value());
}
