#include "runtime/mirror/build.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <optional>
#include <system_error>

#include "runtime/archive/live_tree.hpp"
#include "runtime/json/value.hpp"
#include "runtime/mirror/git.hpp"
#include "runtime/mirror/share.hpp"
#include "runtime/mirror/source.hpp"
#include "runtime/transfer/local_fs.hpp"

namespace tidesync::mirror {
namespace {

namespace fs = std::filesystem;

std::string human_bytes(uint64_t n) {
  char buf[32];
  if (n < 1024) return std::to_string(n) + " B";
  const double v = static_cast<double>(n);
  if (n < (1ull << 20)) {
    std::snprintf(buf, sizeof buf, "%.1f KiB", v / 1024);
  } else if (n < (1ull << 30)) {
    std::snprintf(buf, sizeof buf, "%.1f MiB", v / (1 << 20));
  } else {
    std::snprintf(buf, sizeof buf, "%.2f GiB", v / (1 << 30));
  }
  return buf;
}

std::string counts(uint64_t files, uint64_t bytes) {
  return std::to_string(files) + " file(s), " + human_bytes(bytes);
}

bool is_real_dir(const fs::path& p) {
  std::error_code ec;
  return fs::is_directory(fs::symlink_status(p, ec));
}

// The counts of a revision already on the share: from state.json when it describes it.
build_result existing(const fs::path& share, const fs::path& dir, build_outcome outcome,
                      const std::string& rev) {
  build_result out;
  out.outcome = outcome;
  out.revision = rev;
  if (auto st = read_state(share); st && st->revision == rev) {
    out.files = st->files;
    out.bytes = st->bytes;
  } else {
    const auto c = count_tree(dir);
    out.files = c.files;
    out.bytes = c.bytes;
  }
  return out;
}

}  // namespace

expected<build_result> build_revision(const build_request& r, const transfer::env_lookup& env) {
  const auto layout = share_layout(r.share);
  const std::optional<std::string> current = archive::live_revision(layout);

  // 1. The source's revision.
  std::string rev, found;
  git_source git;
  std::optional<transfer::location> where;
  std::optional<source_listing> listing;
  if (r.type == source_type::git) {
    git.url = r.source;
    git.ref = r.ref;
    git.cache = r.cache;
    git.from_env(env);
    auto c = fetch_commit(git);
    if (!c) return c.error();
    rev = c->commit;
    found = describe(r.ref) + " is commit " + rev.substr(0, 12) + " (" + c->detail + ")";
  } else {
    auto loc = source_location(r.type, r.source, env);
    if (!loc) return loc.error();
    where = *loc;
    auto l = list_source(r.type, r.source, *where);
    if (!l) return l.error();
    listing = *l;
    rev = l->revision;
    found = "the source lists " + counts(l->files, l->bytes) + " (" + rev + ")";
  }
  auto final_dir = archive::revision_dir(layout, rev);
  if (!final_dir) return final_dir.error();

  // 2. Nothing to build?
  if (current && *current == rev) {
    auto out = existing(r.share, *final_dir, build_outcome::unchanged, rev);
    out.message = "unchanged: " + found;
    return out;
  }
  if (is_real_dir(*final_dir)) {
    auto out = existing(r.share, *final_dir, build_outcome::reused, rev);
    out.message = found + "; still on the share, switched back to it";
    return out;
  }

  // 3. Build it beside the current tree.
  if (listing && listing->files == 0 && current)
    return make_error(errc::invalid_argument,
                      "the source is empty: refusing to replace revision " + *current +
                          " with an empty tree (check --source and the credentials; an empty "
                          "source is taken for a mistake once the share has content)");
  auto incoming = archive::prepare_incoming(layout, rev);
  if (!incoming) return incoming.error();
  build_result out;
  out.outcome = build_outcome::built;
  out.revision = rev;
  const auto started = std::chrono::steady_clock::now();
  std::string how;
  if (r.type == source_type::git) {
    if (auto c = checkout_commit(git, rev, *incoming); !c) return c.error();
    how = "checked out";
  } else {
    std::optional<fs::path> previous;
    if (current)
      if (auto dir = archive::revision_dir(layout, *current); dir && is_real_dir(*dir))
        previous = *dir;
    auto f = fill_from_source(*where, *incoming, previous);
    if (!f) return f.error();
    how = "downloaded " + counts(f->copied, f->bytes);
    if (previous) how += ", " + std::to_string(f->linked) + " unchanged file(s) hard-linked";
  }
  if (auto s = transfer::local_fs::sync_filesystem(incoming->string()); !s) return s.error();
  const auto c = count_tree(*incoming);
  out.files = c.files;
  out.bytes = c.bytes;
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  char took[32];
  std::snprintf(took, sizeof took, "%.1f s", secs);
  out.message = found + "; " + how + ": " + counts(c.files, c.bytes) + " in " + took;
  return out;
}

std::string render_result(const expected<build_result>& r) {
  json::object o;
  if (!r) {
    o.set("ok", false);
    o.set("code", std::string(to_string(r.error().code)));
    o.set("message", r.error().message);
    return json::dump(json::value(std::move(o))) + "\n";
  }
  o.set("ok", true);
  const char* outcome = r->outcome == build_outcome::built    ? "built"
                        : r->outcome == build_outcome::reused ? "reused"
                                                              : "unchanged";
  o.set("outcome", outcome);
  o.set("revision", r->revision);
  o.set("files", static_cast<int64_t>(r->files));
  o.set("bytes", static_cast<int64_t>(r->bytes));
  o.set("message", r->message);
  return json::dump(json::value(std::move(o))) + "\n";
}

expected<build_result> parse_result(std::string_view text) {
  auto doc = json::parse(text);
  if (!doc || !doc->is_object())
    return make_error(errc::internal, "the sync process sent no readable result");
  const std::string message(doc->get_string("message"));
  const json::value* ok = doc->as_object().find("ok");
  if (ok == nullptr || !ok->is_bool())
    return make_error(errc::internal, "the sync process sent no readable result");
  if (!ok->as_bool())
    return make_error(errc::unavailable, message.empty() ? "the sync failed" : message);
  build_result out;
  const std::string_view outcome = doc->get_string("outcome");
  if (outcome == "built") {
    out.outcome = build_outcome::built;
  } else if (outcome == "reused") {
    out.outcome = build_outcome::reused;
  } else if (outcome == "unchanged") {
    out.outcome = build_outcome::unchanged;
  } else {
    return make_error(errc::internal, "the sync process sent an unknown outcome");
  }
  out.revision = std::string(doc->get_string("revision"));
  if (!archive::valid_revision(out.revision))
    return make_error(errc::internal, "the sync process sent an invalid revision");
  out.files = static_cast<uint64_t>(std::max<int64_t>(0, doc->get_int("files")));
  out.bytes = static_cast<uint64_t>(std::max<int64_t>(0, doc->get_int("bytes")));
  out.message = message;
  return out;
}

}  // namespace tidesync::mirror
