// `tidesync agent config init|watch`: keeps <root>/live (an emptyDir such as /shared) on the
// latest revision of one owner's config (docs/sharedconfig.md, "The agent"). latest.json comes
// from the store, or with --api from the controller's config API (long-poll); the bundle always
// comes from the store.
//
// One round: read latest.json; when its revision is already live, nothing to do; otherwise
// download the bundle to <root>/.incoming-<rev>.tar.zst, check its sha256 against latest.json,
// extract it into <root>/.incoming-<rev>/ (refusing hostile entries, within --max-bytes and
// --max-entries), promote it (rename into revisions/, then rename a new symlink over live),
// prune to --keep, delete the archive. Any failure leaves the live revision as it was.
// Every round ends by writing <root>/.status.json (temp + rename) for probes.
//
//   init   one round. Exit 0 when the latest revision is live, or when no config is published
//          yet (no live link then), or when the round failed but an earlier revision is live
//          (a restarted pod starts with its last good config; the error is a warning). Exit 1
//          when the round failed and nothing is live; 2 bad usage.
//   watch  rounds every --interval (store) or on each answer of a long-poll (--api); a failed
//          round is retried with backoff capped at the interval. SIGTERM or SIGINT ends it with
//          exit 0, cancelling a long-poll in flight.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>

#include "config/validation.hpp"
#include "runtime/archive/bundle.hpp"
#include "runtime/archive/live_tree.hpp"
#include "runtime/archive/store.hpp"
#include "runtime/backoff.hpp"
#include "runtime/cli/commands.hpp"
#include "runtime/cli/flag_arg.hpp"
#include "runtime/configapi/client.hpp"
#include "runtime/http/loop.hpp"
#include "runtime/json/value.hpp"
#include "runtime/rfc3339.hpp"
#include "runtime/transfer/backend.hpp"
#include "runtime/transfer/remote.hpp"
#include "runtime/transfer/token_bucket.hpp"

namespace tidesync::cli {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr int k_exit_ok = 0;
constexpr int k_exit_failed = 1;
constexpr int k_exit_usage = 2;
constexpr const char* k_status_file = ".status.json";
// How long a signal waits for a round in progress before the process leaves without it.
// Leaving mid-round is safe: every change under the root is a rename, and the next start
// removes what an interrupted round left.
constexpr auto k_stop_grace = 2s;

void config_usage(std::FILE* out) {
  std::fprintf(
      out,
      "Usage: tidesync agent config init|watch --store LOCATION [FLAGS]\n"
      "       tidesync agent config init|watch --api URL --config NS/NAME --store LOCATION "
      "[FLAGS]\n\n"
      "Keeps ROOT/live on the latest revision of one owner's config (docs/sharedconfig.md):\n"
      "ROOT/live is a symlink to ROOT/revisions/<revision>, switched atomically, so a reader\n"
      "that opens files through it sees one whole revision. latest.json is read from the store,\n"
      "or with --api from the controller's config API (watch long-polls it, so a new revision\n"
      "is seen at once); the bundle is always downloaded from the store.\n\n"
      "  init    fetch the latest revision once (an init container). Exit 0 when it is live,\n"
      "          when nothing is published yet, or when it failed but an earlier revision is\n"
      "          still live (printed as a warning); 1 when it failed and nothing is live.\n"
      "  watch   keep fetching new revisions (a sidecar): every --interval from the store, or\n"
      "          by long-poll with --api; failures are retried with backoff and leave the live\n"
      "          revision in place. SIGTERM or SIGINT stops it (exit 0).\n\n"
      "The store is the owner's folder: REMOTE:bucket/prefix/owner as 'tidesync sync' takes a\n"
      "remote, or s3://bucket/prefix/owner. The remote named 'remote' (and s3://) is configured\n"
      "by REMOTE_* variables (REMOTE_TYPE=s3, REMOTE_ACCESS_KEY_ID, REMOTE_SECRET_ACCESS_KEY,\n"
      "REMOTE_ENDPOINT, REMOTE_REGION, ...; RCLONE_CONFIG_REMOTE_* works too); other remotes by\n"
      "RCLONE_CONFIG_<NAME>_*. A local directory works as well. With --engine=rclone the store\n"
      "is read by the rclone binary instead, so it may be any remote rclone knows (its config\n"
      "file, or RCLONE_CONFIG_<NAME>_*; REMOTE_* becomes the remote 'remote').\n\n"
      "Flags:\n"
      "  --store LOCATION     the owner's folder in the store (required, with --api too)\n"
      "  --api URL            read latest.json from the config API, e.g.\n"
      "                       http://tidesync-config.tidesync-system:8085\n"
      "  --config NS/NAME     with --api: the SharedConfig\n"
      "  --token-file F       with --api: the bearer token, re-read before each request\n"
      "                       (default $TIDESYNC_CONFIG_TOKEN): the key token of Secret\n"
      "                       tidesync-config-api in the controller's namespace\n"
      "  --engine E           native (default: S3, SFTP, crypt, local) or rclone (any rclone\n"
      "                       remote, read through the rclone binary; $TIDESYNC_RCLONE)\n"
      "  --root DIR           the shared directory (default /shared)\n"
      "  --keep N             extracted revisions to keep, the live one always (default 3)\n"
      "  --max-bytes SIZE     refuse a bundle whose archive or extracted files exceed SIZE\n"
      "                       (bytes, or 64M, 1G, ...; default 1G)\n"
      "  --max-entries N      refuse a bundle with more entries (default 100000)\n"
      "  --interval D         watch: how often to read latest.json from the store (default\n"
      "                       10s; 1m, 1h30m); with --api, the pause after a long-poll the\n"
      "                       server answered early, or while nothing is published\n"
      "  --wait D             watch with --api: how long one long-poll waits (default 30s,\n"
      "                       at most 60s)\n\n"
      "Files: ROOT/.status.json after each round: {\"revision\", \"checksum\" (the live\n"
      "revision), \"lastAttempt\", \"lastSuccess\", \"error\"}.\n");
}

struct settings {
  bool watch = false;
  fs::path root = "/shared";
  std::string store;
  bool rclone = false;  // --engine=rclone
  size_t keep = 3;
  uint64_t max_bytes = 1ull << 30;
  uint64_t max_entries = 100000;
  std::chrono::seconds interval = 10s;
  // --api: latest.json from the config API.
  std::string api;
  std::string config;  // NS/NAME
  std::string token_file;
  std::chrono::seconds wait = 30s;
};

// A plain number is bytes; with a suffix, rclone's size syntax (token_bucket.hpp).
expected<uint64_t> parse_bytes(const std::string& text) {
  if (!text.empty() && text.find_first_not_of("0123456789") == std::string::npos) {
    errno = 0;
    char* end = nullptr;
    unsigned long long v = std::strtoull(text.c_str(), &end, 10);
    if (errno == 0 && *end == '\0') return static_cast<uint64_t>(v);
  }
  return transfer::parse_size(text);
}

bool parse_count(const std::string& text, uint64_t& out) {
  if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos) return false;
  errno = 0;
  char* end = nullptr;
  unsigned long long v = std::strtoull(text.c_str(), &end, 10);
  if (errno != 0 || *end != '\0') return false;
  out = v;
  return true;
}

// Returns an exit code when the process should stop here (help, bad usage).
std::optional<int> parse_args(int argc, char** argv, settings& s) {
  auto bad = [](const std::string& message) {
    std::fprintf(stderr, "tidesync agent config: %s\n\n", message.c_str());
    config_usage(stderr);
    return std::optional<int>(k_exit_usage);
  };
  if (argc < 2) return bad("want init or watch");
  const std::string_view sub = argv[1];
  if (sub == "-h" || sub == "--help" || sub == "help") {
    config_usage(stdout);
    return k_exit_ok;
  }
  if (sub != "init" && sub != "watch")
    return bad("unknown subcommand \"" + std::string(sub) + "\"");
  s.watch = sub == "watch";
  bool wait_set = false;
  for (int i = 2; i < argc; ++i) {
    auto [flag, value, has_value] = split_flag(argv[i]);
    if (flag == "-h" || flag == "--help") {
      config_usage(stdout);
      return k_exit_ok;
    }
    const bool known = flag == "--root" || flag == "--store" || flag == "--engine" ||
                       flag == "--keep" || flag == "--max-bytes" || flag == "--max-entries" ||
                       flag == "--api" || flag == "--config" || flag == "--token-file" ||
                       ((flag == "--interval" || flag == "--wait") && s.watch);
    if (!known) {
      if (flag == "--interval" || flag == "--wait")
        return bad(std::string(flag) + " is a flag of watch, not of init");
      return bad("unknown argument " + std::string(flag));
    }
    if (!has_value) {
      if (i + 1 >= argc) return bad(std::string(flag) + " needs a value");
      value = argv[++i];
    }
    if (flag == "--root") {
      if (value.empty()) return bad("--root must not be empty");
      s.root = value;
    } else if (flag == "--store") {
      s.store = value;
    } else if (flag == "--engine") {
      if (value != "native" && value != "rclone")
        return bad("--engine is native or rclone, not \"" + value + "\"");
      s.rclone = value == "rclone";
    } else if (flag == "--keep") {
      uint64_t n = 0;
      if (!parse_count(value, n) || n < 1)
        return bad("--keep wants a number of revisions, at least 1, not \"" + value + "\"");
      s.keep = static_cast<size_t>(n);
    } else if (flag == "--max-bytes") {
      auto n = parse_bytes(value);
      if (!n || *n == 0)
        return bad("--max-bytes wants a size such as 1073741824, 64M or 1G, not \"" + value + "\"");
      s.max_bytes = *n;
    } else if (flag == "--max-entries") {
      uint64_t n = 0;
      if (!parse_count(value, n) || n < 1)
        return bad("--max-entries wants a positive number, not \"" + value + "\"");
      s.max_entries = n;
    } else if (flag == "--interval") {
      auto d = config::parse_duration(value);
      if (!d) return bad("--interval \"" + value + "\": " + d.error().message);
      s.interval = *d;
    } else if (flag == "--wait") {
      auto d = config::parse_duration(value);
      if (!d) return bad("--wait \"" + value + "\": " + d.error().message);
      if (*d < 1s || *d > 60s)
        return bad("--wait is at least 1s and at most 60s (the server's cap), not \"" + value +
                   "\"");
      s.wait = *d;
      wait_set = true;
    } else if (flag == "--api") {
      if (value.empty()) return bad("--api must not be empty");
      s.api = value;
    } else if (flag == "--config") {
      if (!configapi::parse_config_ref(value))
        return bad("--config wants NAMESPACE/NAME (the SharedConfig), not \"" + value + "\"");
      s.config = value;
    } else if (flag == "--token-file") {
      if (value.empty()) return bad("--token-file must not be empty");
      s.token_file = value;
    }
  }
  if (s.store.empty())
    return bad("--store is required (with --api too: the bundles are downloaded from the store)");
  if (!s.api.empty() && s.config.empty()) return bad("--api needs --config NAMESPACE/NAME");
  if (s.api.empty() && (!s.config.empty() || !s.token_file.empty() || wait_set))
    return bad("--config, --token-file and --wait go with --api");
  return std::nullopt;
}

// "s3://bucket/path" is the remote named "remote" (REMOTE_*), as `agent populate` reads it.
std::string store_location_text(const std::string& store) {
  constexpr std::string_view scheme = "s3://";
  if (store.rfind(scheme, 0) == 0)
    return std::string(transfer::k_seed_remote) + ":" + store.substr(scheme.size());
  return store;
}

void say(const std::string& line) {
  std::fprintf(stdout, "tidesync agent config: %s\n", line.c_str());
  std::fflush(stdout);
}

void complain(const std::string& line) {
  std::fprintf(stderr, "tidesync agent config: %s\n", line.c_str());
  std::fflush(stderr);
}

// ---- .status.json ------------------------------------------------------------------------

struct status {
  std::optional<std::string> revision;  // live
  std::optional<std::string> checksum;  // of the live revision, when known
  std::optional<std::string> last_attempt, last_success, error;
};

json::value string_or_null(const std::optional<std::string>& s) {
  return s ? json::value(*s) : json::value(nullptr);
}

std::optional<std::string> member(const json::value& doc, std::string_view key) {
  const json::value* v = doc.at(key);
  if (v == nullptr || !v->is_string()) return std::nullopt;
  return v->as_string();
}

// What an earlier process wrote (lastSuccess and the live checksum survive a restart).
status read_status(const fs::path& root) {
  status s;
  std::FILE* f = std::fopen((root / k_status_file).c_str(), "rb");
  if (f == nullptr) return s;
  std::string text;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0 && text.size() < (1u << 20))
    text.append(buf, n);
  std::fclose(f);
  auto doc = json::parse(text);
  if (!doc || !doc->is_object()) return s;
  s.revision = member(*doc, "revision");
  s.checksum = member(*doc, "checksum");
  s.last_attempt = member(*doc, "lastAttempt");
  s.last_success = member(*doc, "lastSuccess");
  s.error = member(*doc, "error");
  return s;
}

// Writes <root>/.status.json through a temporary file and rename(): a probe reads the old
// document or the new one.
void write_status(const fs::path& root, const status& s) {
  json::value doc;
  doc["revision"] = string_or_null(s.revision);
  doc["checksum"] = string_or_null(s.checksum);
  doc["lastAttempt"] = string_or_null(s.last_attempt);
  doc["lastSuccess"] = string_or_null(s.last_success);
  doc["error"] = string_or_null(s.error);
  const std::string text = json::dump(doc) + "\n";
  const fs::path final_path = root / k_status_file;
  fs::path tmp = final_path;
  tmp += ".tmp-" + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  bool ok = fd >= 0;
  if (ok) {
    const char* p = text.data();
    size_t left = text.size();
    while (ok && left > 0) {
      ssize_t w = ::write(fd, p, left);
      if (w < 0 && errno == EINTR) continue;
      ok = w > 0;
      if (ok) {
        p += w;
        left -= static_cast<size_t>(w);
      }
    }
    ok = ::fsync(fd) == 0 && ok;
    ok = ::close(fd) == 0 && ok;
  }
  if (ok && ::rename(tmp.c_str(), final_path.c_str()) == 0) return;
  const int err = errno;
  ::unlink(tmp.c_str());
  complain("cannot write " + final_path.string() + ": " + std::strerror(err));
}

// ---- one round ---------------------------------------------------------------------------

enum class outcome { live, empty, failed };

class agent {
 public:
  agent(settings s, archive::config_store store) : s_(std::move(s)), store_(std::move(store)) {
    status_ = read_status(s_.root);
    // The checksum on record belongs to the revision on record; keep it only if that one is
    // still the live one.
    auto live = archive::live_revision(s_.root);
    if (!live || status_.revision != live) status_.checksum.reset();
    if (status_.checksum) checksum_of_ = live;
    status_.revision = live;
    status_.error.reset();
  }

  // A long-poll answered "still the live revision": a good attempt with nothing to do.
  void unchanged() {
    status_.last_attempt = rfc3339::now();
    status_.last_success = status_.last_attempt;
    status_.revision = archive::live_revision(s_.root);
    status_.error.reset();
    write_status(s_.root, status_);
  }

  // One round with latest.json from the store; writes .status.json.
  outcome round() { return round_with(store_.read_latest(), store_.where(), false); }

  // One round with latest.json as `latest` says (read from `from`; `from_api`: the config
  // API); writes .status.json.
  outcome round_with(const expected<std::optional<archive::latest>>& latest,
                     const std::string& from, bool from_api) {
    status_.last_attempt = rfc3339::now();
    outcome o = attempt(latest, from, from_api);
    status_.revision = archive::live_revision(s_.root);
    if (o == outcome::failed) {
      if (status_.revision != checksum_of_) status_.checksum.reset();
    } else {
      status_.last_success = status_.last_attempt;
      status_.error.reset();
    }
    write_status(s_.root, status_);
    return o;
  }

 private:
  outcome fail(std::string message) {
    auto live = archive::live_revision(s_.root);
    message += live ? "; revision " + *live + " stays live" : "; nothing is live yet";
    complain("error: " + message);
    status_.error = message;
    return outcome::failed;
  }

  outcome attempt(const expected<std::optional<archive::latest>>& latest, const std::string& from,
                  bool from_api) {
    std::error_code ec;
    fs::create_directories(s_.root, ec);
    if (ec)
      return fail("cannot create " + s_.root.string() + ": " + ec.message() +
                  "; mount a writable volume there or pass --root");

    if (!latest)
      // The client's messages already name the API.
      return fail(from_api ? "cannot read latest.json: " + latest.error().message +
                                 api_hint(latest.error())
                           : "cannot read latest.json from " + from + ": " +
                                 latest.error().message + hint(latest.error()));
    if (!*latest) {
      if (auto live = archive::live_revision(s_.root)) {
        if (!reported_empty_)
          say("no latest.json in " + from + "; revision " + *live + " stays live");
        reported_empty_ = from_api;
        return outcome::live;
      }
      if (!reported_empty_)
        say("no config published yet in " + from + " (no latest.json); nothing is live");
      reported_empty_ = from_api;
      return outcome::empty;
    }
    reported_empty_ = false;
    const archive::latest& l = **latest;
    if (archive::live_revision(s_.root) == l.revision) {
      if (!reported_live_ || *reported_live_ != l.revision)
        say("revision " + l.revision + " is already live");
      remember_live(l);
      return outcome::live;
    }

    // Already extracted (an earlier round stopped before the switch): switch only.
    auto extracted = archive::revision_dir(s_.root, l.revision);
    if (!extracted)
      return fail("latest.json names an invalid revision: " + extracted.error().message);
    std::error_code dir_ec;
    if (!fs::is_directory(fs::symlink_status(*extracted, dir_ec))) {
      if (auto r = fetch(l); r != outcome::live) return r;
    } else {
      say("revision " + l.revision + " is already extracted");
    }
    if (auto r = archive::promote(s_.root, l.revision); !r)
      return fail("cannot switch live to revision " + l.revision + ": " + r.error().message);
    say("revision " + l.revision + " is live");
    remember_live(l);
    if (auto pruned = archive::prune_revisions(s_.root, s_.keep); !pruned) {
      complain("warning: cannot prune old revisions: " + pruned.error().message);
    } else if (!pruned->empty()) {
      std::string names;
      for (const auto& n : *pruned)
        names += (names.empty() ? "" : ", ") + n;
      say("pruned " + names);
    }
    return outcome::live;
  }

  // Downloads, checks and extracts revision `l` into .incoming-<rev>/. outcome::live: ready
  // to promote.
  outcome fetch(const archive::latest& l) {
    auto incoming = archive::prepare_incoming(s_.root, l.revision);
    if (!incoming)
      return fail("cannot prepare " + s_.root.string() + ": " + incoming.error().message);
    const fs::path file = s_.root / (".incoming-" + l.revision + ".tar.zst");
    auto cleanup = [&] {
      std::error_code ec;
      fs::remove(file, ec);
      fs::remove_all(*incoming, ec);
    };

    say("downloading revision " + l.revision + " from " + store_.where());
    auto sha = store_.download_bundle(l.revision, file, s_.max_bytes);
    if (!sha) {
      cleanup();
      return fail("cannot download revision " + l.revision + ": " + sha.error().message +
                  hint(sha.error()));
    }
    if (*sha != l.checksum) {
      cleanup();
      return fail("revision " + l.revision + ": checksum mismatch: latest.json says " + l.checksum +
                  " but the bundle is " + *sha +
                  " (the bundle was replaced or damaged after publishing; publish the config "
                  "again)");
    }
    say("verified revision " + l.revision + " (" + *sha + ")");

    archive::unpack_limits limits;
    limits.max_bytes = s_.max_bytes;
    limits.max_entries = s_.max_entries;
    limits.expected_sha256 = l.checksum;
    auto unpacked = archive::unpack_bundle(file, *incoming, limits);
    if (!unpacked) {
      cleanup();
      const std::string& why = unpacked.error().message;
      return fail("revision " + l.revision + " is not a valid bundle: " + why +
                  (why.find("limit") != std::string::npos
                       ? " (raise --max-bytes or --max-entries if the config really is that big)"
                       : ""));
    }
    say("extracted revision " + l.revision + ": " + std::to_string(unpacked->entries) +
        " entries, " + std::to_string(unpacked->content_bytes) + " bytes");
    std::error_code ec;
    fs::remove(file, ec);
    return outcome::live;
  }

  void remember_live(const archive::latest& l) {
    status_.checksum = l.checksum;
    checksum_of_ = l.revision;
    reported_live_ = l.revision;
  }

  // The client's messages already say what to check about the token.
  static std::string api_hint(const error& e) {
    if (e.transient()) return " (the config API may be unreachable; it is retried)";
    return {};
  }

  static std::string hint(const error& e) {
    if (e.code == errc::forbidden || e.code == errc::unauthorized)
      return " (check the REMOTE_* credentials)";
    if (e.transient()) return " (the store may be unreachable; it is retried)";
    return {};
  }

  settings s_;
  archive::config_store store_;
  status status_;
  std::optional<std::string> checksum_of_;    // the revision status_.checksum belongs to
  std::optional<std::string> reported_live_;  // "already live" is said once per revision
  bool reported_empty_ = false;  // with --api, "nothing published" is said once, not per poll
};

// ---- init / watch ------------------------------------------------------------------------

// latest.json as the config API answered it, for a round.
expected<std::optional<archive::latest>> as_latest(const expected<configapi::latest_result>& r) {
  if (!r) return r.error();
  if (r->state == configapi::latest_state::changed) return std::optional(*r->latest);
  return std::optional<archive::latest>();
}

int run_init(agent& a, const settings& s, configapi::client* api) {
  const outcome o = api != nullptr
                        ? a.round_with(as_latest(api->get_latest(std::nullopt)), api->where(), true)
                        : a.round();
  if (o != outcome::failed) return k_exit_ok;
  if (auto live = archive::live_revision(s.root)) {
    complain("warning: starting with revision " + *live + ", the last one fetched");
    return k_exit_ok;
  }
  return k_exit_failed;
}

// SIGTERM and SIGINT, blocked in every thread (block_stop_signals() runs before any thread
// starts, the HTTP loop's included) so that only watch_control's waiter receives them.
sigset_t stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  return set;
}

void block_stop_signals() {
  sigset_t set = stop_signals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

// Stopping watch: one thread waits for SIGTERM/SIGINT (as `tidesync sync --schedule`), calls
// `on_stop` (which cancels a long-poll in flight), and wakes the pause. A round in progress (a
// download) gets k_stop_grace, then the process leaves: every change under the root is
// atomic, and the next start cleans up after it.
class watch_control {
 public:
  explicit watch_control(std::function<void()> on_stop) : on_stop_(std::move(on_stop)) {
    waiter_ = std::thread([this] { wait_for_signal(); });
  }
  ~watch_control() { finish(); }
  watch_control(const watch_control&) = delete;
  watch_control& operator=(const watch_control&) = delete;

  // Marks a round in progress; false when stopping (do not start it).
  bool begin_round() {
    std::lock_guard lock(mu_);
    if (stopping_) return false;
    in_round_ = true;
    return true;
  }
  void end_round() {
    std::lock_guard lock(mu_);
    in_round_ = false;
    cv_.notify_all();
  }
  // Waits `d`, or less when a signal comes; true when stopping.
  bool pause(std::chrono::milliseconds d) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, d, [&] { return stopping_; });
  }
  bool stopping() {
    std::lock_guard lock(mu_);
    return stopping_;
  }
  // Ends the signal thread (signalling it when no signal came); the signal's name.
  std::string finish() {
    if (waiter_.joinable()) {
      {
        std::lock_guard lock(mu_);
        done_ = true;
        if (!stopping_) ::kill(::getpid(), SIGTERM);  // leave the signal thread
      }
      waiter_.join();
    }
    return signal_number_ != 0 ? strsignal(signal_number_) : "a stop";
  }

 private:
  void wait_for_signal() {
    sigset_t set = stop_signals();
    int sig = 0;
    sigwait(&set, &sig);
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
      signal_number_ = sig;
      cv_.notify_all();
      if (done_) return;
    }
    if (on_stop_) on_stop_();
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, k_stop_grace, [&] { return !in_round_; })) {
      complain(std::string("got ") + strsignal(sig) +
               " during a round; leaving it unfinished (the next start cleans up)");
      std::fflush(nullptr);
      std::_Exit(k_exit_ok);
    }
  }

  std::function<void()> on_stop_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  bool in_round_ = false;
  bool done_ = false;
  int signal_number_ = 0;
  std::thread waiter_;
};

backoff round_backoff(const settings& s) {
  backoff_options bo;
  bo.initial = 1s;
  bo.max = std::chrono::duration_cast<std::chrono::milliseconds>(s.interval);
  return backoff(bo);
}

// After a failed round: the backoff's next delay, at most the interval.
std::chrono::milliseconds retry_delay(backoff& retry, const settings& s) {
  auto wait =
      std::min(retry.next(), std::chrono::duration_cast<std::chrono::milliseconds>(s.interval));
  say("retrying in " + std::to_string(wait.count()) + "ms");
  return wait;
}

// Store mode: a round every --interval.
int run_watch(agent& a, const settings& s) {
  watch_control ctl(nullptr);
  backoff retry = round_backoff(s);
  say("watching " + std::string(s.store) + " every " + config::format_duration(s.interval) +
      "; SIGTERM or SIGINT stops");
  for (;;) {
    if (!ctl.begin_round()) break;
    const outcome o = a.round();
    ctl.end_round();
    std::chrono::milliseconds wait = s.interval;
    if (o == outcome::failed) {
      wait = retry_delay(retry, s);
    } else {
      retry.reset();
    }
    if (ctl.pause(wait)) break;
  }
  say("got " + ctl.finish() + "; stopped");
  return k_exit_ok;
}

// API mode: long-polls latest.json with If-None-Match: "<live revision>" ("" while nothing is
// live: the server then waits for the first publish). A 200 with another revision runs a round
// at once; 304 (or 404 NotPublished) after the wait polls again at once, but an answer much
// sooner than --wait (the server caps long-polls under load) pauses --interval first, so the
// agent never spins; errors (401/403: the token, 5xx, network) back off.
int run_watch_api(agent& a, const settings& s, configapi::client& api) {
  watch_control ctl([&api] { api.cancel(); });
  backoff retry = round_backoff(s);
  std::optional<std::string> announced;
  say("watching " + api.where() + " by long-poll (--wait " + config::format_duration(s.wait) +
      "), bundles from " + s.store + "; SIGTERM or SIGINT stops");
  for (;;) {
    if (ctl.stopping()) break;
    const std::string known = archive::live_revision(s.root).value_or("");
    if (announced != known) {  // once per live revision, not once per poll
      say(known.empty() ? "waiting for the first revision (long-poll)"
                        : "waiting for a revision after " + known + " (long-poll)");
      announced = known;
    }
    const auto started = std::chrono::steady_clock::now();
    auto r = api.get_latest(known, s.wait);
    if (ctl.stopping() || (!r && r.error().code == errc::cancelled)) break;
    const bool early = std::chrono::steady_clock::now() - started <
                       std::chrono::duration_cast<std::chrono::milliseconds>(s.wait) / 2;
    std::chrono::milliseconds pause{0};
    if (r && r->state == configapi::latest_state::unchanged) {
      a.unchanged();
      retry.reset();
      if (early) pause = s.interval;
    } else {
      if (!ctl.begin_round()) break;
      const outcome o = a.round_with(as_latest(r), api.where(), true);
      ctl.end_round();
      if (o == outcome::failed) {
        pause = retry_delay(retry, s);
      } else {
        retry.reset();
        if (o == outcome::empty || (r && r->state == configapi::latest_state::not_published))
          if (early) pause = s.interval;
      }
    }
    if (pause.count() > 0 && ctl.pause(pause)) break;
  }
  say("got " + ctl.finish() + "; stopped");
  return k_exit_ok;
}

}  // namespace

// The owner's folder as a backend: native (parsed as `tidesync sync` parses a location) or, with
// --engine=rclone, through the rclone binary. Errors are usage errors (a remote not configured).
expected<std::unique_ptr<transfer::backend>> open_store(const settings& s, http::loop& loop) {
  if (s.rclone) return transfer::make_rclone_backend(store_location_text(s.store));
  auto loc = transfer::parse_location(store_location_text(s.store),
                                      transfer::with_seed_remote(transfer::process_env()));
  if (!loc) return loc.error();
  if (loc->kind == transfer::location_kind::s3 && loc->prefix.empty())
    complain("warning: --store " + s.store +
             " is a whole bucket; the owner's folder is usually bucket/prefix/owner");
  return transfer::make_backend(*loc, loop, archive::store_backend_options());
}

int run_agent_config(int argc, char** argv) {
  settings s;
  if (auto code = parse_args(argc, argv, s)) return *code;

  if (s.watch) block_stop_signals();
  http::loop loop;
  auto backend = open_store(s, loop);
  if (!backend) {
    complain("--store: " + backend.error().message);
    return k_exit_usage;
  }
  agent a(s, archive::config_store(std::move(*backend)));
  if (s.api.empty()) return s.watch ? run_watch(a, s) : run_init(a, s, nullptr);

  // Checked here for a clear usage error; the client reads the token again before each
  // request (a mounted Secret changes when the token is rotated).
  if (auto token = configapi::read_token(s.token_file); !token) {
    complain(token.error().message);
    return k_exit_usage;
  }
  configapi::client api(
      loop,
      {.api = s.api, .config = *configapi::parse_config_ref(s.config), .token_file = s.token_file});
  return s.watch ? run_watch_api(a, s, api) : run_init(a, s, &api);
}

}  // namespace tidesync::cli
