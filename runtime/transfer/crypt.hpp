// Encryption whose on-remote format is byte-compatible with rclone's crypt backend (v1.60).
//
// A tree written here is read by `rclone` with a crypt remote of the same password/salt, and
// the other way round (docs/transfer-crypt.md). Only standard primitives are used:
//   keys     scrypt(N=16384, r=8, p=1) of password and salt → 80 bytes (libsodium)
//   names    AES-256 in EME wide-block mode, PKCS#7 padded, base32hex lower case, no '='
//            (also rclone's weak "obfuscate" rotation and "off" with a ".bin" suffix)
//   content  "RCLONE\0\0" + 24-byte nonce, then 64 KiB blocks sealed with XSalsa20-Poly1305
//            (NaCl secretbox), the nonce incremented (little endian) after each block
//   obscure  rclone's config obfuscation: AES-256-CTR under a fixed public key, base64url
// Nothing here logs, and no error message contains a password, key or plaintext name.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "runtime/error.hpp"

namespace tidesync::transfer::crypt {

// rclone's `obscure` form of a password (as in rclone.conf or RCLONE_CONFIG_X_PASSWORD).
// This is obfuscation with a published key, not protection.
expected<std::string> reveal(std::string_view obscured);
std::string obscure(std::string_view plain);

// The three keys rclone derives from (password, password2). Wiped on destruction.
struct keys {
  unsigned char data_key[32] = {};    // secretbox key for file contents
  unsigned char name_key[32] = {};    // AES-256 key for names
  unsigned char name_tweak[16] = {};  // EME tweak for names
  ~keys();
};

// scrypt(password, salt) → keys. `salt` is rclone's password2 in plain (revealed) form; empty
// means rclone's built-in default salt. An empty password is refused, as rclone refuses it.
expected<keys> derive_keys(std::string_view password, std::string_view salt);

// rclone's filename_encryption: standard (EME), obfuscate (a keyed character rotation that
// hides little: names keep their length and shape) or off (names kept, ".bin" appended to
// file names).
enum class name_mode { standard, obfuscate, off };

struct options {
  name_mode names = name_mode::standard;
  // rclone's directory_name_encryption (standard mode only).
  bool encrypt_dir_names = true;
};

// One path element. "" maps to "" (as in rclone). In standard mode a name longer than 2047
// bytes cannot be encrypted (EME handles at most 128 blocks) and is refused. In `off` mode
// the element is returned unchanged (the ".bin" suffix is a path-level matter).
expected<std::string> encrypt_segment(const keys& k, std::string_view plain,
                                      name_mode mode = name_mode::standard);
// Standard mode refuses (errc::invalid_argument) bad base32, a length that is not a whole
// number of 16-byte blocks, more than 2048 bytes, and bad padding (usually: a wrong
// password). Obfuscate mode refuses a name without a "<number>." prefix.
expected<std::string> decrypt_segment(const keys& k, std::string_view encrypted,
                                      name_mode mode = name_mode::standard);

// A '/'-separated relative path of a file: directory elements per options, the last element
// is the file name. In `off` mode the whole path is kept and ".bin" appended; decrypt_path
// then refuses a name without that suffix.
expected<std::string> encrypt_path(const keys& k, std::string_view path, const options& o = {});
expected<std::string> decrypt_path(const keys& k, std::string_view path, const options& o = {});
// The same for a directory path (rclone's EncryptDirName): unchanged in `off` mode and when
// directory names are not encrypted.
expected<std::string> encrypt_dir_path(const keys& k, std::string_view path, const options& o = {});
expected<std::string> decrypt_dir_path(const keys& k, std::string_view path, const options& o = {});

// Content sizes.
inline constexpr std::size_t header_size = 32;  // magic (8) + nonce (24)
inline constexpr std::size_t block_data_size = 65536;
inline constexpr std::size_t block_overhead = 16;  // Poly1305 tag
inline constexpr std::size_t nonce_size = 24;

uint64_t encrypted_size(uint64_t plain);
// Refuses sizes no encrypted file can have (shorter than the header, a final block with no
// data byte).
expected<uint64_t> decrypted_size(uint64_t encrypted);

// Streaming encryption of one file's contents. The header goes out with the first call.
class encryptor {
 public:
  // A random nonce (randombytes_buf); tests may pass a fixed one to get fixed output.
  explicit encryptor(const keys& k);
  encryptor(const keys& k, const unsigned char (&nonce)[nonce_size]);
  ~encryptor();
  encryptor(const encryptor&) = delete;
  encryptor& operator=(const encryptor&) = delete;

  // Appends the ciphertext for `plain` that is complete so far (whole 64 KiB blocks).
  void update(std::string_view plain, std::string& out);
  // Appends the header (when nothing was written yet) and the last, short block.
  void finish(std::string& out);

 private:
  void emit_header(std::string& out);
  void seal_block(std::string& out);

  unsigned char key_[32];
  unsigned char nonce_[nonce_size];
  std::string pending_;  // plaintext of the current, not yet full block
  bool header_done_ = false;
  bool finished_ = false;
};

// Streaming decryption: header check, then block by block authentication. Any failure is
// final (later calls return the same error).
class decryptor {
 public:
  explicit decryptor(const keys& k);
  ~decryptor();
  decryptor(const decryptor&) = delete;
  decryptor& operator=(const decryptor&) = delete;

  // Appends the plaintext of every block completed by `cipher`.
  expected<void> update(std::string_view cipher, std::string& out);
  // Decrypts the last block; fails on a file shorter than the header, a truncated block,
  // bad magic or failed authentication. A file cut exactly at a block boundary cannot be
  // told from a shorter file (a property of rclone's format).
  expected<void> finish(std::string& out);

 private:
  expected<void> open_block(const char* block, std::size_t len, std::string& out);
  expected<void> fail(errc code, std::string message);

  unsigned char key_[32];
  unsigned char nonce_[nonce_size] = {};
  std::string pending_;  // ciphertext not yet decrypted
  bool header_done_ = false;
  std::optional<tidesync::error> error_;
};

}  // namespace tidesync::transfer::crypt
