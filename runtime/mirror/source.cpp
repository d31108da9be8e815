#include "runtime/mirror/source.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>

#include "runtime/http/loop.hpp"
#include "runtime/transfer/backend.hpp"
#include "runtime/transfer/engine.hpp"

namespace tidesync::mirror {
namespace fs = std::filesystem;

expected<transfer::location> source_location(source_type type, const std::string& source,
                                             const transfer::env_lookup& env) {
  using transfer::location_kind;
  if (source.empty()) return make_error(errc::invalid_argument, "--source must not be empty");
  if (type == source_type::http) {
    if (source.rfind("http://", 0) != 0 && source.rfind("https://", 0) != 0)
      return make_error(errc::invalid_argument,
                        "--source-type http wants an http:// or https:// URL (a directory URL "
                        "ends in '/'), not \"" +
                            source + "\"");
    return transfer::parse_location(source, env);
  }
  if (source.find(':') != std::string::npos || source.rfind("//", 0) == 0)
    return make_error(errc::invalid_argument,
                      "--source \"" + source + "\": write " +
                          (type == source_type::s3 ? "BUCKET/PREFIX" : "PATH") +
                          "; the remote is configured by REMOTE_* variables");
  const transfer::env_lookup seeded = transfer::with_seed_remote(env);
  auto loc = transfer::parse_location(std::string(transfer::k_seed_remote) + ":" + source, seeded);
  if (!loc) return loc.error();
  const location_kind want = type == source_type::s3 ? location_kind::s3 : location_kind::sftp;
  if (loc->kind != want)
    return make_error(errc::config_error,
                      std::string("--source-type ") + std::string(to_string(type)) +
                          " needs REMOTE_TYPE=" + std::string(to_string(type)) +
                          " (the remote \"remote\" is configured by REMOTE_* variables)");
  return loc;
}

expected<source_listing> list_source(source_type type, const std::string& source,
                                     const transfer::location& where) {
  http::loop loop;
  auto b = transfer::make_backend(where, loop, transfer::backend_options{});
  if (!b) return b.error();
  auto entries = (*b)->list();
  if (!entries) {
    error e = entries.error();
    e.message = "cannot list the source " + where.text + ": " + e.message;
    return e;
  }
  source_listing out;
  for (const auto& e : *entries) {
    if (e.dir) continue;
    ++out.files;
    out.bytes += e.size;
  }
  out.revision = listing_revision(type, source, std::move(*entries));
  return out;
}

expected<uint64_t> link_tree(const fs::path& from, const fs::path& to) {
  std::error_code ec;
  fs::create_directories(to, ec);
  if (ec) return make_error(errc::io_error, "cannot create " + to.string() + ": " + ec.message());
  uint64_t linked = 0;
  bool linking = true;
  for (fs::recursive_directory_iterator it(from, ec), end; !ec && it != end; it.increment(ec)) {
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) != 0) continue;
    const fs::path dst = to / it->path().lexically_relative(from);
    if (S_ISDIR(st.st_mode)) {
      if (::mkdir(dst.c_str(), 0755) != 0 && errno != EEXIST)
        return make_error(errc::io_error,
                          "cannot create " + dst.string() + ": " + std::strerror(errno));
      continue;
    }
    if (!S_ISREG(st.st_mode) || !linking) continue;
    if (::link(it->path().c_str(), dst.c_str()) == 0) {
      ++linked;
      continue;
    }
    if (errno == EXDEV || errno == EPERM || errno == EMLINK || errno == ENOTSUP) {
      linking = false;  // the engine downloads the rest
      continue;
    }
    return make_error(errc::io_error, "cannot link " + it->path().string() + " to " + dst.string() +
                                          ": " + std::strerror(errno));
  }
  if (ec) return make_error(errc::io_error, "cannot walk " + from.string() + ": " + ec.message());
  return linked;
}

expected<fill_result> fill_from_source(const transfer::location& where, const fs::path& target,
                                       const std::optional<fs::path>& previous) {
  fill_result out;
  if (previous) {
    auto linked = link_tree(*previous, target);
    if (!linked) return linked.error();
    out.linked = *linked;
  } else {
    std::error_code ec;
    fs::create_directories(target, ec);
    if (ec)
      return make_error(errc::io_error, "cannot create " + target.string() + ": " + ec.message());
  }
  transfer::location dst;
  dst.kind = transfer::location_kind::local;
  dst.path = target.string();
  dst.text = target.string();
  transfer::engine_options opts;
  opts.m = transfer::mode::sync;
  // The target is ours, under <share>/.tidesync: the valves that guard a user's directory
  // (owner, emptying) do not apply; an empty source is refused before (build.cpp).
  opts.force_delete_local_dir = true;
  auto r = transfer::run_engine(where, dst, opts);
  if (!r) return r.error();
  if (r->failed > 0) {
    std::string first = r->errors.empty() ? std::string() : ": " + r->errors.front();
    return make_error(errc::unavailable,
                      std::to_string(r->failed) + " file(s) failed to copy" + first);
  }
  out.copied = r->copied;
  out.bytes = r->bytes;
  out.deleted = r->deleted;
  out.seconds = r->seconds;
  if (out.linked > 0) {
    // What stayed a link: the files still shared with the previous revision.
    uint64_t shared = 0;
    std::error_code ec;
    for (fs::recursive_directory_iterator it(target, ec), end; !ec && it != end; it.increment(ec)) {
      struct stat st {};
      if (::lstat(it->path().c_str(), &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink > 1) ++shared;
    }
    out.linked = shared;
  }
  return out;
}

}  // namespace tidesync::mirror
