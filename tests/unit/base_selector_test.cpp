// Label selectors: the string grammar, the metav1.LabelSelector form, matching.
#include <gtest/gtest.h>

#include "runtime/json/value.hpp"
#include "runtime/k8s/selector.hpp"

namespace tidesync::k8s {
namespace {

using labels = std::map<std::string, std::string>;

bool match(std::string_view sel, const labels& l) {
  auto s = label_selector::parse(sel);
  EXPECT_TRUE(s.has_value()) << sel << ": " << (s ? "" : s.error().message);
  return s && s->matches(l);
}

TEST(label_selector, equality_and_inequality) {
  labels l{{"app", "web"}, {"tier", "front"}};
  EXPECT_TRUE(match("app=web", l));
  EXPECT_TRUE(match("app==web", l));
  EXPECT_FALSE(match("app=db", l));
  EXPECT_TRUE(match("app!=db", l));
  EXPECT_TRUE(match("missing!=x", l)) << "!= matches when the label is absent";
  EXPECT_TRUE(match("app=web,tier=front", l));
  EXPECT_FALSE(match("app=web,tier=back", l));
  EXPECT_TRUE(match(" app = web , tier = front ", l));
}

TEST(label_selector, set_based_and_existence) {
  labels l{{"env", "prod"}, {"example.com/team", "data"}};
  EXPECT_TRUE(match("env in (dev, prod)", l));
  EXPECT_FALSE(match("env in (dev,qa)", l));
  EXPECT_TRUE(match("env notin (dev)", l));
  EXPECT_FALSE(match("env notin (prod)", l));
  EXPECT_TRUE(match("other notin (prod)", l));
  EXPECT_TRUE(match("env", l));
  EXPECT_FALSE(match("!env", l));
  EXPECT_TRUE(match("!other", l));
  EXPECT_TRUE(match("example.com/team=data", l));
  EXPECT_TRUE(match("", l)) << "the empty selector matches everything";
  EXPECT_TRUE(match("replicas>2", {{"replicas", "3"}}));
  EXPECT_FALSE(match("replicas<2", {{"replicas", "3"}}));
}

TEST(label_selector, bad_syntax_is_a_clear_error) {
  for (const char* bad : {"app=", "=web", "app in (a", "app in ()", "app ~ x", "a=b,", "!a=b",
                          "app=Not Valid", "-bad=x", "app in a,b", "x>y"}) {
    auto s = label_selector::parse(bad);
    if (std::string_view(bad) == "app=") {
      // An empty value is valid in Kubernetes ("app=" selects app with an empty value).
      ASSERT_TRUE(s.has_value());
      EXPECT_TRUE(s->matches({{"app", ""}}));
      continue;
    }
    ASSERT_FALSE(s.has_value()) << bad;
    EXPECT_EQ(s.error().code, errc::invalid_argument);
    EXPECT_NE(s.error().message.find("invalid label selector"), std::string::npos)
        << s.error().message;
  }
}

TEST(label_selector, round_trips_through_to_string) {
  auto s = label_selector::parse("b in (y,x),a!=1,!c,d");
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->to_string(), "b in (x,y),a!=1,!c,d");
  auto again = label_selector::parse(s->to_string());
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->to_string(), s->to_string());
}

TEST(label_selector, from_label_selector_json) {
  auto doc = json::parse(R"({"matchLabels":{"app":"web"},
    "matchExpressions":[{"key":"env","operator":"In","values":["prod","qa"]},
                        {"key":"legacy","operator":"DoesNotExist"}]})");
  ASSERT_TRUE(doc.has_value());
  auto s = label_selector::from_json(*doc);
  ASSERT_TRUE(s.has_value()) << s.error().message;
  EXPECT_TRUE(s->matches({{"app", "web"}, {"env", "qa"}}));
  EXPECT_FALSE(s->matches({{"app", "web"}, {"env", "qa"}, {"legacy", "1"}}));
  EXPECT_FALSE(s->matches({{"app", "web"}}));
  EXPECT_TRUE(label_selector::from_json(json::value{})->empty());
  auto bad = json::parse(R"({"matchExpressions":[{"key":"a","operator":"Near","values":["x"]}]})");
  EXPECT_FALSE(label_selector::from_json(*bad).has_value());
  auto no_values = json::parse(R"({"matchExpressions":[{"key":"a","operator":"In"}]})");
  EXPECT_FALSE(label_selector::from_json(*no_values).has_value());
}

}  // namespace
}  // namespace tidesync::k8s
