// The progress display of `tidesync sync`: a live line on a terminal (bytes, files, rate,
// ETA), one JSON line per interval otherwise (for logs of sidecars and Jobs), nothing with
// --quiet. It reads the engine's atomic counters from its own thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>

#include "runtime/transfer/engine.hpp"

namespace tidesync::cli {

class progress_display {
 public:
  enum class style { none, terminal, json };

  // terminal when stderr is a terminal or `force`; json otherwise; none when `quiet`.
  static style choose(bool quiet, bool force);

  // Starts the display thread (none: no thread). `json_interval` 0 turns JSON lines off.
  progress_display(const transfer::engine_stats& stats, style s,
                   std::chrono::milliseconds json_interval, std::FILE* out = stderr);
  ~progress_display();
  progress_display(const progress_display&) = delete;
  progress_display& operator=(const progress_display&) = delete;

  // Prints the last state and ends the thread (idempotent).
  void stop();

  // One rendering of the counters (pure; exposed for tests). `seconds` since the start.
  static std::string terminal_line(const transfer::engine_stats& stats, double seconds);
  static std::string json_line(const transfer::engine_stats& stats, double seconds);

 private:
  void loop();

  const transfer::engine_stats& stats_;
  style style_;
  std::chrono::milliseconds interval_;
  std::FILE* out_;
  std::chrono::steady_clock::time_point started_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

}  // namespace tidesync::cli
