#include "runtime/transfer/http_listing.hpp"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <set>

#include "runtime/transfer/s3_xml.hpp"
#include "runtime/utf8.hpp"

namespace tidesync::transfer {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
}

void append_utf8(std::string& out, uint32_t cp) {
  utf8::append(out, cp == 0 ? 0xFFFD : cp);  // HTML: &#0; is U+FFFD
}

// The parts of an absolute URL we compare links against.
struct url_parts {
  std::string scheme;     // lower case
  std::string authority;  // lower case, default port removed
  std::string path;       // raw (still percent-encoded), starts with '/'
};

std::string normal_authority(std::string_view scheme, std::string_view authority) {
  std::string a = lower(authority);
  if (auto at = a.rfind('@'); at != std::string::npos) a.erase(0, at + 1);  // user info
  if ((scheme == "http" && a.size() > 3 && a.compare(a.size() - 3, 3, ":80") == 0) ||
      (scheme == "https" && a.size() > 4 && a.compare(a.size() - 4, 4, ":443") == 0))
    a.erase(a.rfind(':'));
  return a;
}

// "//host/path" (after the scheme's ':') → authority and path.
void split_authority(std::string_view rest, std::string_view scheme, url_parts& out) {
  rest.remove_prefix(2);
  const auto end = rest.find('/');
  out.authority = normal_authority(scheme, rest.substr(0, end));
  out.path = end == std::string_view::npos ? "/" : std::string(rest.substr(end));
}

bool parse_absolute(std::string_view url, url_parts& out) {
  const auto sep = url.find("://");
  if (sep == std::string_view::npos || sep == 0) return false;
  out.scheme = lower(url.substr(0, sep));
  url = url.substr(0, url.find_first_of("?#"));
  split_authority(url.substr(sep + 1), out.scheme, out);
  return true;
}

// A scheme: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":" (RFC 3986 3.1).
size_t scheme_length(std::string_view href) {
  if (href.empty() || !std::isalpha(static_cast<unsigned char>(href[0]))) return 0;
  for (size_t i = 1; i < href.size(); ++i) {
    const char c = href[i];
    if (c == ':') return i;
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '-' && c != '.') return 0;
  }
  return 0;
}

// Resolves "." and ".." segments (RFC 3986 5.2.4), keeping a trailing '/'.
std::string remove_dot_segments(std::string_view path) {
  std::vector<std::string_view> out;
  size_t pos = 1;  // path starts with '/'
  bool trailing = false;
  while (pos <= path.size()) {
    auto next = path.find('/', pos);
    if (next == std::string_view::npos) next = path.size();
    auto seg = path.substr(pos, next - pos);
    const bool last = next == path.size();
    if (seg == "..") {
      if (!out.empty()) out.pop_back();
      trailing = true;
    } else if (seg == ".") {
      trailing = true;
    } else {
      trailing = last && seg.empty();
      if (!(last && seg.empty())) out.push_back(seg);
    }
    pos = next + 1;
  }
  std::string r;
  for (auto s : out)
    r.append("/").append(s);
  if (trailing || r.empty()) r += '/';
  return r;
}

// Reads the attributes of the tag starting after "<a" up to its ">"; true with the href.
bool find_href(std::string_view html, size_t& pos, std::string& href) {
  bool found = false;
  while (pos < html.size()) {
    while (pos < html.size() && is_space(html[pos]))
      ++pos;
    if (pos >= html.size()) break;
    if (html[pos] == '>') {
      ++pos;
      break;
    }
    if (html[pos] == '/') {
      ++pos;
      continue;
    }
    const size_t name_start = pos;
    while (pos < html.size() && !is_space(html[pos]) && html[pos] != '=' && html[pos] != '>')
      ++pos;
    const std::string name = lower(html.substr(name_start, pos - name_start));
    while (pos < html.size() && is_space(html[pos]))
      ++pos;
    if (pos >= html.size() || html[pos] != '=') continue;
    ++pos;
    while (pos < html.size() && is_space(html[pos]))
      ++pos;
    std::string_view value;
    if (pos < html.size() && (html[pos] == '"' || html[pos] == '\'')) {
      const char q = html[pos++];
      const auto end = html.find(q, pos);
      if (end == std::string_view::npos) {  // a truncated document: not a link
        pos = html.size();
        return false;
      }
      value = html.substr(pos, end - pos);
      pos = end + 1;
    } else {
      const size_t start = pos;
      while (pos < html.size() && !is_space(html[pos]) && html[pos] != '>')
        ++pos;
      value = html.substr(start, pos - start);
    }
    if (name == "href" && !found) {
      href = std::string(value);
      found = true;
    }
  }
  return found;
}

}  // namespace

std::string decode_html_entities(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '&') {
      out += text[i];
      continue;
    }
    const auto semi = text.find(';', i);
    if (semi == std::string_view::npos || semi - i > 10) {
      out += '&';
      continue;
    }
    const std::string_view name = text.substr(i + 1, semi - i - 1);
    bool ok = true;
    if (!name.empty() && name[0] == '#') {
      const bool hex = name.size() > 1 && (name[1] == 'x' || name[1] == 'X');
      const std::string digits(name.substr(hex ? 2 : 1));
      uint32_t cp = 0;
      ok = !digits.empty();
      for (char c : digits) {
        const int v = std::isdigit(static_cast<unsigned char>(c)) ? c - '0'
                      : hex && std::isxdigit(static_cast<unsigned char>(c))
                          ? (std::tolower(static_cast<unsigned char>(c)) - 'a' + 10)
                          : -1;
        if (v < 0 || cp > 0x10FFFF) {
          ok = false;
          break;
        }
        cp = cp * (hex ? 16 : 10) + static_cast<uint32_t>(v);
      }
      if (ok) append_utf8(out, cp);
    } else if (name == "amp") {
      out += '&';
    } else if (name == "lt") {
      out += '<';
    } else if (name == "gt") {
      out += '>';
    } else if (name == "quot") {
      out += '"';
    } else if (name == "apos") {
      out += '\'';
    } else if (name == "nbsp") {
      append_utf8(out, 0xA0);
    } else {
      ok = false;
    }
    if (ok) {
      i = semi;
    } else {
      out += '&';
    }
  }
  return out;
}

std::vector<listing_link> parse_listing(std::string_view html, std::string_view dir_url) {
  std::vector<listing_link> out;
  url_parts base;
  if (!parse_absolute(dir_url, base)) return out;
  if (base.path.empty() || base.path.back() != '/') base.path += '/';
  const std::string base_path = url_decode(remove_dot_segments(base.path), false);
  std::set<std::string> seen;

  size_t pos = 0;
  while ((pos = html.find('<', pos)) != std::string_view::npos) {
    if (html.compare(pos, 4, "<!--") == 0) {
      const auto end = html.find("-->", pos + 4);
      if (end == std::string_view::npos) break;
      pos = end + 3;
      continue;
    }
    ++pos;
    if (pos + 1 >= html.size() || (html[pos] != 'a' && html[pos] != 'A') ||
        !(is_space(html[pos + 1]) || html[pos + 1] == '>'))
      continue;
    ++pos;
    std::string raw;
    if (!find_href(html, pos, raw)) continue;

    // Trim, decode entities, drop the fragment; query links are never files.
    std::string href = decode_html_entities(raw);
    while (!href.empty() && is_space(href.back()))
      href.pop_back();
    href.erase(0, std::min(href.size(), href.find_first_not_of(" \t\r\n\f")));
    href = href.substr(0, href.find('#'));
    if (href.empty() || href.find('?') != std::string::npos) continue;

    std::string path;
    if (const size_t n = scheme_length(href); n > 0) {
      url_parts link;
      link.scheme = lower(std::string_view(href).substr(0, n));
      const std::string_view rest = std::string_view(href).substr(n + 1);
      if (link.scheme != base.scheme || rest.substr(0, 2) != "//") continue;
      split_authority(rest, link.scheme, link);
      if (link.authority != base.authority) continue;
      path = link.path;
    } else if (href.compare(0, 2, "//") == 0) {
      url_parts link;
      split_authority(href, base.scheme, link);
      if (link.authority != base.authority) continue;
      path = link.path;
    } else if (href[0] == '/') {
      path = href;
    } else {
      path = base.path + href;
    }
    const std::string decoded = url_decode(remove_dot_segments(path), false);
    if (decoded.size() <= base_path.size() || decoded.compare(0, base_path.size(), base_path) != 0)
      continue;
    std::string name = decoded.substr(base_path.size());
    listing_link l;
    if (name.back() == '/') {
      l.dir = true;
      name.pop_back();
    }
    if (name.empty() || name.find('/') != std::string::npos || name.find('\0') != std::string::npos)
      continue;
    if (!seen.insert(name).second) continue;
    l.name = std::move(name);
    out.push_back(std::move(l));
  }
  return out;
}

}  // namespace tidesync::transfer
