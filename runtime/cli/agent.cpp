// `tidesync agent ...`: the commands that run inside DataSync Jobs and workspace pods.
//   agent populate  fill one volume with one VM image (runtime/transfer/populate.hpp)
//   agent wait      block until a DataSync is Ready (agent_wait.cpp)
//   agent config    keep a shared config directory on the latest revision (agent_config.cpp)
//   agent restore|sidecar|health  the PodFilesystemSync agents (agent_pfs.cpp)
//   agent mirror    the SharedVolume syncer: fill a share from git/S3/SFTP/HTTP (agent_mirror.cpp)
// docs/agent-populate.md describes populate's flags, files and exit codes.
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "actors/datasync_logic.hpp"
#include "config/datasync.hpp"
#include "runtime/cli/commands.hpp"
#include "runtime/cli/flag_arg.hpp"
#include "runtime/json/value.hpp"
#include "runtime/transfer/populate.hpp"
#include "runtime/transfer/remote.hpp"

namespace tidesync::cli {
namespace {

using namespace tidesync::transfer;

constexpr const char* k_default_termination_log = "/dev/termination-log";
constexpr int k_exit_usage = 2;
constexpr int k_exit_transient = 1;

void agent_usage(std::FILE* out) {
  std::fprintf(out,
               "Usage: tidesync agent SUBCOMMAND [FLAGS]\n\n"
               "Commands that run inside DataSync Jobs and workspace pods:\n"
               "  populate   fill one volume with one VM image (see 'tidesync agent populate "
               "--help')\n"
               "  wait       block until a DataSync is Ready (see 'tidesync agent wait --help')\n"
               "  config     init|watch: keep a shared config directory on the latest revision\n"
               "             (see 'tidesync agent config --help')\n"
               "  restore    PodFilesystemSync init container: restore a volume from the remote\n"
               "  sidecar    PodFilesystemSync sidecar: sync a volume to the remote on a schedule\n"
               "  health     the sidecar's liveness check (exit 1 when unhealthy)\n"
               "  mirror     SharedVolume syncer: keep a share on a git/S3/SFTP/HTTP source's\n"
               "             latest revision, switched atomically (see 'tidesync agent mirror "
               "--help')\n");
}

void populate_usage(std::FILE* out) {
  std::fprintf(
      out,
      "Usage: tidesync agent populate --source-type http|s3|pvc --url URL --dest DIR [FLAGS]\n\n"
      "Streams the image at URL to DIR/NAME: into DIR/.NAME.partial first (resumed from its\n"
      "size after a restart), verified, fsynced and renamed; then DIR/.tidesync-digest records\n"
      "the digest. A later run that finds the same data recorded exits at once.\n\n"
      "URLs: http(s)://host/path; s3://bucket/key (the remote is configured by REMOTE_*\n"
      "variables, or RCLONE_CONFIG_REMOTE_*, as for 'tidesync sync-to-remote');\n"
      "pvc://claim/path (the file PATH under --pvc-root, where the source volume is mounted).\n\n"
      "Flags:\n"
      "  --source-type TYPE       http, s3 or pvc\n"
      "  --url URL                the image\n"
      "  --dest DIR               the mounted volume to fill\n"
      "  --file NAME              the file name in DIR (default: the URL's last element)\n"
      "  --checksum sha256:HEX    the expected digest (bare 64 hex digits accepted)\n"
      "  --size N                 the expected size in bytes\n"
      "  --pvc-root DIR           where the source volume is mounted (default /source)\n"
      "  --termination-log PATH   where to write the outcome as JSON (default\n"
      "                           /dev/termination-log when it is writable)\n\n"
      "Exit codes: 0 done (or already present), 1 transient failure (retry), 2 bad usage,\n"
      "3 the source does not exist, 4 checksum or size mismatch, 5 access denied.\n");
}

int exit_code(populate_outcome o) {
  switch (o) {
    case populate_outcome::succeeded:
    case populate_outcome::already_present:
      return datasync::k_exit_ok;
    case populate_outcome::missing_source:
      return datasync::k_exit_missing_source;
    case populate_outcome::checksum_mismatch:
      return datasync::k_exit_checksum_mismatch;
    case populate_outcome::unauthorized:
      return datasync::k_exit_unauthorized;
    case populate_outcome::transient:
      return k_exit_transient;
  }
  return k_exit_transient;
}

// The outcome for Kubernetes (the container's terminated.message) and for people.
void write_termination_log(const std::string& path, const populate_result& r) {
  if (path.empty()) return;
  json::value doc;
  doc["reason"] = reason_name(r.outcome);
  doc["message"] = r.message;
  doc["digest"] = r.digest.empty() ? json::value(nullptr) : json::value(r.digest);
  doc["bytes"] = static_cast<int64_t>(r.bytes);
  const std::string text = json::dump(doc) + "\n";
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) {
    std::fprintf(stderr, "tidesync agent populate: cannot write the termination log %s: %s\n",
                 path.c_str(), std::strerror(errno));
    return;
  }
  std::fwrite(text.data(), 1, text.size(), f);
  std::fclose(f);
}

std::string default_termination_log() {
  return ::access(k_default_termination_log, W_OK) == 0 ? k_default_termination_log : "";
}

int run_populate(int argc, char** argv) {
  std::string source_type, url, dest, file, checksum_text, size_text;
  std::string pvc_root = "/source";
  std::optional<std::string> termination_log;
  auto bad = [](const std::string& message) {
    std::fprintf(stderr, "tidesync agent populate: %s\n\n", message.c_str());
    populate_usage(stderr);
    return k_exit_usage;
  };
  for (int i = 1; i < argc; ++i) {
    auto [flag, value, has_value] = split_flag(argv[i]);
    if (flag == "-h" || flag == "--help") {
      populate_usage(stdout);
      return 0;
    }
    std::string* target = nullptr;
    if (flag == "--source-type") {
      target = &source_type;
    } else if (flag == "--url") {
      target = &url;
    } else if (flag == "--dest") {
      target = &dest;
    } else if (flag == "--file") {
      target = &file;
    } else if (flag == "--checksum") {
      target = &checksum_text;
    } else if (flag == "--size") {
      target = &size_text;
    } else if (flag == "--pvc-root") {
      target = &pvc_root;
    } else if (flag == "--termination-log") {
      termination_log.emplace();
      target = &*termination_log;
    } else {
      return bad("unknown argument " + std::string(flag));
    }
    if (!has_value) {
      if (i + 1 >= argc) return bad(std::string(flag) + " needs a value");
      value = argv[++i];
    }
    *target = value;
  }
  if (source_type.empty() || url.empty() || dest.empty())
    return bad("--source-type, --url and --dest are required");
  const auto type = config::parse_datasync_source_type(source_type);
  if (!type) return bad("--source-type wants http, s3 or pvc, not \"" + source_type + "\"");
  auto where = config::split_source_url(*type, url);
  if (!where) return bad("--url: " + where.error().message);

  populate_options o;
  o.url = url;
  o.dest_dir = dest;
  switch (*type) {
    case config::datasync_source_type::http:
      o.type = populate_source::http;
      o.http_url = url;
      break;
    case config::datasync_source_type::s3:
      o.type = populate_source::s3;
      o.bucket = where->authority;
      o.key = where->path;
      break;
    case config::datasync_source_type::pvc:
      o.type = populate_source::pvc;
      if (pvc_root.empty()) return bad("--pvc-root must not be empty");
      o.source_path = pvc_root + "/" + where->path;
      break;
  }
  o.file_name = file.empty() ? default_file_name(o.type, url) : file;
  if (o.file_name.empty()) return bad("--url \"" + url + "\" names no file: give --file NAME");
  if (o.file_name.find('/') != std::string::npos || o.file_name == "." || o.file_name == ".." ||
      o.file_name == ".tidesync-digest")
    return bad("--file \"" + o.file_name + "\": want a plain file name (no '/')");
  if (!checksum_text.empty()) {
    auto c = config::normalize_checksum(checksum_text);
    if (!c) return bad("--checksum: " + c.error().message);
    o.checksum = *c;
  }
  if (!size_text.empty()) {
    char* end = nullptr;
    errno = 0;
    const unsigned long long n = std::strtoull(size_text.c_str(), &end, 10);
    if (errno != 0 || *end != '\0' || size_text[0] == '-')
      return bad("--size wants a number of bytes, not \"" + size_text + "\"");
    o.size = n;
  }
  const std::string log_path = termination_log ? *termination_log : default_termination_log();

  populate_result r;
  if (o.type == populate_source::s3) {
    // Only the remote's settings matter here: the bucket and key come from the URL.
    auto loc = parse_location("remote:" + o.bucket, with_seed_remote(process_env()));
    if (!loc || loc->kind != location_kind::s3) {
      r.outcome = populate_outcome::unauthorized;
      r.message = "the S3 remote is not configured: " +
                  (loc ? std::string("REMOTE_TYPE must be s3") : loc.error().message);
    } else {
      o.s3 = loc->s3;
    }
  }
  if (r.message.empty()) r = populate(o);
  if (r.outcome == populate_outcome::succeeded || r.outcome == populate_outcome::already_present) {
    std::printf("%s\n", r.message.c_str());
    std::fflush(stdout);
  } else {
    std::fprintf(stderr, "tidesync agent populate: %s: %s\n",
                 std::string(reason_name(r.outcome)).c_str(), r.message.c_str());
  }
  write_termination_log(log_path, r);
  return exit_code(r.outcome);
}

}  // namespace

int run_agent(int argc, char** argv) {
  if (argc < 2) {
    agent_usage(stderr);
    return k_exit_usage;
  }
  const std::string_view sub = argv[1];
  if (sub == "-h" || sub == "--help" || sub == "help") {
    agent_usage(stdout);
    return 0;
  }
  if (sub == "populate") return run_populate(argc - 1, argv + 1);
  if (sub == "wait") return run_agent_wait(argc - 1, argv + 1);
  if (sub == "config") return run_agent_config(argc - 1, argv + 1);
  if (sub == "restore" || sub == "sidecar" || sub == "health")
    return run_agent_pfs(argc - 1, argv + 1);
  if (sub == "mirror") return run_agent_mirror(argc - 1, argv + 1);
  std::fprintf(stderr, "tidesync agent: unknown subcommand \"%s\"\n\n", argv[1]);
  agent_usage(stderr);
  return k_exit_usage;
}

}  // namespace tidesync::cli
