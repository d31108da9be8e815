#include "runtime/archive/sha256.hpp"

#include <openssl/evp.h>

#include <cstdlib>

namespace tidesync::archive {

struct sha256_hasher::impl {
  EVP_MD_CTX* ctx = nullptr;
};

sha256_hasher::sha256_hasher() : impl_(std::make_unique<impl>()) {
  impl_->ctx = EVP_MD_CTX_new();
  // Allocation failure or a missing SHA-256 in libcrypto cannot be handled meaningfully.
  if (impl_->ctx == nullptr || EVP_DigestInit_ex(impl_->ctx, EVP_sha256(), nullptr) != 1)
    std::abort();
}

sha256_hasher::~sha256_hasher() {
  EVP_MD_CTX_free(impl_->ctx);
}

void sha256_hasher::update(const void* data, size_t n) {
  if (n > 0) EVP_DigestUpdate(impl_->ctx, data, n);
}

std::string sha256_hasher::finish() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(impl_->ctx, md, &len);
  static constexpr char hex[] = "0123456789abcdef";
  std::string out = "sha256:";
  out.reserve(7 + 2 * len);
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(hex[md[i] >> 4]);
    out.push_back(hex[md[i] & 0xf]);
  }
  return out;
}

}  // namespace tidesync::archive
