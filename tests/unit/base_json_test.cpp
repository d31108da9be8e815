#include <gtest/gtest.h>

#include "runtime/json/value.hpp"

namespace tidesync::json {
namespace {

value must_parse(std::string_view text) {
  auto v = parse(text);
  EXPECT_TRUE(v.has_value()) << (v ? "" : v.error().to_string());
  return v ? *v : value{};
}

TEST(Json, RoundTripKeepsOrderAndTypes) {
  std::string text =
      R"({"b":1,"a":[true,false,null,-3,2.5,"x\"y\\z\n"],"c":{"z":{},"y":[]},"big":9223372036854775807})";
  auto v = must_parse(text);
  EXPECT_EQ(dump(v), text);
  EXPECT_EQ(v.get_int("b"), 1);
  EXPECT_EQ(v.at("a")->as_array()[4].as_double(), 2.5);
  EXPECT_EQ(v.at_path({"c", "z"})->type(), kind::object);
}

TEST(Json, EscapesControlCharacters) {
  value v = std::string(
      "a\x01"
      "b\tc");
  EXPECT_EQ(dump(v), R"("a\u0001b\tc")");
  EXPECT_EQ(must_parse(dump(v)), v);
}

TEST(Json, Utf8PassesThrough) {
  auto v = must_parse(R"({"k":"héllo ✓ \u00e9"})");
  EXPECT_EQ(v.get_string("k"), "héllo ✓ é");
}

TEST(Json, MalformedInputIsAClearError) {
  for (std::string_view bad : {"", "{", "{\"a\":}", "[1,2", "nul", "{\"a\" 1}", "\"\\x\""}) {
    auto v = parse(bad);
    ASSERT_FALSE(v.has_value()) << bad;
    EXPECT_EQ(v.error().code, errc::parse_error);
    EXPECT_NE(v.error().message.find("invalid JSON"), std::string::npos);
  }
}

TEST(Json, DuplicateKeysLastWins) {
  auto v = must_parse(R"({"a":1,"b":2,"a":3})");
  EXPECT_EQ(v.as_object().size(), 2u);
  EXPECT_EQ(v.get_int("a"), 3);
}

TEST(Json, ObjectEqualityIgnoresOrder) {
  EXPECT_EQ(must_parse(R"({"a":1,"b":[1,2]})"), must_parse(R"({"b":[1,2],"a":1.0})"));
  EXPECT_NE(must_parse(R"({"a":1})"), must_parse(R"({"a":1,"b":2})"));
  EXPECT_NE(must_parse("[1,2]"), must_parse("[2,1]"));
}

TEST(Json, PrettyOutputParsesBack) {
  auto v = must_parse(R"({"a":{"b":[1,{"c":null}]},"d":[]})");
  EXPECT_EQ(must_parse(dump_pretty(v)), v);
  EXPECT_NE(dump_pretty(v).find("\n  \"a\": {"), std::string::npos);
}

// RFC 7386 appendix A examples.
TEST(MergePatch, Rfc7386Examples) {
  struct tc {
    const char* target;
    const char* patch;
    const char* result;
  };
  for (auto [t, p, r] : {
           tc{R"({"a":"b"})", R"({"a":"c"})", R"({"a":"c"})"},
           tc{R"({"a":"b"})", R"({"b":"c"})", R"({"a":"b","b":"c"})"},
           tc{R"({"a":"b"})", R"({"a":null})", R"({})"},
           tc{R"({"a":"b","b":"c"})", R"({"a":null})", R"({"b":"c"})"},
           tc{R"({"a":["b"]})", R"({"a":"c"})", R"({"a":"c"})"},
           tc{R"({"a":"c"})", R"({"a":["b"]})", R"({"a":["b"]})"},
           tc{R"({"a":{"b":"c"}})", R"({"a":{"b":"d","c":null}})", R"({"a":{"b":"d"}})"},
           tc{R"({"a":[{"b":"c"}]})", R"({"a":[1]})", R"({"a":[1]})"},
           tc{R"(["a","b"])", R"(["c","d"])", R"(["c","d"])"},
           tc{R"({"a":"b"})", R"(["c"])", R"(["c"])"},
           tc{R"({"a":"foo"})", "null", "null"},
           tc{R"({"a":"foo"})", R"("bar")", R"("bar")"},
           tc{R"({"e":null})", R"({"a":1})", R"({"e":null,"a":1})"},
           tc{R"([1,2])", R"({"a":"b","c":null})", R"({"a":"b"})"},
           tc{R"({})", R"({"a":{"bb":{"ccc":null}}})", R"({"a":{"bb":{}}})"},
       }) {
    EXPECT_EQ(merge_patch(must_parse(t), must_parse(p)), must_parse(r)) << t << " + " << p;
  }
}

TEST(JsonPatch, AllOperations) {
  auto doc = must_parse(R"({"a":{"b":[1,2,3]},"c":"x","m/n":1,"t~":2})");
  auto patch = must_parse(R"([
    {"op":"add","path":"/a/b/1","value":9},
    {"op":"add","path":"/a/b/-","value":4},
    {"op":"remove","path":"/a/b/0"},
    {"op":"replace","path":"/c","value":{"d":true}},
    {"op":"copy","from":"/c","path":"/e"},
    {"op":"move","from":"/m~1n","path":"/mn"},
    {"op":"test","path":"/t~0","value":2},
    {"op":"add","path":"/a/new","value":null}
  ])");
  auto out = json_patch(doc, patch);
  ASSERT_TRUE(out.has_value()) << out.error().to_string();
  EXPECT_EQ(*out,
            must_parse(
                R"({"a":{"b":[9,2,3,4],"new":null},"c":{"d":true},"e":{"d":true},"mn":1,"t~":2})"));
}

TEST(JsonPatch, FailuresAreAtomicAndExplained) {
  auto doc = must_parse(R"({"a":[1]})");
  struct tc {
    const char* patch;
    const char* message_part;
  };
  for (auto [p, part] : {
           tc{R"({"op":"add"})", "must be an array"},
           tc{R"([{"op":"frobnicate","path":"/a"}])", "unknown op"},
           tc{R"([{"op":"add","path":"/a/-","value":2},{"op":"test","path":"/a/0","value":5}])",
              "test failed"},
           tc{R"([{"op":"remove","path":"/zz"}])", "names no existing value"},
           tc{R"([{"op":"replace","path":"/a/7","value":1}])", "out of range"},
           tc{R"([{"op":"add","path":"a","value":1}])", "must be empty or start with '/'"},
           tc{R"([{"op":"add","path":"/a/01","value":1}])", "not an array index"},
           tc{R"([{"op":"move","from":"/a","path":"/a/0"}])", "own children"},
       }) {
    auto out = json_patch(doc, must_parse(p));
    ASSERT_FALSE(out.has_value()) << p;
    EXPECT_NE(out.error().message.find(part), std::string::npos) << out.error().message;
  }
  EXPECT_EQ(dump(doc), R"({"a":[1]})");
}

}  // namespace
}  // namespace tidesync::json
