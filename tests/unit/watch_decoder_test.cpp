// Watch stream decoding: framing across chunks, event kinds, ERROR/410, bad input, lists.
#include "runtime/watch/watch_decoder.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace tidesync::watch {
namespace {

std::string pod_json(const std::string& ns, const std::string& name, const std::string& rv,
                     const std::string& extra_meta = "") {
  return R"({"kind":"Pod","apiVersion":"v1","metadata":{"name":")" + name + R"(","namespace":")" +
         ns + R"(","uid":"uid-)" + name + R"(","resourceVersion":")" + rv +
         R"(","generation":3,"labels":{"app":"web","tier":"front\"end"})" + extra_meta +
         R"(},"spec":{"containers":[{"name":"c","image":"nginx"}]},"status":{"phase":"Running"}})";
}

std::string event_line(const std::string& type, const std::string& obj) {
  return R"({"type":")" + type + R"(","object":)" + obj + "}\n";
}

std::vector<expected<watch_event>> decode_all(watch_decoder& d, const std::string& stream,
                                              size_t split) {
  std::vector<expected<watch_event>> out;
  for (size_t i = 0; i < stream.size(); i += split) {
    d.feed(std::string_view(stream).substr(i, split), out);
  }
  return out;
}

TEST(WatchDecoder, DecodesAddedEventMetadataAndRaw) {
  watch_decoder d;
  std::vector<expected<watch_event>> out;
  std::string obj =
      pod_json("default", "web-0", "42", R"(,"deletionTimestamp":"2024-01-01T00:00:00Z")");
  EXPECT_EQ(d.feed(event_line("ADDED", obj), out), 1u);
  ASSERT_EQ(out.size(), 1u);
  ASSERT_TRUE(out[0].has_value()) << out[0].error().to_string();
  const watch_event& ev = *out[0];
  EXPECT_EQ(ev.type, event_type::added);
  EXPECT_EQ(*ev.obj.raw, obj);
  EXPECT_EQ(ev.obj.meta.ns, "default");
  EXPECT_EQ(ev.obj.meta.name, "web-0");
  EXPECT_EQ(ev.obj.meta.uid, "uid-web-0");
  EXPECT_EQ(ev.obj.meta.resource_version, "42");
  EXPECT_EQ(ev.obj.meta.generation, 3);
  EXPECT_TRUE(ev.obj.meta.deleting);
  ASSERT_EQ(ev.obj.meta.labels.size(), 2u);
  EXPECT_EQ(ev.obj.meta.labels[0], (std::pair<std::string, std::string>{"app", "web"}));
  EXPECT_EQ(ev.obj.meta.labels[1],
            (std::pair<std::string, std::string>{"tier", "front\"end"}));  // unescaped
  EXPECT_EQ(ev.obj.key(), "default/web-0");
  EXPECT_EQ(d.pending_bytes(), 0u);
}

TEST(WatchDecoder, NullDeletionTimestampAndLabelsAreAbsent) {
  watch_decoder d;
  std::vector<expected<watch_event>> out;
  d.feed(
      event_line(
          "MODIFIED",
          R"({"metadata":{"name":"n","resourceVersion":"7","labels":null,"deletionTimestamp":null}})"),
      out);
  ASSERT_EQ(out.size(), 1u);
  ASSERT_TRUE(out[0].has_value()) << out[0].error().to_string();
  EXPECT_EQ(out[0]->type, event_type::modified);
  EXPECT_FALSE(out[0]->obj.meta.deleting);
  EXPECT_TRUE(out[0]->obj.meta.labels.empty());
  EXPECT_EQ(out[0]->obj.key(), "n");  // cluster-scoped key
}

TEST(WatchDecoder, SplitAtEveryBytePosition) {
  std::string stream =
      event_line("ADDED", pod_json("a", "x", "1")) +
      event_line("MODIFIED", pod_json("a", "x", "2")) +
      R"({"type":"BOOKMARK","object":{"kind":"Pod","apiVersion":"v1","metadata":{"resourceVersion":"3"}}})"
      "\n" +
      event_line("DELETED", pod_json("b", "y", "4"));
  for (size_t cut = 0; cut <= stream.size(); ++cut) {
    watch_decoder d;
    std::vector<expected<watch_event>> out;
    d.feed(std::string_view(stream).substr(0, cut), out);
    d.feed(std::string_view(stream).substr(cut), out);
    ASSERT_EQ(out.size(), 4u) << "cut at " << cut;
    for (auto& r : out)
      ASSERT_TRUE(r.has_value()) << "cut at " << cut << ": " << r.error().to_string();
    EXPECT_EQ(out[0]->type, event_type::added);
    EXPECT_EQ(out[1]->obj.meta.resource_version, "2");
    EXPECT_EQ(out[2]->type, event_type::bookmark);
    EXPECT_EQ(out[2]->obj.meta.resource_version, "3");
    EXPECT_EQ(out[2]->obj.raw, nullptr);
    EXPECT_EQ(out[3]->type, event_type::deleted);
    EXPECT_EQ(out[3]->obj.key(), "b/y");
    EXPECT_EQ(d.pending_bytes(), 0u);
  }
}

// Lines are decoded in place inside a chunk when enough of the chunk follows them. Each
// chunk here is its own exactly-sized heap block, so ASan reports any read past its end.
TEST(WatchDecoder, NeverReadsPastTheEndOfAChunk) {
  std::string stream;
  for (int i = 0; i < 20; ++i) {
    stream += event_line("ADDED", pod_json("ns", "p" + std::to_string(i), std::to_string(i + 1)));
  }
  for (size_t split :
       {size_t{1}, size_t{63}, size_t{64}, size_t{65}, size_t{300}, size_t{1000}, stream.size()}) {
    watch_decoder d;
    std::vector<expected<watch_event>> out;
    for (size_t i = 0; i < stream.size(); i += split) {
      size_t n = std::min(split, stream.size() - i);
      std::unique_ptr<char[]> block(new char[n]);
      std::memcpy(block.get(), stream.data() + i, n);
      d.feed(std::string_view(block.get(), n), out);
    }
    ASSERT_EQ(out.size(), 20u) << "split " << split;
    for (auto& r : out)
      ASSERT_TRUE(r.has_value()) << r.error().to_string();
  }
}

TEST(WatchDecoder, ByteByByteAndManyEventsPerChunk) {
  std::string stream;
  for (int i = 0; i < 200; ++i) {
    stream += event_line("ADDED", pod_json("ns", "p" + std::to_string(i), std::to_string(i + 1)));
  }
  for (size_t split : {size_t{1}, size_t{7}, size_t{4096}, stream.size()}) {
    watch_decoder d;
    auto out = decode_all(d, stream, split);
    ASSERT_EQ(out.size(), 200u) << "split " << split;
    for (int i = 0; i < 200; ++i) {
      ASSERT_TRUE(out[i].has_value());
      EXPECT_EQ(out[i]->obj.meta.name, "p" + std::to_string(i));
    }
  }
}

TEST(WatchDecoder, CrLfAndBlankLinesAreTolerated) {
  watch_decoder d;
  std::vector<expected<watch_event>> out;
  d.feed("\n\r\n" + event_line("ADDED", pod_json("a", "b", "1")).insert(0, "  "), out);
  std::string crlf = event_line("ADDED", pod_json("a", "c", "2"));
  crlf.insert(crlf.size() - 1, "\r");
  d.feed(crlf, out);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_TRUE(out[0].has_value());
  EXPECT_TRUE(out[1].has_value());
}

TEST(WatchDecoder, ObjectBeforeTypeIsDecoded) {
  watch_decoder d;
  std::vector<expected<watch_event>> out;
  d.feed(R"({"object":)" + pod_json("a", "b", "9") + R"(,"type":"DELETED"})" + "\n", out);
  ASSERT_EQ(out.size(), 1u);
  ASSERT_TRUE(out[0].has_value()) << out[0].error().to_string();
  EXPECT_EQ(out[0]->type, event_type::deleted);
  EXPECT_EQ(out[0]->obj.meta.resource_version, "9");
  EXPECT_EQ(*out[0]->obj.raw, pod_json("a", "b", "9"));
}

TEST(WatchDecoder, ErrorEventCarriesStatus) {
  watch_decoder d;
  std::vector<expected<watch_event>> out;
  d.feed(
      R"J({"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: 5 (10)","reason":"Expired","code":410}})J"
      "\n",
      out);
  ASSERT_EQ(out.size(), 1u);
  ASSERT_TRUE(out[0].has_value()) << out[0].error().to_string();
  EXPECT_EQ(out[0]->type, event_type::error);
  EXPECT_EQ(out[0]->status.code, 410);
  EXPECT_EQ(out[0]->status.reason, "Expired");
  EXPECT_EQ(out[0]->status.message, "too old resource version: 5 (10)");
}

TEST(WatchDecoder, GarbageLinesAreErrorsAndDecodingContinues) {
  watch_decoder d;
  std::vector<expected<watch_event>> out;
  std::string stream = "<html>502 Bad Gateway</html>\n" +
                       event_line("ADDED", pod_json("a", "ok1", "1")) +
                       R"({"type":"ADDED","object":{"metadata":{"name":"x")"
                       "\n" +  // truncated
                       R"({"type":"EXPLODED","object":{}})"
                       "\n" +
                       R"({"type":"ADDED"})"
                       "\n" +
                       R"({"type":"ADDED","object":{"metadata":{"resourceVersion":"3"}}})"
                       "\n" +
                       R"([1,2,3])"
                       "\n" +
                       R"({"type":"ADDED","object":{"metadata":{"name":"n","generation":"x"}}})"
                       "\n" +
                       event_line("ADDED", pod_json("a", "ok2", "2"));
  d.feed(stream, out);
  ASSERT_EQ(out.size(), 9u);
  EXPECT_FALSE(out[0].has_value());
  EXPECT_NE(out[0].error().message.find("not a JSON object"), std::string::npos)
      << out[0].error().message;
  EXPECT_NE(out[0].error().message.find("<html>"), std::string::npos);
  EXPECT_EQ(out[0].error().code, errc::parse_error);
  EXPECT_TRUE(out[1].has_value());
  EXPECT_FALSE(out[2].has_value());
  EXPECT_FALSE(out[3].has_value());
  EXPECT_NE(out[3].error().message.find("unknown event type"), std::string::npos);
  EXPECT_FALSE(out[4].has_value());
  EXPECT_NE(out[4].error().message.find("no object"), std::string::npos);
  EXPECT_FALSE(out[5].has_value());
  EXPECT_NE(out[5].error().message.find("no metadata.name"), std::string::npos);
  EXPECT_FALSE(out[6].has_value());
  EXPECT_FALSE(out[7].has_value());
  EXPECT_NE(out[7].error().message.find("generation"), std::string::npos) << out[7].error().message;
  ASSERT_TRUE(out[8].has_value());
  EXPECT_EQ(out[8]->obj.meta.name, "ok2");
}

TEST(WatchDecoder, HugeObjectAcrossManyChunks) {
  std::string big(3 << 20, 'x');  // 3 MiB annotation
  std::string obj = pod_json("a", "big", "5", R"(,"annotations":{"blob":")" + big + R"("})");
  std::string stream = event_line("ADDED", obj) + event_line("MODIFIED", pod_json("a", "s", "6"));
  watch_decoder d;
  auto out = decode_all(d, stream, 65536);
  ASSERT_EQ(out.size(), 2u);
  ASSERT_TRUE(out[0].has_value()) << out[0].error().to_string();
  EXPECT_EQ(out[0]->obj.raw->size(), obj.size());
  EXPECT_EQ(*out[0]->obj.raw, obj);
  ASSERT_TRUE(out[1].has_value());
}

TEST(WatchDecoder, OverlongLineIsSkipped) {
  watch_decoder d(1024);
  std::vector<expected<watch_event>> out;
  d.feed(std::string(1000, 'a'), out);
  EXPECT_TRUE(out.empty());
  d.feed(std::string(1000, 'a'), out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_FALSE(out[0].has_value());
  EXPECT_NE(out[0].error().message.find("exceeds"), std::string::npos);
  d.feed(std::string(5000, 'b') + "\n" + event_line("ADDED", pod_json("a", "after", "1")), out);
  ASSERT_EQ(out.size(), 2u);
  ASSERT_TRUE(out[1].has_value());
  EXPECT_EQ(out[1]->obj.meta.name, "after");
}

TEST(WatchDecoder, FinishDecodesUnterminatedLastLine) {
  watch_decoder d;
  std::vector<expected<watch_event>> out;
  std::string line = event_line("ADDED", pod_json("a", "b", "1"));
  line.pop_back();
  d.feed(line, out);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(d.pending_bytes(), line.size());
  EXPECT_EQ(d.finish(out), 1u);
  ASSERT_TRUE(out[0].has_value());
  EXPECT_EQ(d.pending_bytes(), 0u);
}

TEST(WatchDecoder, DecodesListBody) {
  watch_decoder d;
  std::string body =
      R"({"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"77","continue":"tok-2"},"items":[)" +
      pod_json("a", "p1", "70") + "," + pod_json("b", "p2", "71") + "]}";
  auto page = d.decode_list(body);
  ASSERT_TRUE(page.has_value()) << page.error().to_string();
  EXPECT_EQ(page->resource_version, "77");
  EXPECT_EQ(page->continue_token, "tok-2");
  ASSERT_EQ(page->items.size(), 2u);
  EXPECT_EQ(page->items[0].key(), "a/p1");
  EXPECT_EQ(*page->items[1].raw, pod_json("b", "p2", "71"));
  EXPECT_EQ(page->items[1].meta.labels.size(), 2u);

  auto empty = d.decode_list(R"({"metadata":{"resourceVersion":"5"},"items":[]})");
  ASSERT_TRUE(empty.has_value());
  EXPECT_TRUE(empty->items.empty());
  EXPECT_TRUE(empty->continue_token.empty());

  auto status = d.decode_list(R"({"kind":"Status","code":410})");
  ASSERT_FALSE(status.has_value());
  EXPECT_NE(status.error().message.find("no items"), std::string::npos);
  EXPECT_FALSE(d.decode_list("nope").has_value());
  EXPECT_FALSE(d.decode_list(R"({"items":[{"metadata":{}}]})").has_value());
}

TEST(WatchDecoder, DecodesSingleObject) {
  watch_decoder d;
  auto o = d.decode_object(pod_json("a", "b", "3"));
  ASSERT_TRUE(o.has_value()) << o.error().to_string();
  EXPECT_EQ(o->meta.resource_version, "3");
  EXPECT_FALSE(d.decode_object("{").has_value());
}

TEST(ResourceVersion, Compare) {
  EXPECT_EQ(compare_resource_versions("9", "10"), -1);
  EXPECT_EQ(compare_resource_versions("10", "9"), 1);
  EXPECT_EQ(compare_resource_versions("10", "10"), 0);
  EXPECT_EQ(compare_resource_versions("abc", "10"), kUnordered);
  EXPECT_EQ(compare_resource_versions("", "10"), kUnordered);
}

}  // namespace
}  // namespace tidesync::watch
