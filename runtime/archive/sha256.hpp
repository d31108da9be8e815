// Incremental SHA-256 (OpenSSL EVP) rendered as "sha256:<64 lower hex>", the form latest.json
// carries, so a bundle can be hashed while it streams.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

namespace tidesync::archive {

class sha256_hasher {
 public:
  sha256_hasher();
  ~sha256_hasher();
  sha256_hasher(const sha256_hasher&) = delete;
  sha256_hasher& operator=(const sha256_hasher&) = delete;

  // Adds `n` bytes to the digest.
  void update(const void* data, size_t n);
  // Finishes the digest and returns "sha256:<hex>"; the hasher must not be used afterwards.
  std::string finish();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace tidesync::archive
