#include "runtime/cli/sync_progress.hpp"

#include <unistd.h>

#include <cinttypes>

namespace tidesync::cli {
namespace {

const char* phase_name(int phase) {
  switch (phase) {
    case 0:
      return "listing";
    case 1:
      return "checking";
    case 2:
      return "transferring";
    case 3:
      return "deleting";
    default:
      return "done";
  }
}

std::string human_bytes(double b) {
  static const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024.0 && u < 4) {
    b /= 1024.0;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", b, units[u]);
  return buf;
}

std::string eta_text(double seconds) {
  if (seconds < 0) return "-";
  char buf[32];
  const auto s = static_cast<long>(seconds + 0.5);
  if (s >= 3600) {
    std::snprintf(buf, sizeof buf, "%ldh%02ldm", s / 3600, (s / 60) % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%ldm%02lds", s / 60, s % 60);
  }
  return buf;
}

}  // namespace

progress_display::style progress_display::choose(bool quiet, bool force) {
  if (quiet) return style::none;
  if (force || ::isatty(STDERR_FILENO) == 1) return style::terminal;
  return style::json;
}

progress_display::progress_display(const transfer::engine_stats& stats, style s,
                                   std::chrono::milliseconds json_interval, std::FILE* out)
    : stats_(stats),
      style_(s),
      interval_(s == style::terminal ? std::chrono::milliseconds(500) : json_interval),
      out_(out),
      started_(std::chrono::steady_clock::now()) {
  if (style_ == style::none || interval_.count() <= 0) return;
  thread_ = std::thread([this] { loop(); });
}

progress_display::~progress_display() {
  stop();
}

void progress_display::stop() {
  {
    std::lock_guard lock(mu_);
    if (done_) return;
    done_ = true;
  }
  cv_.notify_all();
  if (!thread_.joinable()) return;
  thread_.join();
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  if (style_ == style::terminal) {
    std::fprintf(out_, "\r%s\n", terminal_line(stats_, secs).c_str());
  } else {
    std::fprintf(out_, "%s\n", json_line(stats_, secs).c_str());
  }
  std::fflush(out_);
}

void progress_display::loop() {
  std::unique_lock lock(mu_);
  for (;;) {
    // The interval is the display's rhythm, not a synchronisation: stop() wakes it at once.
    if (cv_.wait_for(lock, interval_, [&] { return done_; })) return;
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
    if (style_ == style::terminal) {
      std::fprintf(out_, "\r%s\x1b[K", terminal_line(stats_, secs).c_str());
    } else {
      std::fprintf(out_, "%s\n", json_line(stats_, secs).c_str());
    }
    std::fflush(out_);
  }
}

std::string progress_display::terminal_line(const transfer::engine_stats& stats, double seconds) {
  const double done = static_cast<double>(stats.bytes_done.load());
  const double total = static_cast<double>(stats.bytes_total.load());
  const double rate = seconds > 0 ? done / seconds : 0;
  const double pct = total > 0 ? 100.0 * done / total : (stats.phase >= 2 ? 100.0 : 0.0);
  constexpr int width = 20;
  const int filled = static_cast<int>(pct / 100.0 * width);
  std::string bar(static_cast<size_t>(std::min(filled, width)), '#');
  bar.resize(width, '.');
  const double eta = rate > 0 && total >= done ? (total - done) / rate : -1;
  char buf[256];
  std::snprintf(
      buf, sizeof buf, "%-12s [%s] %5.1f%%  %s / %s  %zu/%zu files  %s/s  ETA %s%s",
      phase_name(stats.phase), bar.c_str(), pct, human_bytes(done).c_str(),
      human_bytes(total).c_str(), stats.files_done.load(), stats.files_total.load(),
      human_bytes(rate).c_str(), eta_text(eta).c_str(),
      stats.errors > 0 ? ("  errors " + std::to_string(stats.errors.load())).c_str() : "");
  return buf;
}

std::string progress_display::json_line(const transfer::engine_stats& stats, double seconds) {
  const uint64_t done = stats.bytes_done, total = stats.bytes_total;
  const double rate = seconds > 0 ? static_cast<double>(done) / seconds : 0;
  const double eta = rate > 0 && total >= done ? static_cast<double>(total - done) / rate : -1;
  char buf[512];
  std::snprintf(
      buf, sizeof buf,
      "{\"phase\":\"%s\",\"elapsed_s\":%.3f,\"bytes\":%" PRIu64 ",\"bytes_total\":%" PRIu64
      ",\"files\":%zu,\"files_total\":%zu,\"deletes\":%zu,\"errors\":%zu,"
      "\"bytes_per_s\":%.0f,\"eta_s\":%.1f}",
      phase_name(stats.phase), seconds, done, total, stats.files_done.load(),
      stats.files_total.load(), stats.deletes_done.load(), stats.errors.load(), rate, eta);
  return buf;
}

}  // namespace tidesync::cli
