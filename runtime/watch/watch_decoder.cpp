#include "runtime/watch/watch_decoder.hpp"

#include <simdjson.h>

#include <algorithm>
#include <cstring>
#include <iterator>
#include <string>

namespace tidesync::watch {

namespace od = simdjson::ondemand;

std::string_view to_string(event_type t) {
  switch (t) {
    case event_type::added:
      return "ADDED";
    case event_type::modified:
      return "MODIFIED";
    case event_type::deleted:
      return "DELETED";
    case event_type::bookmark:
      return "BOOKMARK";
    case event_type::error:
      return "ERROR";
  }
  return "UNKNOWN";
}

namespace {

constexpr size_t kPadding = simdjson::SIMDJSON_PADDING;

// A short, printable excerpt of a bad line for the error message. Kept short on purpose:
// a watch on Secrets carries secret data, and error messages end up in logs.
std::string excerpt(std::string_view line) {
  constexpr size_t kMax = 32;
  std::string out;
  for (char c : line.substr(0, kMax)) {
    out.push_back(c >= 0x20 && c < 0x7f ? c : '?');
  }
  if (line.size() > kMax) out += "...";
  return out;
}

error bad_line(std::string_view what, std::string_view line) {
  return make_error(errc::parse_error, "watch stream: " + std::string(what) + " (line of " +
                                           std::to_string(line.size()) + " bytes: '" +
                                           excerpt(line) + "')");
}

std::string simdjson_message(simdjson::error_code e) {
  return simdjson::error_message(e);
}

// Reads the metadata fields the cache needs. With `rv_only`, only resourceVersion (for
// bookmarks). Returns a description of the problem, or empty on success.
std::string decode_meta(od::object md, object_meta& m, bool rv_only) {
  for (auto field_result : md) {
    od::field f;
    if (auto e = std::move(field_result).get(f)) return "bad metadata: " + simdjson_message(e);
    od::raw_json_string k = f.key();
    simdjson::error_code e = simdjson::SUCCESS;
    std::string_view s;
    if (k == "resourceVersion") {
      e = f.value().get_string().get(s);
      if (!e) m.resource_version.assign(s);
    } else if (rv_only) {
      continue;
    } else if (k == "name") {
      e = f.value().get_string().get(s);
      if (!e) m.name.assign(s);
    } else if (k == "namespace") {
      e = f.value().get_string().get(s);
      if (!e) m.ns.assign(s);
    } else if (k == "uid") {
      e = f.value().get_string().get(s);
      if (!e) m.uid.assign(s);
    } else if (k == "generation") {
      e = f.value().get_int64().get(m.generation);
    } else if (k == "labels") {
      od::json_type t;
      if ((e = f.value().type().get(t))) return "bad metadata.labels: " + simdjson_message(e);
      if (t == od::json_type::null) continue;
      od::object lo;
      if ((e = f.value().get_object().get(lo))) return "metadata.labels is not an object";
      // Collect into a reused vector, then copy out at the exact size: growing the object's
      // own vector label by label costs several allocations per object.
      thread_local label_list labels;
      labels.clear();
      for (auto label_result : lo) {
        od::field lf;
        if ((e = std::move(label_result).get(lf))) break;
        std::string_view lk;
        if ((e = lf.unescaped_key().get(lk))) break;
        std::string key(lk);
        if ((e = lf.value().get_string().get(s))) break;
        labels.emplace_back(std::move(key), std::string(s));
      }
      if (e) return "bad metadata.labels: " + simdjson_message(e);
      // Kubernetes writes map keys sorted; sort only when someone did not.
      if (!std::is_sorted(labels.begin(), labels.end())) {
        std::sort(labels.begin(), labels.end());
      }
      m.labels.assign(std::make_move_iterator(labels.begin()),
                      std::make_move_iterator(labels.end()));
    } else if (k == "deletionTimestamp") {
      bool is_null = false;
      e = f.value().is_null().get(is_null);
      if (!e) m.deleting = !is_null;
    }
    if (e) {
      return "bad metadata." + std::string(k.raw(), std::strcspn(k.raw(), "\"")) + ": " +
             simdjson_message(e);
    }
  }
  return {};
}

// Fills `out` from a full object: its raw bytes and its metadata.
std::string decode_full_object(od::object& o, object& out, bool require_name) {
  od::object md;
  auto mv = o.find_field_unordered("metadata");
  if (auto e = mv.get_object().get(md)) {
    return e == simdjson::NO_SUCH_FIELD ? "object has no metadata"
                                        : "bad object metadata: " + simdjson_message(e);
  }
  if (auto msg = decode_meta(md, out.meta, false); !msg.empty()) return msg;
  if (require_name && out.meta.name.empty()) return "object has no metadata.name";
  // raw_json() spans from the object's start whatever was read already, and walks on to
  // its end: metadata and raw bytes cost one pass over the object.
  std::string_view raw;
  if (auto e = o.raw_json().get(raw)) return "bad object: " + simdjson_message(e);
  out.raw = std::make_shared<const std::string>(raw);
  return {};
}

// Fills `st` from a metav1.Status object.
std::string decode_status(od::object& o, api_status& st) {
  for (auto field_result : o) {
    od::field f;
    if (auto e = std::move(field_result).get(f)) return "bad Status: " + simdjson_message(e);
    od::raw_json_string k = f.key();
    std::string_view s;
    if (k == "code") {
      int64_t code = 0;
      if (f.value().get_int64().get(code)) return "Status.code is not an integer";
      st.code = static_cast<int>(code);
    } else if (k == "reason") {
      if (f.value().get_string().get(s)) return "Status.reason is not a string";
      st.reason.assign(s);
    } else if (k == "message") {
      if (f.value().get_string().get(s)) return "Status.message is not a string";
      st.message.assign(s);
    }
  }
  return {};
}

bool parse_type(std::string_view s, event_type& t) {
  if (s == "ADDED")
    t = event_type::added;
  else if (s == "MODIFIED")
    t = event_type::modified;
  else if (s == "DELETED")
    t = event_type::deleted;
  else if (s == "BOOKMARK")
    t = event_type::bookmark;
  else if (s == "ERROR")
    t = event_type::error;
  else
    return false;
  return true;
}

}  // namespace

struct watch_decoder::impl {
  explicit impl(size_t max_line) : max_line_bytes(max_line) {}

  size_t max_line_bytes;
  od::parser parser;
  // The stream buffer. Invariant: cap >= size + kPadding, so any line inside it can be
  // handed to simdjson in place (what follows a line is either more data or padding).
  std::unique_ptr<char[]> buf;
  size_t cap = 0;
  size_t size = 0;
  bool skipping = false;  // dropping the rest of an over-long line
  // Padded copy of a list/object body.
  std::unique_ptr<char[]> scratch;
  size_t scratch_cap = 0;

  static void grow(std::unique_ptr<char[]>& b, size_t& capacity, size_t keep, size_t need) {
    if (need + kPadding <= capacity) return;
    size_t ncap = std::max({need + kPadding, capacity * 2, size_t{4096}});
    std::unique_ptr<char[]> nb(new char[ncap]);
    if (keep) std::memcpy(nb.get(), b.get(), keep);
    std::memset(nb.get() + keep, 0, std::min(ncap - keep, kPadding));
    b = std::move(nb);
    capacity = ncap;
  }

  // Decodes the line [p, p+len); `capacity` bytes are readable from p (>= len + kPadding).
  void decode_line(const char* p, size_t len, size_t capacity,
                   std::vector<expected<watch_event>>& out) {
    while (len && (p[len - 1] == '\r' || p[len - 1] == ' ' || p[len - 1] == '\t'))
      --len;
    while (len && (*p == ' ' || *p == '\t'))
      ++p, --len, --capacity;
    if (len == 0) return;
    // Decode straight into the output slot: a watch_event holds a dozen strings, and
    // moving it around per event shows up in profiles.
    out.emplace_back(watch_event{});
    if (auto msg = decode_event(p, len, capacity, *out.back()); !msg.empty()) {
      out.back() = bad_line(msg, std::string_view(p, len));
    }
  }

  void append(const char* p, size_t n) {
    grow(buf, cap, size, size + n);
    std::memcpy(buf.get() + size, p, n);
    size += n;
  }

  // Decodes one event into `ev`; returns what is wrong with the line, or empty.
  std::string decode_event(const char* p, size_t len, size_t capacity, watch_event& ev) {
    od::document doc;
    if (auto e = parser.iterate(p, len, capacity).get(doc)) {
      return "not JSON: " + simdjson_message(e);
    }
    od::object top;
    if (auto e = doc.get_object().get(top)) {
      return "event is not a JSON object: " + simdjson_message(e);
    }
    bool have_type = false;
    bool have_object = false;
    std::string_view deferred;  // the object's span when it came before the type
    for (auto field_result : top) {
      od::field f;
      if (auto e = std::move(field_result).get(f)) {
        return "malformed event: " + simdjson_message(e);
      }
      od::raw_json_string k = f.key();
      if (k == "type") {
        std::string_view s;
        if (f.value().get_string().get(s)) return "event type is not a string";
        if (!parse_type(s, ev.type)) return "unknown event type '" + excerpt(s) + "'";
        have_type = true;
        if (have_object) break;
      } else if (k == "object") {
        if (!have_type) {
          // Kubernetes always sends "type" first. For the other order, remember where the
          // object is and decode it once the type is known (its span lies inside our padded
          // buffer, so it can be iterated in place).
          od::object o;
          if (f.value().get_object().get(o)) return "event object is not an object";
          if (o.raw_json().get(deferred)) return "malformed event object";
          have_object = true;
          continue;
        }
        od::object o;
        if (f.value().get_object().get(o)) return "event object is not an object";
        if (auto msg = decode_object_for(ev, o); !msg.empty()) return msg;
        have_object = true;
        break;  // everything needed is read; the rest of the line is not looked at
      }
    }
    if (!have_type) return "event has no type";
    if (!have_object) return "event has no object";
    if (!deferred.empty()) {
      size_t rest = capacity - static_cast<size_t>(deferred.data() - p);
      od::document d2;
      od::object o;
      if (parser.iterate(deferred.data(), deferred.size(), rest).get(d2) ||
          d2.get_object().get(o)) {
        return "malformed event object";
      }
      if (auto msg = decode_object_for(ev, o); !msg.empty()) return msg;
    }
    return {};
  }

  std::string decode_object_for(watch_event& ev, od::object& o) {
    switch (ev.type) {
      case event_type::error:
        return decode_status(o, ev.status);
      case event_type::bookmark: {
        od::object md;
        if (o.find_field_unordered("metadata").get_object().get(md)) {
          return "bookmark has no metadata";
        }
        if (auto msg = decode_meta(md, ev.obj.meta, true); !msg.empty()) return msg;
        if (ev.obj.meta.resource_version.empty()) return "bookmark has no resourceVersion";
        return {};
      }
      default:
        return decode_full_object(o, ev.obj, true);
    }
  }

  const char* pad_copy(std::string_view body) {
    grow(scratch, scratch_cap, 0, body.size());
    std::memcpy(scratch.get(), body.data(), body.size());
    return scratch.get();
  }
};

watch_decoder::watch_decoder(size_t max_line_bytes)
    : impl_(std::make_unique<impl>(max_line_bytes)) {}

watch_decoder::~watch_decoder() = default;

size_t watch_decoder::pending_bytes() const {
  return impl_->size;
}

void watch_decoder::reset() {
  impl_->size = 0;
  impl_->skipping = false;
}

size_t watch_decoder::feed(std::string_view chunk, std::vector<expected<watch_event>>& out) {
  impl& d = *impl_;
  const size_t before = out.size();
  if (d.skipping) {
    const void* nl = std::memchr(chunk.data(), '\n', chunk.size());
    if (!nl) return 0;
    chunk.remove_prefix(static_cast<const char*>(nl) - chunk.data() + 1);
    d.skipping = false;
  }
  const char* c = chunk.data();
  const size_t n = chunk.size();
  size_t pos = 0;
  if (d.size > 0 && n > 0) {
    // Complete the held-back line first (it has no newline yet, so only the chunk can).
    const void* nl = std::memchr(c, '\n', n);
    pos = nl ? static_cast<size_t>(static_cast<const char*>(nl) - c) + 1 : n;
    d.append(c, pos);
    if (nl) {
      d.decode_line(d.buf.get(), d.size - 1, d.cap, out);
      d.size = 0;
    }
  }
  if (d.size == 0) {
    // Lines that lie wholly inside the chunk with at least kPadding bytes after them are
    // decoded in place: simdjson may read past a line's end, and here it reads the next
    // line's bytes, which is allowed. This skips copying the bulk of the stream.
    while (pos < n) {
      const void* nl = std::memchr(c + pos, '\n', n - pos);
      if (!nl) break;
      size_t end = static_cast<const char*>(nl) - c;
      if (n - end < kPadding) break;
      d.decode_line(c + pos, end - pos, n - pos, out);
      pos = end + 1;
    }
    // The last lines of the chunk and a trailing partial line go through the padded buffer.
    if (pos < n) {
      d.append(c + pos, n - pos);
      size_t line_start = 0;
      for (;;) {
        const char* base = d.buf.get();
        const void* nl = std::memchr(base + line_start, '\n', d.size - line_start);
        if (!nl) break;
        size_t end = static_cast<const char*>(nl) - base;
        d.decode_line(base + line_start, end - line_start, d.cap - line_start, out);
        line_start = end + 1;
      }
      if (line_start > 0) {
        std::memmove(d.buf.get(), d.buf.get() + line_start, d.size - line_start);
        d.size -= line_start;
      }
    }
  }
  if (d.size > d.max_line_bytes) {
    out.push_back(make_error(errc::parse_error, "watch stream: a line exceeds " +
                                                    std::to_string(d.max_line_bytes) +
                                                    " bytes without a newline; skipped"));
    d.size = 0;
    d.skipping = true;
  }
  return out.size() - before;
}

size_t watch_decoder::finish(std::vector<expected<watch_event>>& out) {
  impl& d = *impl_;
  const size_t before = out.size();
  if (d.size > 0 && !d.skipping) d.decode_line(d.buf.get(), d.size, d.cap, out);
  reset();
  return out.size() - before;
}

expected<list_page> watch_decoder::decode_list(std::string_view body) {
  impl& d = *impl_;
  const char* p = d.pad_copy(body);
  auto fail = [&](std::string what) {
    return make_error(errc::parse_error, "list response: " + what);
  };
  od::document doc;
  if (auto e = d.parser.iterate(p, body.size(), d.scratch_cap).get(doc)) {
    return fail("not JSON: " + simdjson_message(e));
  }
  od::object top;
  if (doc.get_object().get(top)) return fail("not a JSON object");
  list_page page;
  bool have_items = false;
  for (auto field_result : top) {
    od::field f;
    if (auto e = std::move(field_result).get(f)) return fail(simdjson_message(e));
    od::raw_json_string k = f.key();
    if (k == "metadata") {
      od::object md;
      if (f.value().get_object().get(md)) return fail("metadata is not an object");
      for (auto mr : md) {
        od::field mf;
        if (auto e = std::move(mr).get(mf)) return fail(simdjson_message(e));
        std::string_view s;
        if (mf.key() == "resourceVersion") {
          if (mf.value().get_string().get(s)) return fail("resourceVersion is not a string");
          page.resource_version.assign(s);
        } else if (mf.key() == "continue") {
          if (mf.value().get_string().get(s)) return fail("continue is not a string");
          page.continue_token.assign(s);
        }
      }
    } else if (k == "items") {
      have_items = true;
      od::json_type t;
      if (auto e = f.value().type().get(t)) return fail(simdjson_message(e));
      if (t == od::json_type::null) continue;
      od::array items;
      if (f.value().get_array().get(items)) return fail("items is not an array");
      for (auto item_result : items) {
        od::object o;
        if (std::move(item_result).get_object().get(o)) return fail("an item is not an object");
        object obj;
        if (auto msg = decode_full_object(o, obj, true); !msg.empty()) {
          return fail("item " + std::to_string(page.items.size()) + ": " + msg);
        }
        page.items.push_back(std::move(obj));
      }
    }
  }
  if (!have_items) return fail("no items array (is this a list response?)");
  return page;
}

expected<object> watch_decoder::decode_object(std::string_view json) {
  impl& d = *impl_;
  const char* p = d.pad_copy(json);
  od::document doc;
  if (auto e = d.parser.iterate(p, json.size(), d.scratch_cap).get(doc)) {
    return make_error(errc::parse_error, "object: not JSON: " + simdjson_message(e));
  }
  od::object o;
  if (doc.get_object().get(o)) return make_error(errc::parse_error, "object: not a JSON object");
  object obj;
  if (auto msg = decode_full_object(o, obj, false); !msg.empty()) {
    return make_error(errc::parse_error, "object: " + msg);
  }
  return obj;
}

}  // namespace tidesync::watch
