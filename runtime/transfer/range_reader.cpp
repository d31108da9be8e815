#include "runtime/transfer/range_reader.hpp"

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <optional>

namespace tidesync::transfer {

expected<size_t> memory_reader::read(char* buf, size_t n) {
  const size_t k = std::min(n, data_.size() - pos_);
  std::memcpy(buf, data_.data() + pos_, k);
  pos_ += k;
  return k;
}

struct range_reader::chunk {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  std::optional<error> err;
  std::string data;
  uint64_t first = 0, len = 0;
  size_t pos = 0;
};

range_reader::range_reader(std::string what, uint64_t size, uint64_t part, int concurrency,
                           fetch_fn fetch)
    : what_(std::move(what)),
      size_(size),
      part_(std::max<uint64_t>(part, 1)),
      concurrency_(std::max(1, concurrency)),
      fetch_(std::move(fetch)) {}

// Requests still in flight own their chunk (shared_ptr): nothing to wait for.
range_reader::~range_reader() = default;

void range_reader::start_next() {
  auto c = std::make_shared<chunk>();
  c->first = next_offset_;
  c->len = std::min(part_, size_ - next_offset_);
  next_offset_ += c->len;
  chunks_.push_back(c);
  fetch_(c->first, c->len, [c](expected<std::string> r) {
    {
      std::lock_guard lock(c->mu);
      if (r) {
        c->data = std::move(*r);
      } else {
        c->err = r.error();
      }
      c->done = true;
    }
    c->cv.notify_all();
  });
}

expected<size_t> range_reader::read(char* buf, size_t n) {
  while (next_offset_ < size_ && static_cast<int>(chunks_.size()) < concurrency_)
    start_next();
  if (chunks_.empty()) return size_t{0};
  auto c = chunks_.front();
  {
    std::unique_lock lock(c->mu);
    c->cv.wait(lock, [&] { return c->done; });
    if (c->err) return *c->err;
    if (c->data.size() != c->len) {
      return make_error(errc::io_error,
                        "\"" + what_ + "\": short read of bytes " + std::to_string(c->first) + "+" +
                            std::to_string(c->len) + " (got " + std::to_string(c->data.size()) +
                            "; did it change while being copied?)");
    }
  }
  const size_t k = std::min(n, c->data.size() - c->pos);
  std::memcpy(buf, c->data.data() + c->pos, k);
  c->pos += k;
  if (c->pos == c->data.size()) chunks_.pop_front();
  return k;
}

}  // namespace tidesync::transfer
