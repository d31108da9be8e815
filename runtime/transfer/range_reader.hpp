// Readers the remote backends share: a whole small file in memory, and ranged requests.
//
// range_reader: over ranged requests (S3 GetObject with Range, HTTP GET with Range): up to
// `concurrency` ranges of `part` bytes in flight, handed out in order, so the network of the
// next ranges overlaps the writing of this one. Memory: part × concurrency per open file.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>

#include "runtime/error.hpp"
#include "runtime/transfer/backend.hpp"

namespace tidesync::transfer {

// A whole small file, fetched in one request.
class memory_reader final : public reader {
 public:
  explicit memory_reader(std::string data) : data_(std::move(data)) {}
  expected<size_t> read(char* buf, size_t n) override;

 private:
  std::string data_;
  size_t pos_ = 0;
};

class range_reader final : public reader {
 public:
  // Starts the request for bytes [first, first + len) and calls `done` exactly once, from any
  // thread, with those bytes or an error.
  using done_fn = std::function<void(expected<std::string>)>;
  using fetch_fn = std::function<void(uint64_t first, uint64_t len, done_fn done)>;

  // `what` names the file in messages.
  range_reader(std::string what, uint64_t size, uint64_t part, int concurrency, fetch_fn fetch);
  ~range_reader() override;

  expected<size_t> read(char* buf, size_t n) override;

 private:
  struct chunk;
  void start_next();

  std::string what_;
  uint64_t size_, part_;
  int concurrency_;
  fetch_fn fetch_;
  uint64_t next_offset_ = 0;
  std::deque<std::shared_ptr<chunk>> chunks_;
};

}  // namespace tidesync::transfer
