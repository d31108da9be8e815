#include "runtime/mirror/known_hosts.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cctype>

#include "runtime/base64.hpp"

namespace tidesync::mirror {
namespace {

std::vector<std::string_view> split_fields(std::string_view line) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t'))
      ++i;
    if (i >= line.size()) break;
    size_t j = i;
    while (j < line.size() && line[j] != ' ' && line[j] != '\t')
      ++j;
    out.push_back(line.substr(i, j - i));
    i = j;
  }
  return out;
}

char lower(char c) {
  return static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
}

// "|1|base64(salt)|base64(HMAC-SHA1(salt, name))"
bool hashed_match(std::string_view entry, std::string_view name) {
  if (entry.substr(0, 3) != "|1|") return false;
  entry.remove_prefix(3);
  const auto bar = entry.find('|');
  if (bar == std::string_view::npos) return false;
  const auto salt = base64::decode(entry.substr(0, bar));
  const auto want = base64::decode(entry.substr(bar + 1));
  if (!salt || !want || want->size() != 20) return false;
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (HMAC(EVP_sha1(), salt->data(), static_cast<int>(salt->size()),
           reinterpret_cast<const unsigned char*>(name.data()), name.size(), mac, &len) == nullptr)
    return false;
  return len == 20 &&
         std::equal(mac, mac + 20, reinterpret_cast<const unsigned char*>(want->data()));
}

// Whether the host field (patterns, or one hashed name) names `name`.
bool hosts_field_matches(std::string_view field, std::string_view name) {
  if (field.substr(0, 3) == "|1|") return hashed_match(field, name);
  bool matched = false;
  size_t start = 0;
  while (start <= field.size()) {
    const size_t end = std::min(field.find(',', start), field.size());
    std::string_view pat = field.substr(start, end - start);
    start = end + 1;
    if (pat.empty()) continue;
    const bool negated = pat.front() == '!';
    if (negated) pat.remove_prefix(1);
    if (!host_pattern_match(pat, name)) continue;
    if (negated) return false;  // a negated match excludes the host from this line
    matched = true;
  }
  return matched;
}

}  // namespace

std::string known_hosts_name(std::string_view host, int port) {
  if (port == 0 || port == 22) return std::string(host);
  return "[" + std::string(host) + "]:" + std::to_string(port);
}

bool host_pattern_match(std::string_view pattern, std::string_view name) {
  // Iterative wildcard match with one backtrack point.
  size_t p = 0, n = 0, star = std::string_view::npos, mark = 0;
  while (n < name.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || lower(pattern[p]) == lower(name[n]))) {
      ++p;
      ++n;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = n;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      n = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*')
    ++p;
  return p == pattern.size();
}

std::string key_type(std::string_view blob) {
  if (blob.size() < 4) return {};
  const auto* b = reinterpret_cast<const unsigned char*>(blob.data());
  const size_t len = (size_t{b[0]} << 24) | (size_t{b[1]} << 16) | (size_t{b[2]} << 8) | b[3];
  if (len == 0 || len > 64 || blob.size() < 4 + len) return {};
  return std::string(blob.substr(4, len));
}

std::string sha256_fingerprint(std::string_view blob) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(blob.data(), blob.size(), digest, &len, EVP_sha256(), nullptr);
  std::string b64 = base64::encode(std::string_view(reinterpret_cast<const char*>(digest), len));
  while (!b64.empty() && b64.back() == '=')
    b64.pop_back();
  return "SHA256:" + b64;
}

host_key_check check_host_key(std::string_view known_hosts, std::string_view host, int port,
                              std::string_view key_blob) {
  const std::string name = known_hosts_name(host, port);
  host_key_check out;
  bool matched = false, named = false, revoked = false;
  size_t start = 0;
  while (start < known_hosts.size()) {
    size_t end = known_hosts.find('\n', start);
    if (end == std::string_view::npos) end = known_hosts.size();
    std::string_view line = known_hosts.substr(start, end - start);
    start = end + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    auto fields = split_fields(line);
    if (fields.empty() || fields[0].front() == '#') continue;
    bool is_revoked = false;
    if (fields[0].front() == '@') {
      if (fields[0] == "@revoked") {
        is_revoked = true;
      } else {
        continue;  // @cert-authority and unknown markers
      }
      fields.erase(fields.begin());
    }
    if (fields.size() < 3) continue;
    if (!hosts_field_matches(fields[0], name)) continue;
    const auto key = base64::decode(fields[2]);
    const bool same = key && *key == key_blob;
    if (is_revoked) {
      revoked = revoked || same;
      continue;
    }
    named = true;
    if (same) {
      matched = true;
    } else if (std::find(out.known_types.begin(), out.known_types.end(), fields[1]) ==
               out.known_types.end()) {
      out.known_types.emplace_back(fields[1]);
    }
  }
  if (revoked) {
    out.verdict = host_key_verdict::revoked;
  } else if (matched) {
    out.verdict = host_key_verdict::match;
    out.known_types.clear();
  } else {
    out.verdict = named ? host_key_verdict::mismatch : host_key_verdict::unknown_host;
  }
  return out;
}

}  // namespace tidesync::mirror
