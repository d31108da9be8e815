// rclone-compatible crypt (see crypt.hpp and docs/transfer-crypt.md for the format).
#include "runtime/transfer/crypt.hpp"

#include <openssl/evp.h>
#include <sodium.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

#include "runtime/utf8.hpp"

namespace tidesync::transfer::crypt {

namespace {

// rclone's published key for `rclone obscure` (lib/obscure): obfuscation, not secrecy.
constexpr unsigned char k_obscure_key[32] = {
    0x9c, 0x93, 0x5b, 0x48, 0x73, 0x0a, 0x55, 0x4d, 0x6b, 0xfd, 0x7c, 0x63, 0xc8, 0x86, 0xa9, 0x2b,
    0xd3, 0x90, 0x19, 0x8e, 0xb8, 0x12, 0x8a, 0xfb, 0xf4, 0xde, 0x16, 0x2b, 0x8b, 0x95, 0xf6, 0x38};

// rclone's built-in salt, used when password2 is empty.
constexpr unsigned char k_default_salt[16] = {0xA8, 0x0D, 0xF4, 0x3A, 0x8F, 0xBD, 0x03, 0x08,
                                              0xA7, 0xCA, 0xB8, 0x3E, 0x58, 0x1F, 0x86, 0xB1};

constexpr char k_magic[8] = {'R', 'C', 'L', 'O', 'N', 'E', 0, 0};
constexpr std::size_t k_block_size = block_data_size + block_overhead;
constexpr std::size_t k_name_block = 16;
constexpr std::size_t k_max_name_cipher = 2048;  // EME: at most 128 blocks
constexpr std::string_view k_off_suffix = ".bin";

void init_sodium() {
  static std::once_flag once;
  std::call_once(once, [] {
    // sodium_init() only fails when no entropy source exists: nothing works then.
    if (sodium_init() < 0) std::abort();
  });
}

error invalid(std::string message) {
  return make_error(errc::invalid_argument, std::move(message));
}

// ---- base64url without padding (Go's base64.RawURLEncoding) ----

constexpr char k_b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string b64url_encode(const unsigned char* p, std::size_t n) {
  std::string out;
  out.reserve((n * 4 + 2) / 3);
  std::size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    uint32_t v = (uint32_t{p[i]} << 16) | (uint32_t{p[i + 1]} << 8) | p[i + 2];
    for (int s = 18; s >= 0; s -= 6)
      out += k_b64[(v >> s) & 63];
  }
  if (n - i == 1) {
    uint32_t v = uint32_t{p[i]} << 16;
    out += k_b64[(v >> 18) & 63];
    out += k_b64[(v >> 12) & 63];
  } else if (n - i == 2) {
    uint32_t v = (uint32_t{p[i]} << 16) | (uint32_t{p[i + 1]} << 8);
    out += k_b64[(v >> 18) & 63];
    out += k_b64[(v >> 12) & 63];
    out += k_b64[(v >> 6) & 63];
  }
  return out;
}

std::optional<std::vector<unsigned char>> b64url_decode(std::string_view in) {
  if (in.size() % 4 == 1) return std::nullopt;
  std::vector<unsigned char> out;
  out.reserve(in.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    const char* pos = std::strchr(k_b64, c);
    if (c == '\0' || pos == nullptr) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(pos - k_b64);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<unsigned char>(acc >> bits));
    }
  }
  return out;
}

// ---- base32hex, lower case, no padding (rclone's filename_encoding=base32) ----

constexpr char k_b32[] = "0123456789abcdefghijklmnopqrstuv";

std::string b32_encode(const unsigned char* p, std::size_t n) {
  std::string out;
  out.reserve((n * 8 + 4) / 5);
  uint64_t acc = 0;
  int bits = 0;
  for (std::size_t i = 0; i < n; ++i) {
    acc = (acc << 8) | p[i];
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += k_b32[(acc >> bits) & 31];
    }
  }
  if (bits > 0) out += k_b32[(acc << (5 - bits)) & 31];
  return out;
}

std::optional<std::vector<unsigned char>> b32_decode(std::string_view in) {
  // Valid unpadded lengths leave 0, 2, 4, 5 or 7 characters in the last group of 8.
  switch (in.size() % 8) {
    case 1:
    case 3:
    case 6:
      return std::nullopt;
    default:
      break;
  }
  std::vector<unsigned char> out;
  out.reserve(in.size() * 5 / 8);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int v;
    if (c >= '0' && c <= '9')
      v = c - '0';
    else if (c >= 'a' && c <= 'v')
      v = c - 'a' + 10;
    else if (c >= 'A' && c <= 'V')  // rclone upper-cases before decoding
      v = c - 'A' + 10;
    else
      return std::nullopt;
    acc = (acc << 5) | static_cast<uint32_t>(v);
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<unsigned char>(acc >> bits));
    }
  }
  return out;
}

// ---- AES-256 block operations and EME (Halevi–Rogaway, as in github.com/rfjakob/eme) ----

struct cipher_ctx_deleter {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
using cipher_ctx = std::unique_ptr<EVP_CIPHER_CTX, cipher_ctx_deleter>;

// AES-256-ECB without padding over whole blocks, in one direction.
class aes_ecb {
 public:
  aes_ecb(const unsigned char* key, bool encrypt) : ctx_(EVP_CIPHER_CTX_new()) {
    ok_ = ctx_ &&
          EVP_CipherInit_ex(ctx_.get(), EVP_aes_256_ecb(), nullptr, key, nullptr,
                            encrypt ? 1 : 0) == 1 &&
          EVP_CIPHER_CTX_set_padding(ctx_.get(), 0) == 1;
  }
  [[nodiscard]] bool ok() const { return ok_; }
  // In place on `n` bytes (a multiple of 16).
  bool apply(unsigned char* data, std::size_t n) {
    int len = 0;
    return EVP_CipherUpdate(ctx_.get(), data, &len, data, static_cast<int>(n)) == 1 &&
           static_cast<std::size_t>(len) == n;
  }

 private:
  cipher_ctx ctx_;
  bool ok_ = false;
};

// Doubling in GF(2^128), the block read as a little-endian number (EME's convention).
void times_two(unsigned char b[16]) {
  unsigned char carry = b[15] >> 7;
  for (int j = 15; j > 0; --j)
    b[j] = static_cast<unsigned char>((b[j] << 1) | (b[j - 1] >> 7));
  b[0] = static_cast<unsigned char>((b[0] << 1) ^ (carry ? 0x87 : 0));
}

void xor16(unsigned char* out, const unsigned char* in) {
  for (int i = 0; i < 16; ++i)
    out[i] ^= in[i];
}

// EME transform of `data` (1..128 blocks) in place. The mask L always comes from AES
// encryption of zero; the block cipher direction follows `encrypt`.
bool eme_transform(const keys& k, unsigned char* data, std::size_t n, bool encrypt) {
  const std::size_t m = n / 16;
  aes_ecb forward(k.name_key, true);
  aes_ecb bc(k.name_key, encrypt);
  if (!forward.ok() || !bc.ok()) return false;

  unsigned char l0[16] = {};
  if (!forward.apply(l0, 16)) return false;
  times_two(l0);  // L = 2 * E(0)

  unsigned char l[16];
  std::memcpy(l, l0, 16);
  for (std::size_t j = 0; j < m; ++j) {  // PP_j = P_j ^ 2^(j-1) L
    xor16(data + j * 16, l);
    times_two(l);
  }
  if (!bc.apply(data, n)) return false;  // PPP_j

  unsigned char mp[16];
  std::memcpy(mp, k.name_tweak, 16);
  for (std::size_t j = 0; j < m; ++j)
    xor16(mp, data + j * 16);  // MP = T ^ xor PPP_j
  unsigned char mc[16];
  std::memcpy(mc, mp, 16);
  if (!bc.apply(mc, 16)) return false;  // MC
  unsigned char mm[16];
  std::memcpy(mm, mp, 16);
  xor16(mm, mc);  // M = MP ^ MC

  for (std::size_t j = 1; j < m; ++j) {  // CCC_j = PPP_j ^ 2^(j-1) M
    times_two(mm);
    xor16(data + j * 16, mm);
  }
  unsigned char ccc1[16];
  std::memcpy(ccc1, mc, 16);
  xor16(ccc1, k.name_tweak);
  for (std::size_t j = 1; j < m; ++j)
    xor16(ccc1, data + j * 16);
  std::memcpy(data, ccc1, 16);  // CCC_1 = MC ^ T ^ xor_{j>1} CCC_j

  if (!bc.apply(data, n)) return false;  // CC_j
  std::memcpy(l, l0, 16);
  for (std::size_t j = 0; j < m; ++j) {  // C_j = CC_j ^ 2^(j-1) L
    xor16(data + j * 16, l);
    times_two(l);
  }
  sodium_memzero(l0, sizeof l0);
  sodium_memzero(l, sizeof l);
  sodium_memzero(mp, sizeof mp);
  sodium_memzero(mc, sizeof mc);
  sodium_memzero(mm, sizeof mm);
  sodium_memzero(ccc1, sizeof ccc1);
  return true;
}

// ---- UTF-8 runes, decoded the way Go's `for range` over a string does ----

constexpr char32_t k_replacement = 0xFFFD;

// Decodes one rune at `s[i]`, advancing `i`; invalid bytes give U+FFFD and advance by one.
char32_t next_rune(std::string_view s, std::size_t& i, bool* valid = nullptr) {
  auto c0 = static_cast<unsigned char>(s[i]);
  auto bad = [&] {
    ++i;
    if (valid) *valid = false;
    return k_replacement;
  };
  if (c0 < 0x80) {
    ++i;
    return c0;
  }
  std::size_t n;
  char32_t r, min;
  if (c0 >= 0xC2 && c0 <= 0xDF) {
    n = 2, r = c0 & 0x1F, min = 0x80;
  } else if (c0 >= 0xE0 && c0 <= 0xEF) {
    n = 3, r = c0 & 0x0F, min = 0x800;
  } else if (c0 >= 0xF0 && c0 <= 0xF4) {
    n = 4, r = c0 & 0x07, min = 0x10000;
  } else {
    return bad();
  }
  if (i + n > s.size()) return bad();
  for (std::size_t j = 1; j < n; ++j) {
    auto c = static_cast<unsigned char>(s[i + j]);
    if ((c & 0xC0) != 0x80) return bad();
    r = (r << 6) | (c & 0x3F);
  }
  if (r < min || r > 0x10FFFF || (r >= 0xD800 && r <= 0xDFFF)) return bad();
  i += n;
  return r;
}

bool valid_rune(char32_t r) {
  return r <= 0x10FFFF && !(r >= 0xD800 && r <= 0xDFFF);
}

// Go's WriteRune: an invalid rune is written as U+FFFD.
void put_rune(std::string& out, char32_t r) {
  utf8::append(out, static_cast<uint32_t>(r));
}

bool valid_utf8(std::string_view s) {
  bool ok = true;
  for (std::size_t i = 0; i < s.size() && ok;)
    next_rune(s, i, &ok);
  return ok;
}

// ---- rclone's "obfuscate" name mode: a keyed rotation, not encryption ----

constexpr char32_t k_quote = '!';

long name_key_sum(const keys& k) {
  long sum = 0;
  for (unsigned char b : k.name_key)
    sum += b;
  return sum;
}

std::string obfuscate(const keys& k, std::string_view plain) {
  if (plain.empty()) return {};
  if (!valid_utf8(plain)) return "!." + std::string(plain);  // not rotated, only marked
  long dir = 0;
  for (std::size_t i = 0; i < plain.size();)
    dir += static_cast<long>(next_rune(plain, i));
  dir %= 256;
  std::string out = std::to_string(dir) + ".";
  dir += name_key_sum(k);
  for (std::size_t i = 0; i < plain.size();) {
    char32_t r = next_rune(plain, i);
    if (r == k_quote) {
      out += "!!";
    } else if (r >= '0' && r <= '9') {
      long shift = dir % 9 + 1;
      put_rune(out, static_cast<char32_t>('0' + (r - '0' + shift) % 10));
    } else if ((r >= 'A' && r <= 'Z') || (r >= 'a' && r <= 'z')) {
      long shift = dir % 25 + 1;  // rotate within A-Za-z (52 letters)
      long pos = static_cast<long>(r) - 'A';
      if (pos >= 26) pos -= 6;
      pos = (pos + shift) % 52;
      if (pos >= 26) pos += 6;
      put_rune(out, static_cast<char32_t>('A' + pos));
    } else if (r >= 0xA0 && r <= 0xFF) {
      long shift = dir % 95 + 1;
      put_rune(out, static_cast<char32_t>(0xA0 + (r - 0xA0 + shift) % 96));
    } else if (r >= 0x100) {
      long shift = dir % 127 + 1;
      char32_t base = r - r % 256;
      auto nr = static_cast<char32_t>(base + (r - base + shift) % 256);
      if (!valid_rune(nr)) {
        put_rune(out, k_quote);
        put_rune(out, r);
      } else {
        put_rune(out, nr);
      }
    } else {
      put_rune(out, r);
    }
  }
  return out;
}

expected<std::string> deobfuscate(const keys& k, std::string_view enc) {
  if (enc.empty()) return std::string();
  auto dot = enc.find('.');
  if (dot == std::string_view::npos)
    return invalid("not an obfuscated name: no '.' after the rotation number");
  std::string_view num = enc.substr(0, dot);
  std::string_view rest = enc.substr(dot + 1);
  if (num == "!") return std::string(rest);
  // strconv.Atoi: optional sign, decimal digits.
  std::string_view digits = num;
  bool neg = false;
  if (!digits.empty() && (digits[0] == '+' || digits[0] == '-')) {
    neg = digits[0] == '-';
    digits.remove_prefix(1);
  }
  if (digits.empty() || digits.size() > 15 ||
      digits.find_first_not_of("0123456789") != std::string_view::npos)
    return invalid("not an obfuscated name: bad rotation number");
  long dir = std::stol(std::string(digits));
  if (neg) dir = -dir;
  dir += name_key_sum(k);

  std::string out;
  bool in_quote = false;
  for (std::size_t i = 0; i < rest.size();) {
    char32_t r = next_rune(rest, i);
    if (in_quote) {
      put_rune(out, r);
      in_quote = false;
    } else if (r == k_quote) {
      in_quote = true;
    } else if (r >= '0' && r <= '9') {
      long shift = dir % 9 + 1;
      long nr = static_cast<long>(r) - shift;
      if (nr < '0') nr += 10;
      put_rune(out, static_cast<char32_t>(nr));
    } else if ((r >= 'A' && r <= 'Z') || (r >= 'a' && r <= 'z')) {
      long shift = dir % 25 + 1;
      long pos = static_cast<long>(r) - 'A';
      if (pos >= 26) pos -= 6;
      pos -= shift;
      if (pos < 0) pos += 52;
      if (pos >= 26) pos += 6;
      put_rune(out, static_cast<char32_t>('A' + pos));
    } else if (r >= 0xA0 && r <= 0xFF) {
      long shift = dir % 95 + 1;
      long nr = static_cast<long>(r) - shift;
      if (nr < 0xA0) nr += 96;
      put_rune(out, static_cast<char32_t>(nr));
    } else if (r >= 0x100) {
      long shift = dir % 127 + 1;
      long base = static_cast<long>(r - r % 256);
      long nr = static_cast<long>(r) - shift;
      if (nr < base) nr += 256;
      put_rune(out, static_cast<char32_t>(nr));
    } else {
      put_rune(out, r);
    }
  }
  return out;
}

// Applies `fn` to every '/'-separated element (or only the last when `last_only`).
template <class Fn>
expected<std::string> map_segments(std::string_view path, bool last_only, Fn&& fn) {
  std::string out;
  out.reserve(path.size() * 2);
  std::size_t start = 0;
  for (;;) {
    std::size_t slash = path.find('/', start);
    bool last = slash == std::string_view::npos;
    std::string_view seg = path.substr(start, last ? std::string_view::npos : slash - start);
    if (last || !last_only) {
      auto r = fn(seg);
      if (!r) return r.error();
      out += *r;
    } else {
      out += seg;
    }
    if (last) break;
    out += '/';
    start = slash + 1;
  }
  return out;
}

}  // namespace

// ---- obscure ----

namespace {
bool aes_ctr(const unsigned char* iv, const unsigned char* in, unsigned char* out, std::size_t n) {
  cipher_ctx ctx(EVP_CIPHER_CTX_new());
  if (!ctx) return false;
  if (EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_ctr(), nullptr, k_obscure_key, iv) != 1)
    return false;
  std::size_t done = 0;
  while (done < n) {  // EVP takes int lengths
    int chunk = static_cast<int>(std::min<std::size_t>(n - done, 1 << 30));
    int len = 0;
    if (EVP_EncryptUpdate(ctx.get(), out + done, &len, in + done, chunk) != 1) return false;
    done += static_cast<std::size_t>(len);
  }
  return true;
}
}  // namespace

expected<std::string> reveal(std::string_view obscured) {
  auto raw = b64url_decode(obscured);
  if (!raw)
    return invalid(
        "cannot reveal value: it is not base64url (is it in rclone's obscured form? use "
        "`rclone obscure`)");
  if (raw->size() < 16)
    return invalid("cannot reveal value: too short to be an obscured value (use `rclone obscure`)");
  std::string out(raw->size() - 16, '\0');
  bool ok = aes_ctr(raw->data(), raw->data() + 16, reinterpret_cast<unsigned char*>(out.data()),
                    out.size());
  sodium_memzero(raw->data(), raw->size());
  if (!ok) return make_error(errc::internal, "cannot reveal value: AES-CTR failed (OpenSSL)");
  return out;
}

std::string obscure(std::string_view plain) {
  init_sodium();
  std::vector<unsigned char> buf(16 + plain.size());
  randombytes_buf(buf.data(), 16);
  if (!aes_ctr(buf.data(), reinterpret_cast<const unsigned char*>(plain.data()), buf.data() + 16,
               plain.size()))
    std::abort();  // AES-256-CTR is always available in libcrypto
  std::string out = b64url_encode(buf.data(), buf.size());
  sodium_memzero(buf.data(), buf.size());
  return out;
}

// ---- keys ----

keys::~keys() {
  sodium_memzero(data_key, sizeof data_key);
  sodium_memzero(name_key, sizeof name_key);
  sodium_memzero(name_tweak, sizeof name_tweak);
}

expected<keys> derive_keys(std::string_view password, std::string_view salt) {
  init_sodium();
  if (password.empty())
    return invalid("crypt password is empty: set the remote's password (rclone obscured form)");
  const unsigned char* salt_p = k_default_salt;
  std::size_t salt_n = sizeof k_default_salt;
  if (!salt.empty()) {
    salt_p = reinterpret_cast<const unsigned char*>(salt.data());
    salt_n = salt.size();
  }
  unsigned char out[80];
  int rc = crypto_pwhash_scryptsalsa208sha256_ll(reinterpret_cast<const uint8_t*>(password.data()),
                                                 password.size(), salt_p, salt_n, 16384, 8, 1, out,
                                                 sizeof out);
  if (rc != 0) {
    sodium_memzero(out, sizeof out);
    return make_error(errc::internal, "crypt key derivation (scrypt) failed: out of memory?");
  }
  keys k;
  std::memcpy(k.data_key, out, 32);
  std::memcpy(k.name_key, out + 32, 32);
  std::memcpy(k.name_tweak, out + 64, 16);
  sodium_memzero(out, sizeof out);
  return k;
}

// ---- names ----

expected<std::string> encrypt_segment(const keys& k, std::string_view plain, name_mode mode) {
  if (mode == name_mode::off) return std::string(plain);
  if (mode == name_mode::obfuscate) return obfuscate(k, plain);
  if (plain.empty()) return std::string();
  std::size_t pad = k_name_block - plain.size() % k_name_block;  // PKCS#7: 1..16
  std::size_t n = plain.size() + pad;
  if (n > k_max_name_cipher)
    return invalid("name too long to encrypt: " + std::to_string(plain.size()) +
                   " bytes (at most 2047)");
  std::vector<unsigned char> buf(n, static_cast<unsigned char>(pad));
  std::memcpy(buf.data(), plain.data(), plain.size());
  if (!eme_transform(k, buf.data(), n, true))
    return make_error(errc::internal, "name encryption failed (OpenSSL AES)");
  return b32_encode(buf.data(), n);
}

expected<std::string> decrypt_segment(const keys& k, std::string_view encrypted, name_mode mode) {
  if (mode == name_mode::off) return std::string(encrypted);
  if (mode == name_mode::obfuscate) return deobfuscate(k, encrypted);
  if (encrypted.empty()) return std::string();
  auto raw = b32_decode(encrypted);
  if (!raw) return invalid("encrypted name is not valid base32hex");
  if (raw->empty() || raw->size() % k_name_block != 0)
    return invalid("encrypted name has a bad length (not a multiple of 16 bytes)");
  if (raw->size() > k_max_name_cipher) return invalid("encrypted name is too long");
  if (!eme_transform(k, raw->data(), raw->size(), false))
    return make_error(errc::internal, "name decryption failed (OpenSSL AES)");
  unsigned pad = raw->back();
  bool ok = pad >= 1 && pad <= k_name_block;
  for (unsigned i = 0; ok && i < pad; ++i)
    ok = (*raw)[raw->size() - 1 - i] == pad;
  if (!ok) {
    sodium_memzero(raw->data(), raw->size());
    return invalid("encrypted name has bad padding (wrong password or not an encrypted name)");
  }
  std::string out(reinterpret_cast<const char*>(raw->data()), raw->size() - pad);
  return out;
}

expected<std::string> encrypt_path(const keys& k, std::string_view path, const options& o) {
  if (o.names == name_mode::off) return std::string(path) + std::string(k_off_suffix);
  return map_segments(path, !o.encrypt_dir_names,
                      [&](std::string_view s) { return encrypt_segment(k, s, o.names); });
}

expected<std::string> decrypt_path(const keys& k, std::string_view path, const options& o) {
  if (o.names == name_mode::off) {
    if (path.size() <= k_off_suffix.size() ||
        path.substr(path.size() - k_off_suffix.size()) != k_off_suffix)
      return invalid("not an encrypted file name: it does not end in \".bin\"");
    return std::string(path.substr(0, path.size() - k_off_suffix.size()));
  }
  return map_segments(path, !o.encrypt_dir_names,
                      [&](std::string_view s) { return decrypt_segment(k, s, o.names); });
}

expected<std::string> encrypt_dir_path(const keys& k, std::string_view path, const options& o) {
  if (o.names == name_mode::off || !o.encrypt_dir_names) return std::string(path);
  return encrypt_path(k, path, o);
}

expected<std::string> decrypt_dir_path(const keys& k, std::string_view path, const options& o) {
  if (o.names == name_mode::off || !o.encrypt_dir_names) return std::string(path);
  return decrypt_path(k, path, o);
}

// ---- content sizes ----

uint64_t encrypted_size(uint64_t plain) {
  uint64_t blocks = plain / block_data_size, rest = plain % block_data_size;
  uint64_t size = header_size + blocks * k_block_size;
  if (rest != 0) size += block_overhead + rest;
  return size;
}

expected<uint64_t> decrypted_size(uint64_t encrypted) {
  if (encrypted < header_size) return invalid("file is too short to be encrypted");
  uint64_t body = encrypted - header_size;
  uint64_t blocks = body / k_block_size, rest = body % k_block_size;
  if (rest != 0 && rest <= block_overhead)
    return invalid("encrypted size is impossible: the last block has no data");
  return blocks * block_data_size + (rest == 0 ? 0 : rest - block_overhead);
}

// ---- encryptor ----

encryptor::encryptor(const keys& k) {
  init_sodium();
  std::memcpy(key_, k.data_key, sizeof key_);
  randombytes_buf(nonce_, sizeof nonce_);
  pending_.reserve(block_data_size);
}

encryptor::encryptor(const keys& k, const unsigned char (&nonce)[nonce_size]) {
  init_sodium();
  std::memcpy(key_, k.data_key, sizeof key_);
  std::memcpy(nonce_, nonce, sizeof nonce_);
  pending_.reserve(block_data_size);
}

encryptor::~encryptor() {
  sodium_memzero(key_, sizeof key_);
  if (!pending_.empty()) sodium_memzero(pending_.data(), pending_.size());
}

void encryptor::emit_header(std::string& out) {
  if (header_done_) return;
  out.append(k_magic, sizeof k_magic);
  out.append(reinterpret_cast<const char*>(nonce_), sizeof nonce_);
  header_done_ = true;
}

void encryptor::seal_block(std::string& out) {
  std::size_t at = out.size();
  out.resize(at + block_overhead + pending_.size());
  // Combined mode: tag then ciphertext, the layout of Go's nacl/secretbox.Seal.
  crypto_secretbox_easy(reinterpret_cast<unsigned char*>(out.data() + at),
                        reinterpret_cast<const unsigned char*>(pending_.data()), pending_.size(),
                        nonce_, key_);
  sodium_increment(nonce_, sizeof nonce_);  // little endian, as rclone's nonce.increment()
  sodium_memzero(pending_.data(), pending_.size());
  pending_.clear();
}

void encryptor::update(std::string_view plain, std::string& out) {
  if (finished_) return;
  emit_header(out);
  while (!plain.empty()) {
    std::size_t take = std::min(plain.size(), block_data_size - pending_.size());
    pending_.append(plain.data(), take);
    plain.remove_prefix(take);
    // A full block is sealed at once: rclone never writes an empty trailing block.
    if (pending_.size() == block_data_size) seal_block(out);
  }
}

void encryptor::finish(std::string& out) {
  if (finished_) return;
  emit_header(out);
  if (!pending_.empty()) seal_block(out);
  finished_ = true;
}

// ---- decryptor ----

decryptor::decryptor(const keys& k) {
  init_sodium();
  std::memcpy(key_, k.data_key, sizeof key_);
}

decryptor::~decryptor() {
  sodium_memzero(key_, sizeof key_);
}

expected<void> decryptor::fail(errc code, std::string message) {
  error_ = make_error(code, std::move(message));
  pending_.clear();
  return *error_;
}

expected<void> decryptor::open_block(const char* block, std::size_t len, std::string& out) {
  std::size_t at = out.size();
  out.resize(at + len - block_overhead);
  if (crypto_secretbox_open_easy(reinterpret_cast<unsigned char*>(out.data() + at),
                                 reinterpret_cast<const unsigned char*>(block), len, nonce_,
                                 key_) != 0) {
    sodium_memzero(out.data() + at, len - block_overhead);
    out.resize(at);
    return fail(errc::invalid_argument,
                "failed to authenticate an encrypted block: wrong password or corrupted data");
  }
  sodium_increment(nonce_, sizeof nonce_);
  return {};
}

expected<void> decryptor::update(std::string_view cipher, std::string& out) {
  if (error_) return *error_;
  if (!header_done_) {
    std::size_t take = std::min(cipher.size(), header_size - pending_.size());
    pending_.append(cipher.data(), take);
    cipher.remove_prefix(take);
    if (pending_.size() < header_size) return {};
    if (std::memcmp(pending_.data(), k_magic, sizeof k_magic) != 0)
      return fail(errc::invalid_argument, "not an encrypted file: bad magic string");
    std::memcpy(nonce_, pending_.data() + sizeof k_magic, nonce_size);
    pending_.clear();
    header_done_ = true;
  }
  // A full block can be opened as soon as it is here; only the last one may be short.
  if (!pending_.empty()) {
    std::size_t take = std::min(cipher.size(), k_block_size - pending_.size());
    pending_.append(cipher.data(), take);
    cipher.remove_prefix(take);
    if (pending_.size() < k_block_size) return {};
    auto r = open_block(pending_.data(), k_block_size, out);
    if (!r) return r;
    pending_.clear();
  }
  while (cipher.size() >= k_block_size) {  // straight from the caller's buffer
    auto r = open_block(cipher.data(), k_block_size, out);
    if (!r) return r;
    cipher.remove_prefix(k_block_size);
  }
  pending_.assign(cipher.data(), cipher.size());
  return {};
}

expected<void> decryptor::finish(std::string& out) {
  if (error_) return *error_;
  if (!header_done_) return fail(errc::invalid_argument, "file is too short to be encrypted");
  if (pending_.empty()) return {};
  if (pending_.size() <= block_overhead)
    return fail(errc::invalid_argument, "encrypted file is truncated: short last block");
  auto r = open_block(pending_.data(), pending_.size(), out);
  pending_.clear();
  return r;
}

}  // namespace tidesync::transfer::crypt
