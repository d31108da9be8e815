// DataSync parsing, validation and status JSON (see datasync.hpp).
#include "config/datasync.hpp"

#include <array>
#include <limits>
#include <map>

namespace tidesync::config {

namespace {

constexpr std::array<std::string_view, 4> k_access_modes = {"ReadWriteOnce", "ReadOnlyMany",
                                                            "ReadWriteMany", "ReadWriteOncePod"};

error bad(std::string message) {
  return make_error(errc::invalid_argument, std::move(message));
}

bool is_lower_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_hex(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
char lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}
bool has_blank_or_control(std::string_view s) {
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f) return true;
  }
  return false;
}

// DNS-1123 label (workspace ids, VM names): what a PVC name part and a label value allow.
std::string check_dns_label(std::string_view s) {
  if (s.empty()) return "must not be empty";
  if (s.size() > 63) return "is " + std::to_string(s.size()) + " characters; at most 63";
  bool ok = is_lower_alnum(s.front()) && is_lower_alnum(s.back());
  for (char c : s)
    ok = ok && (is_lower_alnum(c) || c == '-');
  if (!ok)
    return "must be lower-case letters, digits and '-', starting and ending with a letter or "
           "digit";
  return {};
}

// S3 bucket names: 3-63 lower-case letters, digits, '.' and '-', a letter or digit at both ends.
std::string check_bucket(std::string_view s) {
  if (s.size() < 3 || s.size() > 63)
    return "bucket \"" + std::string(s) + "\" must be 3-63 characters";
  bool ok = is_lower_alnum(s.front()) && is_lower_alnum(s.back());
  for (char c : s)
    ok = ok && (is_lower_alnum(c) || c == '.' || c == '-');
  if (!ok)
    return "bucket \"" + std::string(s) +
           "\" must be lower-case letters, digits, '.' and '-', starting and ending with a "
           "letter or digit";
  return {};
}

// host[:port] of an http(s) URL; IPv6 literals in brackets. User info is refused: credentials
// belong in the Secret, and URLs end up in status messages and logs.
std::string check_authority(std::string_view a) {
  if (a.find('@') != std::string_view::npos)
    return "must not carry credentials (user:password@); put them in the Secret named by "
           "spec.secretRef";
  std::string_view host = a, port;
  if (!a.empty() && a.front() == '[') {
    auto close = a.find(']');
    if (close == std::string_view::npos) return "has an unclosed IPv6 literal '['";
    host = a.substr(0, close + 1);
    std::string_view rest = a.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return "has characters after the IPv6 literal";
      port = rest.substr(1);
      if (port.empty()) return "has an empty port after ':'";
    }
  } else if (auto colon = a.rfind(':'); colon != std::string_view::npos) {
    host = a.substr(0, colon);
    port = a.substr(colon + 1);
    if (port.empty()) return "has an empty port after ':'";
  }
  if (host.empty() || host == "[]") return "has no host";
  if (host.front() != '[')
    for (char c : host)
      if (!(is_lower_alnum(lower(c)) || c == '-' || c == '.' || c == '_'))
        return "has an invalid host \"" + std::string(host) + "\"";
  if (!port.empty()) {
    if (port.size() > 5) return "has an invalid port \"" + std::string(port) + "\"";
    int n = 0;
    for (char c : port) {
      if (!is_digit(c)) return "has an invalid port \"" + std::string(port) + "\"";
      n = n * 10 + (c - '0');
    }
    if (n < 1 || n > 65535) return "has port " + std::string(port) + "; use 1-65535";
  }
  return {};
}

// The scheme of a URL ("https"), lower-cased; empty when there is no "scheme://".
std::string scheme_of(std::string_view url) {
  auto sep = url.find("://");
  if (sep == std::string_view::npos || sep == 0) return {};
  std::string s;
  for (char c : url.substr(0, sep)) {
    if (!(is_lower_alnum(lower(c)) || c == '+' || c == '-' || c == '.')) return {};
    s += lower(c);
  }
  return s;
}

std::string example_url(datasync_source_type t) {
  switch (t) {
    case datasync_source_type::http:
      return "https://images.example.com/base.qcow2";
    case datasync_source_type::s3:
      return "s3://images/tools.qcow2";
    case datasync_source_type::pvc:
      return "pvc://golden-images/disk.img";
  }
  return {};
}

std::string allowed_source_types() {
  return "http (an http:// or https:// URL), s3 (s3://bucket/key) or pvc (pvc://claim/path)";
}

json::value int_or_null(const std::optional<int64_t>& i) {
  if (!i) return nullptr;
  return *i;
}

// Reads a required string member; reports it as required when absent, null or empty.
std::optional<std::string> read_required(const json::value& obj, std::string_view key,
                                         const std::string& path, const std::string& hint,
                                         problems& p) {
  const json::value* v = obj.at(key);
  if (v == nullptr || v->is_null()) {
    p.required(path, hint);
    return std::nullopt;
  }
  auto s = read_string(obj, key, path, p);
  if (s && s->empty()) {
    p.required(path, "must not be empty; " + hint);
    return std::nullopt;
  }
  return s;
}

datasync_vm read_vm(const json::value& item, const std::string& at, problems& p) {
  datasync_vm vm;
  warn_unknown_fields(item, at, datasync_vm_fields(), p);
  if (auto name = read_required(item, "name", at + ".name",
                                "write a short name such as \"base\" (the PVC is named "
                                "\"<datasync>-<name>\")",
                                p)) {
    if (auto err = check_dns_label(*name); !err.empty())
      p.invalid(at + ".name", "\"" + *name + "\" " + err + " (e.g. \"base\")");
    else
      vm.name = *name;
  }

  std::optional<datasync_source_type> type;
  if (auto t = read_required(item, "sourceType", at + ".sourceType",
                             "write one of " + allowed_source_types(), p)) {
    type = parse_datasync_source_type(*t);
    if (!type)
      p.invalid(at + ".sourceType",
                "\"" + *t + "\" is not a source type; write one of " + allowed_source_types());
    else
      vm.source_type = *type;
  }

  std::string url_hint =
      type ? "write e.g. \"" + example_url(*type) + "\"" : "write the image's URL";
  if (auto url = read_required(item, "url", at + ".url", url_hint, p)) {
    if (type) {
      if (auto loc = split_source_url(*type, *url); !loc)
        p.invalid(at + ".url", describe(json::value(*url)) + " " + loc.error().message);
      else
        vm.url = *url;
    } else {
      vm.url = *url;  // cannot be checked without a valid sourceType
    }
  }

  if (auto c = read_string(item, "checksum", at + ".checksum", p)) {
    if (auto n = normalize_checksum(*c); !n)
      p.invalid(at + ".checksum", describe(json::value(*c)) + " " + n.error().message);
    else
      vm.checksum = *n;
  }
  if (auto size = read_int(item, "size", at + ".size", p)) {
    if (*size < 0)
      p.invalid(at + ".size", std::to_string(*size) +
                                  " is negative; write the image's size in bytes (e.g. "
                                  "10737418240) or leave size out");
    else
      vm.size = *size;
  }
  return vm;
}

void read_vms(const json::value& spec, datasync_spec& s, problems& p) {
  const json::value* v = spec.at("vms");
  const std::string example =
      "e.g. [{name: base, sourceType: http, url: \"https://images.example.com/base.qcow2\"}]";
  if (v == nullptr || v->is_null()) {
    p.required("spec.vms", "list the VM images to download, " + example);
    return;
  }
  if (!v->is_array()) {
    p.type("spec.vms", "a list of VM images, " + example, *v);
    return;
  }
  const auto& list = v->as_array();
  if (list.empty()) {
    p.required("spec.vms", "is empty; list at least one VM image, " + example);
    return;
  }
  if (list.size() > k_datasync_max_vms)
    p.invalid("spec.vms", "has " + std::to_string(list.size()) + " entries; at most " +
                              std::to_string(k_datasync_max_vms) +
                              " are allowed: split the images across several DataSyncs");
  std::map<std::string, size_t> first_index;
  for (size_t i = 0; i < list.size(); ++i) {
    std::string at = "spec.vms[" + std::to_string(i) + "]";
    if (!list[i].is_object()) {
      p.type(at, "an object {name, sourceType, url}", list[i]);
      continue;
    }
    datasync_vm vm = read_vm(list[i], at, p);
    if (!vm.name.empty()) {
      auto [it, inserted] = first_index.emplace(vm.name, i);
      if (!inserted)
        p.invalid(at + ".name", "\"" + vm.name + "\" is also the name of spec.vms[" +
                                    std::to_string(it->second) +
                                    "]; VM names must be unique: rename one of them");
    }
    s.vms.push_back(std::move(vm));
  }
}

void read_storage(const json::value& spec, datasync_storage& st, problems& p) {
  const json::value* v = spec.at("storage");
  if (v == nullptr || v->is_null()) return;
  if (!v->is_object()) {
    p.type("spec.storage", "an object such as {storageClassName: fast, size: 20Gi}", *v);
    return;
  }
  warn_unknown_fields(*v, "spec.storage", datasync_storage_fields(), p);
  if (auto sc = read_string(*v, "storageClassName", "spec.storage.storageClassName", p)) {
    // "" is kept: as in a PVC, it means no dynamic provisioning.
    if (auto err = sc->empty() ? std::string() : check_dns_subdomain(*sc); !err.empty())
      p.invalid("spec.storage.storageClassName",
                "\"" + *sc + "\" " + err + "; write a StorageClass name such as \"fast\"");
    else
      st.storage_class_name = *sc;
  }
  if (const json::value* size = v->at("size"); size != nullptr && !size->is_null()) {
    const std::string hint = "write a quantity such as \"20Gi\", \"500M\" or \"1e9\"";
    std::optional<std::string> text;
    if (size->is_string())
      text = size->as_string();
    else  // as in the CRD: YAML reads an unquoted 20 or 1e9 as a number
      p.type("spec.storage.size", "a quoted quantity string such as \"20Gi\" or \"1e9\"", *size);
    if (text) {
      auto q = parse_quantity(*text);
      if (!q)
        p.invalid("spec.storage.size", describe(*size) + " " + q.error().message + "; " + hint);
      else if (*q == 0)
        p.invalid("spec.storage.size", describe(*size) +
                                           " is zero; a volume needs a size above 0; " + hint +
                                           ", or leave size out for the VM's size + 10 %");
      else {
        st.size = *text;
        st.size_bytes = *q;
      }
    }
  }
  if (const json::value* modes = v->at("accessModes"); modes != nullptr && !modes->is_null()) {
    std::string allowed;
    for (auto m : k_access_modes)
      allowed += (allowed.empty() ? "" : ", ") + std::string(m);
    if (!modes->is_array()) {
      p.type("spec.storage.accessModes", "a list such as [ReadWriteOnce]", *modes);
      return;
    }
    size_t i = 0;
    for (const auto& m : modes->as_array()) {
      std::string at = "spec.storage.accessModes[" + std::to_string(i++) + "]";
      if (!m.is_string()) {
        p.type(at, "a string such as \"ReadWriteOnce\"", m);
        continue;
      }
      bool known = false;
      for (auto k : k_access_modes)
        known = known || k == m.as_string();
      if (!known)
        p.invalid(at, describe(m) + " is not an access mode; write one of " + allowed);
      else
        st.access_modes.push_back(m.as_string());
    }
    if (st.access_modes.size() > 1)
      for (const auto& m : st.access_modes)
        if (m == "ReadWriteOncePod") {
          p.invalid("spec.storage.accessModes",
                    "ReadWriteOncePod cannot be combined with other access modes; write "
                    "[ReadWriteOncePod] alone");
          break;
        }
  }
}

}  // namespace

std::string_view to_string(datasync_source_type t) {
  switch (t) {
    case datasync_source_type::http:
      return "http";
    case datasync_source_type::s3:
      return "s3";
    case datasync_source_type::pvc:
      return "pvc";
  }
  return "";
}

std::optional<datasync_source_type> parse_datasync_source_type(std::string_view s) {
  for (auto t : {datasync_source_type::http, datasync_source_type::s3, datasync_source_type::pvc})
    if (to_string(t) == s) return t;
  return std::nullopt;
}

std::string_view to_string(datasync_phase p) {
  switch (p) {
    case datasync_phase::none:
      return "";
    case datasync_phase::queued:
      return "Queued";
    case datasync_phase::syncing:
      return "Syncing";
    case datasync_phase::succeeded:
      return "Succeeded";
    case datasync_phase::failed:
      return "Failed";
  }
  return "";
}

std::optional<datasync_phase> parse_datasync_phase(std::string_view s) {
  for (auto p : {datasync_phase::none, datasync_phase::queued, datasync_phase::syncing,
                 datasync_phase::succeeded, datasync_phase::failed})
    if (to_string(p) == s) return p;
  return std::nullopt;
}

std::string_view to_string(datasync_vm_phase p) {
  switch (p) {
    case datasync_vm_phase::pending:
      return "Pending";
    case datasync_vm_phase::syncing:
      return "Syncing";
    case datasync_vm_phase::succeeded:
      return "Succeeded";
    case datasync_vm_phase::failed:
      return "Failed";
  }
  return "";
}

std::optional<datasync_vm_phase> parse_datasync_vm_phase(std::string_view s) {
  for (auto p : {datasync_vm_phase::pending, datasync_vm_phase::syncing,
                 datasync_vm_phase::succeeded, datasync_vm_phase::failed})
    if (to_string(p) == s) return p;
  return std::nullopt;
}

expected<source_location> split_source_url(datasync_source_type type, std::string_view url) {
  std::string want = "write e.g. \"" + example_url(type) + "\"";
  if (has_blank_or_control(url))
    return bad("contains blanks or control characters; percent-encode them (%20) and " + want);
  std::string scheme = scheme_of(url);
  if (scheme.empty()) return bad("is not a URL (no scheme://); " + want);
  auto other = parse_datasync_source_type(scheme == "https" ? "http" : scheme);
  if (other != type) {
    std::string fix = other ? "; write sourceType: " + std::string(to_string(*other)) +
                                  ", or a URL such as \"" + example_url(type) + "\""
                            : "; " + want;
    return bad("has the scheme " + scheme + "://, but sourceType is " +
               std::string(to_string(type)) + fix);
  }
  std::string_view rest = url.substr(scheme.size() + 3);
  source_location loc;
  switch (type) {
    case datasync_source_type::http: {
      auto end = rest.find_first_of("/?#");
      std::string_view authority = rest.substr(0, end);
      if (auto err = check_authority(authority); !err.empty()) return bad(err + "; " + want);
      loc.authority = std::string(url.substr(0, scheme.size() + 3)) + std::string(authority);
      loc.path = end == std::string_view::npos ? "/" : std::string(rest.substr(end));
      if (loc.path.front() != '/') loc.path.insert(0, "/");
      return loc;
    }
    case datasync_source_type::s3: {
      auto slash = rest.find('/');
      std::string_view bucket = rest.substr(0, slash);
      if (bucket.empty()) return bad("has no bucket; " + want);
      if (auto err = check_bucket(bucket); !err.empty()) return bad(err + "; " + want);
      std::string_view key = slash == std::string_view::npos ? "" : rest.substr(slash + 1);
      if (key.empty()) return bad("has no object key after the bucket; " + want);
      loc.authority = std::string(bucket);
      loc.path = std::string(key);
      return loc;
    }
    case datasync_source_type::pvc: {
      auto slash = rest.find('/');
      std::string_view claim = rest.substr(0, slash);
      if (claim.empty()) return bad("has no claim name; " + want);
      if (auto err = check_dns_subdomain(claim); !err.empty())
        return bad("claim \"" + std::string(claim) + "\" " + err + "; " + want);
      std::string_view path = slash == std::string_view::npos ? "" : rest.substr(slash + 1);
      if (path.empty()) return bad("has no file path after the claim; " + want);
      if (path.front() == '/')
        return bad("has an absolute path; the path is relative to the claim's root, " + want);
      size_t b = 0;
      while (b <= path.size()) {
        size_t e = path.find('/', b);
        if (e == std::string_view::npos) e = path.size();
        if (path.substr(b, e - b) == "..")
          return bad("has a '..' element; the file must be inside the claim, " + want);
        b = e + 1;
      }
      loc.authority = std::string(claim);
      loc.path = std::string(path);
      return loc;
    }
  }
  return bad("has an unknown source type");
}

expected<std::string> normalize_checksum(std::string_view text) {
  const std::string want =
      "; write \"sha256:\" and the 64 hex digits of the image's SHA-256 (sha256sum prints them)";
  std::string_view hex = text;
  if (hex.rfind("sha256:", 0) == 0) {
    hex.remove_prefix(7);
  } else if (auto colon = hex.find(':'); colon != std::string_view::npos) {
    return bad("uses the algorithm \"" + std::string(hex.substr(0, colon)) +
               "\"; only sha256 is supported" + want);
  }
  if (hex.size() != 64)
    return bad("has " + std::to_string(hex.size()) + " hex digits, not 64" + want);
  std::string out = "sha256:";
  for (char c : hex) {
    if (!is_hex(c)) return bad("contains '" + std::string(1, c) + "', not a hex digit" + want);
    out += lower(c);
  }
  return out;
}

expected<int64_t> parse_quantity(std::string_view text) {
  if (text.empty()) return bad("is empty");
  std::string_view s = text;
  if (s.front() == '-') return bad("is negative");
  if (s.front() == '+') s.remove_prefix(1);
  // <digits>[.<digits>] then a suffix.
  std::string digits;
  int fraction_digits = 0;
  bool seen_digit = false, seen_dot = false;
  size_t i = 0;
  for (; i < s.size(); ++i) {
    if (is_digit(s[i])) {
      seen_digit = true;
      if (digits.empty() && s[i] == '0') {
        if (seen_dot) ++fraction_digits;
        continue;  // leading zeros carry no value
      }
      digits += s[i];
      if (seen_dot) ++fraction_digits;
    } else if (s[i] == '.' && !seen_dot) {
      seen_dot = true;
    } else {
      break;
    }
  }
  if (!seen_digit) return bad("does not start with a number");
  if (digits.size() > 30) return bad("has too many digits");
  std::string_view suffix = s.substr(i);
  struct unit {
    std::string_view suffix;
    int exp2;
    int exp10;
  };
  static constexpr std::array<unit, 16> k_units = {{{"", 0, 0},
                                                    {"Ki", 10, 0},
                                                    {"Mi", 20, 0},
                                                    {"Gi", 30, 0},
                                                    {"Ti", 40, 0},
                                                    {"Pi", 50, 0},
                                                    {"Ei", 60, 0},
                                                    {"n", 0, -9},
                                                    {"u", 0, -6},
                                                    {"m", 0, -3},
                                                    {"k", 0, 3},
                                                    {"M", 0, 6},
                                                    {"G", 0, 9},
                                                    {"T", 0, 12},
                                                    {"P", 0, 15},
                                                    {"E", 0, 18}}};
  int exp10 = 0, exp2 = 0;
  bool known = false;
  for (const auto& u : k_units)
    if (u.suffix == suffix) {
      known = true;
      exp2 = u.exp2;
      exp10 = u.exp10;
    }
  if (!known && (suffix.front() == 'e' || suffix.front() == 'E')) {  // "1e9", "12e-1"
    std::string_view e = suffix.substr(1);
    bool negative = !e.empty() && e.front() == '-';
    if (!e.empty() && (e.front() == '-' || e.front() == '+')) e.remove_prefix(1);
    if (e.empty() || e.size() > 4) return bad("has an invalid exponent");
    for (char c : e) {
      if (!is_digit(c)) return bad("has an invalid exponent");
      exp10 = exp10 * 10 + (c - '0');
    }
    if (negative) exp10 = -exp10;
  } else if (!known) {
    return bad("has an unknown suffix \"" + std::string(suffix) +
               "\" (binary: Ki Mi Gi Ti Pi Ei; decimal: k M G T P E; or an exponent e9)");
  }
  using u128 = unsigned __int128;
  constexpr auto max = static_cast<u128>(std::numeric_limits<int64_t>::max());
  u128 n = 0;
  for (char c : digits)
    n = n * 10 + static_cast<u128>(c - '0');
  if (n == 0) return int64_t{0};
  exp10 -= fraction_digits;
  for (; exp2 > 0; --exp2) {
    n <<= 1;
    if (n > (max << 40)) return bad("is too large");
  }
  bool remainder = false;
  for (; exp10 < 0 && n != 0; ++exp10) {
    remainder = remainder || n % 10 != 0;
    n /= 10;
  }
  for (; exp10 > 0; --exp10) {
    n *= 10;
    if (n > (max << 40)) return bad("is too large");
  }
  if (remainder) ++n;  // Quantity.Value() rounds up
  if (n > max) return bad("is too large");
  return static_cast<int64_t>(n);
}

const std::vector<std::string_view>& datasync_spec_fields() {
  static const std::vector<std::string_view> fields = {"workspaceId", "version", "vms", "secretRef",
                                                       "storage"};
  return fields;
}

const std::vector<std::string_view>& datasync_vm_fields() {
  static const std::vector<std::string_view> fields = {"name", "sourceType", "url", "checksum",
                                                       "size"};
  return fields;
}

const std::vector<std::string_view>& datasync_storage_fields() {
  static const std::vector<std::string_view> fields = {"storageClassName", "size", "accessModes"};
  return fields;
}

const std::vector<std::string_view>& datasync_status_fields() {
  static const std::vector<std::string_view> fields = {"phase",
                                                       "message",
                                                       "queuePosition",
                                                       "retryCount",
                                                       "nextRetryTime",
                                                       "vms",
                                                       "observedGeneration",
                                                       "conditions",
                                                       "lastReconciledTime"};
  return fields;
}

const std::vector<std::string_view>& datasync_vm_status_fields() {
  static const std::vector<std::string_view> fields = {"name", "phase",  "bytes",
                                                       "size", "digest", "message"};
  return fields;
}

datasync_spec parse_datasync_spec(const json::value& spec, problems& p) {
  datasync_spec s;
  warn_unknown_fields(spec, "spec", datasync_spec_fields(), p);
  if (auto id = read_required(spec, "workspaceId", "spec.workspaceId",
                              "write the workspace's id, e.g. \"035\" (lower-case letters, "
                              "digits and '-')",
                              p)) {
    if (auto err = check_dns_label(*id); !err.empty())
      p.invalid("spec.workspaceId", "\"" + *id + "\" " + err + " (e.g. \"035\" or \"team-a\")");
    else
      s.workspace_id = *id;
  }
  if (auto version = read_string(spec, "version", "spec.version", p)) {
    if (auto err = check_label_value(*version); !err.empty() || version->empty())
      p.invalid("spec.version",
                "\"" + *version +
                    "\" must be 1-63 letters, digits, '-', '_' or '.', starting and ending with "
                    "a letter or digit (e.g. \"7\" or \"2026-11-23\"), or leave version out");
    else
      s.version = *version;
  }
  read_vms(spec, s, p);
  if (const json::value* ref = spec.at("secretRef"); ref != nullptr && !ref->is_null()) {
    if (!ref->is_object()) {
      p.type("spec.secretRef", "an object such as {name: image-credentials}", *ref);
    } else {
      warn_unknown_fields(*ref, "spec.secretRef", {"name"}, p);
      auto name = read_string(*ref, "name", "spec.secretRef.name", p);
      if (!name || name->empty())
        p.required("spec.secretRef.name", "name the Secret in this namespace, or remove secretRef");
      else if (auto err = check_dns_subdomain(*name); !err.empty())
        p.invalid("spec.secretRef.name", "\"" + *name + "\" " + err);
      else
        s.secret_ref = secret_reference{*name};
    }
  }
  read_storage(spec, s.storage, p);
  return s;
}

datasync_status parse_datasync_status(const json::value* status, problems& p) {
  datasync_status s;
  if (status == nullptr || !status->is_object()) return s;
  problems local;
  if (auto phase = read_string(*status, "phase", "status.phase", local)) {
    if (auto ph = parse_datasync_phase(*phase))
      s.phase = *ph;
    else
      local.warn("status.phase: unknown phase \"" + *phase + "\"; treated as not started");
  }
  s.message = read_string(*status, "message", "status.message", local).value_or("");
  s.queue_position = read_int(*status, "queuePosition", "status.queuePosition", local);
  s.retry_count = read_int(*status, "retryCount", "status.retryCount", local).value_or(0);
  s.next_retry_time = read_time(*status, "nextRetryTime", "status.nextRetryTime", local);
  if (const json::value* vms = status->at("vms"); vms != nullptr && !vms->is_null()) {
    if (!vms->is_array()) {
      local.type("status.vms", "a list", *vms);
    } else {
      size_t i = 0;
      for (const auto& item : vms->as_array()) {
        std::string at = "status.vms[" + std::to_string(i++) + "]";
        if (!item.is_object()) {
          local.type(at, "an object", item);
          continue;
        }
        datasync_vm_status vs;
        vs.name = read_string(item, "name", at + ".name", local).value_or("");
        if (vs.name.empty()) {
          local.warn(at + ": no name; ignored");
          continue;
        }
        if (auto phase = read_string(item, "phase", at + ".phase", local)) {
          if (auto ph = parse_datasync_vm_phase(*phase))
            vs.phase = *ph;
          else
            local.warn(at + ".phase: unknown phase \"" + *phase + "\"; treated as Pending");
        }
        vs.bytes = read_int(item, "bytes", at + ".bytes", local).value_or(0);
        vs.size = read_int(item, "size", at + ".size", local);
        vs.digest = read_string(item, "digest", at + ".digest", local);
        vs.message = read_string(item, "message", at + ".message", local);
        s.vms.push_back(std::move(vs));
      }
    }
  }
  s.observed_generation =
      read_int(*status, "observedGeneration", "status.observedGeneration", local).value_or(0);
  s.conditions = parse_conditions(status->at("conditions"), "status.conditions", local);
  s.last_reconciled_time =
      read_time(*status, "lastReconciledTime", "status.lastReconciledTime", local);
  demote(local, p);
  return s;
}

datasync parse_datasync_partial(const json::value& object, std::optional<error>* problem,
                                std::vector<std::string>* warnings) {
  problems p;
  datasync out;
  if (!object.is_object()) {
    p.type("(object)", "a DataSync object", object);
  } else {
    check_type_meta(object, k_datasync_kind, p);
    out.metadata = read_meta(object, p);
    const json::value* spec = object.at("spec");
    if (spec == nullptr || spec->is_null())
      p.required("spec", "a DataSync needs a spec with at least workspaceId and vms");
    else if (!spec->is_object())
      p.type("spec", "an object", *spec);
    else
      out.spec = parse_datasync_spec(*spec, p);
    out.status = parse_datasync_status(object.at("status"), p);
  }
  if (warnings != nullptr) *warnings = p.take_warnings();
  if (problem != nullptr) {
    if (p.empty())
      problem->reset();
    else
      *problem = p.to_error(object_label(k_datasync_kind, out.metadata));
  }
  return out;
}

expected<datasync> parse_datasync(const json::value& object, std::vector<std::string>* warnings) {
  std::optional<error> problem;
  auto out = parse_datasync_partial(object, &problem, warnings);
  if (problem) return std::move(*problem);
  return out;
}

json::value to_json(const datasync_vm_status& s) {
  json::object o{{"name", s.name}, {"phase", to_string(s.phase)}, {"bytes", s.bytes}};
  if (s.size) o.set("size", *s.size);
  if (s.digest) o.set("digest", *s.digest);
  if (s.message && !s.message->empty()) o.set("message", *s.message);
  return o;
}

json::value to_json(const datasync_status& s) {
  json::value phase =
      s.phase == datasync_phase::none ? json::value(nullptr) : json::value(to_string(s.phase));
  json::array vms;
  for (const auto& v : s.vms)
    vms.push_back(to_json(v));
  return json::object{
      {"phase", std::move(phase)},
      {"message", s.message.empty() ? json::value(nullptr) : json::value(s.message)},
      {"queuePosition", int_or_null(s.queue_position)},
      {"retryCount", s.retry_count},
      {"nextRetryTime", time_or_null(s.next_retry_time)},
      {"vms", std::move(vms)},
      {"observedGeneration", s.observed_generation},
      {"conditions", to_json(s.conditions)},
      {"lastReconciledTime", time_or_null(s.last_reconciled_time)}};
}

}  // namespace tidesync::config
