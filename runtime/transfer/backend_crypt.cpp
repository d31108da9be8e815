// The crypt backend (backend.hpp): rclone's crypt format (crypt.hpp) over another backend —
// local, S3 or SFTP. Names and contents are encrypted on the way in and decrypted on the way
// out, so what lands on the inner remote is readable by stock rclone with the same password
// and salt, and the other way round.
//
// - Paths: standard name encryption is deterministic, so every plain path maps to its
//   encrypted path by computation; no table is kept.
// - Listing: inner names that do not decrypt (files of another key, foreign files) and sizes
//   no encrypted file can have are skipped, with one warning that counts them, as rclone does;
//   plain files the caller keeps at the top on purpose (crypt_config::plain_top_level) are
//   skipped without one.
// - Sizes are the plaintext sizes (crypt::decrypted_size); hashes are unknown (a checksum
//   comparison falls back to size, with the plan's warning).
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>

#include "runtime/transfer/backend.hpp"
#include "runtime/transfer/crypt.hpp"
#include "runtime/transfer/local_fs.hpp"

namespace tidesync::transfer {
namespace {

constexpr size_t k_chunk = crypt::block_data_size + crypt::block_overhead;

// Plaintext of an encrypted inner reader.
class decrypting_reader final : public reader {
 public:
  decrypting_reader(std::unique_ptr<reader> inner, const crypt::keys& k)
      : inner_(std::move(inner)), dec_(k), buf_(k_chunk * 4, '\0') {}

  expected<size_t> read(char* out, size_t n) override {
    while (pos_ == plain_.size() && !eof_) {
      plain_.clear();
      pos_ = 0;
      auto got = inner_->read(buf_.data(), buf_.size());
      if (!got) return got.error();
      if (*got == 0) {
        eof_ = true;
        if (auto r = dec_.finish(plain_); !r) return r.error();
      } else if (auto r = dec_.update({buf_.data(), *got}, plain_); !r) {
        return r.error();
      }
    }
    const size_t k = std::min(n, plain_.size() - pos_);
    std::memcpy(out, plain_.data() + pos_, k);
    pos_ += k;
    return k;
  }

 private:
  std::unique_ptr<reader> inner_;
  crypt::decryptor dec_;
  std::string buf_, plain_;
  size_t pos_ = 0;
  bool eof_ = false;
};

// Ciphertext of a plain reader.
class encrypting_reader final : public reader {
 public:
  encrypting_reader(reader& in, const crypt::keys& k)
      : in_(in), enc_(k), buf_(crypt::block_data_size * 4, '\0') {}

  expected<size_t> read(char* out, size_t n) override {
    while (pos_ == cipher_.size() && !eof_) {
      cipher_.clear();
      pos_ = 0;
      auto got = in_.read(buf_.data(), buf_.size());
      if (!got) return got.error();
      if (*got == 0) {
        eof_ = true;
        enc_.finish(cipher_);
      } else {
        enc_.update({buf_.data(), *got}, cipher_);
      }
    }
    const size_t k = std::min(n, cipher_.size() - pos_);
    std::memcpy(out, cipher_.data() + pos_, k);
    pos_ += k;
    return k;
  }

 private:
  reader& in_;
  crypt::encryptor enc_;
  std::string buf_, cipher_;
  size_t pos_ = 0;
  bool eof_ = false;
};

class crypt_backend final : public backend {
 public:
  crypt_backend(const location& loc, std::unique_ptr<backend> inner, crypt::keys keys,
                crypt::options o)
      : text_(loc.text),
        plain_files_(loc.crypt.plain_top_level),
        inner_(std::move(inner)),
        keys_(std::move(keys)),
        opts_(o) {}

  [[nodiscard]] std::string where() const override { return "\"" + text_ + "\""; }
  [[nodiscard]] std::chrono::nanoseconds precision() const override { return inner_->precision(); }
  [[nodiscard]] bool can_set_mtime() const override { return inner_->can_set_mtime(); }
  [[nodiscard]] bool listing_mtime_approximate() const override {
    return inner_->listing_mtime_approximate();
  }

  expected<std::vector<entry>> list() override {
    auto inner = inner_->list();
    if (!inner) return inner.error();
    std::vector<entry> out;
    out.reserve(inner->size());
    size_t skipped = 0;
    for (auto& e : *inner) {
      if (!e.dir &&
          std::find(plain_files_.begin(), plain_files_.end(), e.path) != plain_files_.end())
        continue;
      // Temporary files of an interrupted local write are not encrypted names.
      auto plain = e.dir ? crypt::decrypt_dir_path(keys_, e.path, opts_)
                         : crypt::decrypt_path(keys_, e.path, opts_);
      if (!plain) {
        ++skipped;
        continue;
      }
      entry p;
      p.path = std::move(*plain);
      p.dir = e.dir;
      p.mtime = e.mtime;
      if (!e.dir) {
        auto size = crypt::decrypted_size(e.size);
        if (!size) {
          ++skipped;
          continue;
        }
        p.size = *size;
      }
      out.push_back(std::move(p));
    }
    if (skipped > 0) {
      std::fprintf(stderr,
                   "tidesync: warning: %s: skipped %zu name(s) that do not decrypt with this "
                   "password and salt (not written by rclone crypt with the same keys)\n",
                   where().c_str(), skipped);
    }
    return out;
  }

  expected<void> read_mtime(entry& e) override {
    auto inner = to_inner(e);
    if (!inner) return inner.error();
    if (auto r = inner_->read_mtime(*inner); !r) return r;
    e.mtime = inner->mtime;
    return {};
  }

  expected<std::unique_ptr<reader>> open(const entry& e) override {
    auto inner = to_inner(e);
    if (!inner) return inner.error();
    auto in = inner_->open(*inner);
    if (!in) return in.error();
    return std::unique_ptr<reader>(new decrypting_reader(std::move(*in), keys_));
  }

  expected<void> write(const entry& e, reader& in) override {
    auto inner = to_inner(e);
    if (!inner) return inner.error();
    encrypting_reader enc(in, keys_);
    return inner_->write(*inner, enc);
  }

  expected<void> set_mtime(const std::string& rel, time_point t) override {
    auto p = crypt::encrypt_path(keys_, rel, opts_);
    if (!p) return p.error();
    return inner_->set_mtime(*p, t);
  }
  expected<void> remove(const std::string& rel) override {
    auto p = crypt::encrypt_path(keys_, rel, opts_);
    if (!p) return p.error();
    return inner_->remove(*p);
  }
  expected<void> make_dir(const std::string& rel) override {
    auto p = crypt::encrypt_dir_path(keys_, rel, opts_);
    if (!p) return p.error();
    return inner_->make_dir(*p);
  }
  expected<void> remove_dir(const std::string& rel) override {
    auto p = crypt::encrypt_dir_path(keys_, rel, opts_);
    if (!p) return p.error();
    return inner_->remove_dir(*p);
  }
  expected<void> flush() override { return inner_->flush(); }

 private:
  expected<entry> to_inner(const entry& e) const {
    auto p = crypt::encrypt_path(keys_, e.path, opts_);
    if (!p) return p.error();
    entry out = e;
    out.path = std::move(*p);
    out.size = crypt::encrypted_size(e.size);
    out.md5.reset();
    out.sha256.reset();
    return out;
  }

  std::string text_;
  std::vector<std::string> plain_files_;  // plain files at the top, not ours to decrypt
  std::unique_ptr<backend> inner_;
  crypt::keys keys_;
  crypt::options opts_;
};

}  // namespace

expected<std::unique_ptr<backend>> make_crypt_backend(const location& loc, http::loop& loop,
                                                      const backend_options& opts) {
  if (!loc.inner) return make_error(errc::invalid_argument, "crypt location without a remote");
  crypt::options o;
  o.names = loc.crypt.encrypt_names ? crypt::name_mode::standard : crypt::name_mode::off;
  o.encrypt_dir_names = loc.crypt.encrypt_dir_names;
  auto keys = crypt::derive_keys(loc.crypt.password, loc.crypt.salt);
  if (!keys) {
    auto e = keys.error();
    e.message = "remote \"" + loc.remote_name + "\": " + e.message;
    return e;
  }
  // The inner root moves down by the encrypted form of the crypt remote's own path.
  location inner = *loc.inner;
  if (!loc.path.empty()) {
    auto sub = crypt::encrypt_dir_path(*keys, loc.path, o);
    if (!sub) return sub.error();
    switch (inner.kind) {
      case location_kind::local:
      case location_kind::sftp:
        inner.path = inner.path.empty() ? *sub : local_fs::join(inner.path, *sub);
        break;
      case location_kind::s3:
        inner.prefix += *sub + "/";
        break;
      default:
        break;
    }
    inner.text += (inner.text.back() == '/' || inner.text.back() == ':' ? "" : "/") + *sub;
  }
  auto b = make_backend(inner, loop, opts);
  if (!b) return b.error();
  return std::unique_ptr<backend>(new crypt_backend(loc, std::move(*b), std::move(*keys), o));
}

}  // namespace tidesync::transfer
