#include "runtime/mirror/share.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "runtime/json/value.hpp"
#include "runtime/rfc3339.hpp"

namespace tidesync::mirror {
namespace fs = std::filesystem;

archive::tree_layout share_layout(const fs::path& share) {
  return {share / "current", share / ".tidesync" / "revisions", share / ".tidesync",
          ".tidesync/revisions/"};
}

fs::path state_file(const fs::path& share) {
  return share / ".tidesync" / "state.json";
}

fs::path default_cache(const fs::path& share) {
  return share / ".tidesync" / "cache";
}

std::string render_state(const share_state& s) {
  json::object o;
  o.set("revision", s.revision);
  o.set("previous", s.previous);
  // Rounded up: the previous revision is never kept less than its grace period.
  o.set("switchedAt", rfc3339::format(std::chrono::ceil<std::chrono::seconds>(s.switched_at)));
  o.set("files", static_cast<int64_t>(s.files));
  o.set("bytes", static_cast<int64_t>(s.bytes));
  return json::dump(json::value(std::move(o))) + "\n";
}

expected<share_state> parse_state(std::string_view json_text) {
  auto doc = json::parse(json_text);
  if (!doc) return doc.error();
  if (!doc->is_object()) return make_error(errc::parse_error, "state.json is not an object");
  share_state s;
  s.revision = std::string(doc->get_string("revision"));
  if (!archive::valid_revision(s.revision))
    return make_error(errc::parse_error, "state.json names no valid revision");
  s.previous = std::string(doc->get_string("previous"));
  if (!s.previous.empty() && !archive::valid_revision(s.previous)) s.previous.clear();
  if (auto t = rfc3339::parse(doc->get_string("switchedAt"))) s.switched_at = *t;
  s.files = static_cast<uint64_t>(std::max<int64_t>(0, doc->get_int("files")));
  s.bytes = static_cast<uint64_t>(std::max<int64_t>(0, doc->get_int("bytes")));
  return s;
}

std::optional<share_state> read_state(const fs::path& share) {
  std::ifstream in(state_file(share), std::ios::binary);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  auto s = parse_state(ss.str());
  if (!s) return std::nullopt;
  return *s;
}

expected<void> write_state(const fs::path& share, const share_state& s) {
  const fs::path path = state_file(share);
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << render_state(s);
    out.flush();
    if (!out) return make_error(errc::io_error, "cannot write " + tmp.string());
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    return make_error(errc::io_error, "cannot rename " + tmp.string() + " to " + path.string());
  return {};
}

share_state reconcile_state(const std::optional<std::string>& current_rev,
                            const std::optional<share_state>& state, sys_clock::time_point now) {
  if (!current_rev) return state.value_or(share_state{});
  if (state && state->revision == *current_rev) return *state;
  share_state s;
  s.revision = *current_rev;
  if (state) s.previous = state->revision;
  s.switched_at = now;
  return s;
}

prune_plan plan_prune(const std::vector<std::string>& present,
                      const std::optional<std::string>& current,
                      const std::optional<share_state>& state, sys_clock::time_point now,
                      std::chrono::milliseconds grace) {
  prune_plan out;
  if (current) out.keep.insert(*current);
  if (current && state && state->revision == *current && !state->previous.empty() &&
      state->previous != *current) {
    const auto until = state->switched_at + grace;
    if (now < until) {
      out.keep.insert(state->previous);
      if (std::find(present.begin(), present.end(), state->previous) != present.end())
        out.recheck_at = until;
    }
  }
  for (const auto& rev : present)
    if (out.keep.count(rev) == 0) out.remove.push_back(rev);
  std::sort(out.remove.begin(), out.remove.end());
  return out;
}

tree_stats count_tree(const fs::path& dir) {
  tree_stats out;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, fs::directory_options::none, ec), end;
       !ec && it != end; it.increment(ec)) {
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) != 0) continue;
    if (S_ISREG(st.st_mode)) {
      ++out.files;
      out.bytes += static_cast<uint64_t>(st.st_size);
    }
  }
  return out;
}

}  // namespace tidesync::mirror
