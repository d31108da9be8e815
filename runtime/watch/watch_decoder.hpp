// Incremental decoder for Kubernetes watch streams (newline-delimited JSON events).
//
// Feed it the body chunks as they arrive, split anywhere; it yields one result per complete
// line. It never builds a DOM: simdjson On-Demand walks each line once to find the event
// type, the object's raw bytes and the metadata the cache needs.
//
// Bad lines: a line that is not JSON, or not a watch event, yields an error result for that
// line and the decoder carries on with the next line (lines are the framing, so one bad
// line cannot desynchronise the ones after it). Whether a bad line breaks the stream is the
// caller's policy: the watcher treats it as a broken stream and re-watches from the last
// resourceVersion it saw, so no event is silently lost.
//
// Not thread-safe: one decoder per stream, used on one thread.
#pragma once

#include <cstddef>
#include <memory>
#include <string_view>
#include <vector>

#include "runtime/error.hpp"
#include "runtime/watch/watch_event.hpp"

namespace tidesync::watch {

class watch_decoder {
 public:
  // Lines longer than `max_line_bytes` are reported as errors and skipped (a guard against
  // a server that never sends a newline). Kubernetes objects are at most ~1.5 MiB.
  explicit watch_decoder(size_t max_line_bytes = size_t{64} << 20);
  ~watch_decoder();
  watch_decoder(const watch_decoder&) = delete;
  watch_decoder& operator=(const watch_decoder&) = delete;

  // Appends `chunk` and appends one result per complete line to `out` (empty lines are
  // skipped). Returns the number of results appended.
  size_t feed(std::string_view chunk, std::vector<expected<watch_event>>& out);

  // End of stream: decodes a final line that had no trailing newline, if any.
  size_t finish(std::vector<expected<watch_event>>& out);

  // Drops any partial line (a new stream starts).
  void reset();

  // Bytes of an incomplete line held back until its newline arrives.
  [[nodiscard]] size_t pending_bytes() const;

  // Decodes a whole list response body (items, metadata.resourceVersion, metadata.continue)
  // into the same object representation. Reuses this decoder's parser.
  expected<list_page> decode_list(std::string_view body);

  // Decodes a single object (e.g. a GET response).
  expected<object> decode_object(std::string_view json);

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace tidesync::watch
