#include "runtime/transfer/s3_xml.hpp"

#include <array>
#include <cstring>

#include "runtime/rfc3339.hpp"
#include "runtime/utf8.hpp"

namespace tidesync::transfer::xml {
namespace {

// Deep enough for any S3 document; bounds the recursion on hostile input.
constexpr int k_max_depth = 64;

error bad(std::string what, size_t pos) {
  return make_error(errc::parse_error, "malformed XML from the S3 server: " + what + " at byte " +
                                           std::to_string(pos));
}

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-' || c == '.' || c == ':' || static_cast<unsigned char>(c) >= 0x80;
}

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

class parser {
 public:
  explicit parser(std::string_view s) : s_(s) {}

  expected<node> document() {
    if (auto e = skip_misc(); !e) return e.error();
    if (pos_ >= s_.size() || s_[pos_] != '<') return bad("no root element", pos_);
    node root;
    if (auto e = element(root, 0); !e) return e.error();
    if (auto e = skip_misc(); !e) return e.error();
    if (pos_ != s_.size()) return bad("content after the root element", pos_);
    return root;
  }

 private:
  bool starts(std::string_view p) const { return s_.substr(pos_, p.size()) == p; }

  // Skips whitespace, the prolog, processing instructions and comments between elements.
  expected<void> skip_misc() {
    for (;;) {
      while (pos_ < s_.size() && is_space(s_[pos_]))
        ++pos_;
      if (starts("<?")) {
        auto end = s_.find("?>", pos_);
        if (end == std::string_view::npos) return bad("unterminated <?", pos_);
        pos_ = end + 2;
      } else if (starts("<!--")) {
        auto end = s_.find("-->", pos_);
        if (end == std::string_view::npos) return bad("unterminated comment", pos_);
        pos_ = end + 3;
      } else if (starts("<!")) {
        return bad("DTDs are not accepted", pos_);
      } else {
        return {};
      }
    }
  }

  expected<std::string> name() {
    size_t start = pos_;
    while (pos_ < s_.size() && is_name_char(s_[pos_]))
      ++pos_;
    if (pos_ == start) return bad("expected a name", pos_);
    std::string_view n = s_.substr(start, pos_ - start);
    auto colon = n.rfind(':');
    if (colon != std::string_view::npos) n.remove_prefix(colon + 1);
    return std::string(n);
  }

  // At '<' of a start tag.
  expected<void> element(node& out, int depth) {
    if (depth > k_max_depth) return bad("elements nested too deeply", pos_);
    size_t tag_start = pos_;
    ++pos_;
    size_t raw_start = pos_;
    auto n = name();
    if (!n) return n.error();
    std::string raw_name(s_.substr(raw_start, pos_ - raw_start));
    out.name = std::move(*n);
    // Attributes: parsed for well-formedness, not kept.
    for (;;) {
      while (pos_ < s_.size() && is_space(s_[pos_]))
        ++pos_;
      if (pos_ >= s_.size()) return bad("unterminated start tag", tag_start);
      if (starts("/>")) {
        pos_ += 2;
        return {};
      }
      if (s_[pos_] == '>') {
        ++pos_;
        break;
      }
      if (auto a = name(); !a) return a.error();
      while (pos_ < s_.size() && is_space(s_[pos_]))
        ++pos_;
      if (pos_ >= s_.size() || s_[pos_] != '=') return bad("expected '=' in an attribute", pos_);
      ++pos_;
      while (pos_ < s_.size() && is_space(s_[pos_]))
        ++pos_;
      if (pos_ >= s_.size() || (s_[pos_] != '"' && s_[pos_] != '\''))
        return bad("expected a quoted attribute value", pos_);
      char q = s_[pos_++];
      auto end = s_.find(q, pos_);
      if (end == std::string_view::npos) return bad("unterminated attribute value", pos_);
      pos_ = end + 1;
    }
    // Content.
    for (;;) {
      if (pos_ >= s_.size()) return bad("missing </" + raw_name + ">", tag_start);
      if (starts("</")) {
        pos_ += 2;
        size_t close_start = pos_;
        while (pos_ < s_.size() && is_name_char(s_[pos_]))
          ++pos_;
        if (s_.substr(close_start, pos_ - close_start) != raw_name)
          return bad("</" + std::string(s_.substr(close_start, pos_ - close_start)) +
                         "> does not close <" + raw_name + ">",
                     close_start);
        while (pos_ < s_.size() && is_space(s_[pos_]))
          ++pos_;
        if (pos_ >= s_.size() || s_[pos_] != '>') return bad("unterminated end tag", pos_);
        ++pos_;
        return {};
      }
      if (starts("<!--")) {
        auto end = s_.find("-->", pos_);
        if (end == std::string_view::npos) return bad("unterminated comment", pos_);
        pos_ = end + 3;
      } else if (starts("<![CDATA[")) {
        auto end = s_.find("]]>", pos_);
        if (end == std::string_view::npos) return bad("unterminated CDATA", pos_);
        out.text.append(s_.substr(pos_ + 9, end - pos_ - 9));
        pos_ = end + 3;
      } else if (starts("<?")) {
        auto end = s_.find("?>", pos_);
        if (end == std::string_view::npos) return bad("unterminated <?", pos_);
        pos_ = end + 2;
      } else if (starts("<!")) {
        return bad("unexpected <!", pos_);
      } else if (s_[pos_] == '<') {
        out.children.emplace_back();
        if (auto e = element(out.children.back(), depth + 1); !e) return e;
      } else {
        size_t end = s_.find('<', pos_);
        if (end == std::string_view::npos) end = s_.size();
        auto text = decode_entities(s_.substr(pos_, end - pos_));
        if (!text) {
          auto err = text.error();
          err.message += " (at byte " + std::to_string(pos_) + ")";
          return err;
        }
        out.text += *text;
        pos_ = end;
      }
    }
  }

  std::string_view s_;
  size_t pos_ = 0;
};

}  // namespace

const node* node::child(std::string_view child_name) const {
  for (const auto& c : children)
    if (c.name == child_name) return &c;
  return nullptr;
}

std::string node::child_text(std::string_view child_name) const {
  const node* c = child(child_name);
  return c != nullptr ? c->text : std::string();
}

expected<node> parse(std::string_view document) {
  return parser(document).document();
}

expected<std::string> decode_entities(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c != '&') {
      out += c;
      continue;
    }
    auto semi = text.find(';', i);
    if (semi == std::string_view::npos || semi - i > 12)
      return make_error(errc::parse_error, "malformed XML from the S3 server: a bare '&'");
    std::string_view ent = text.substr(i + 1, semi - i - 1);
    if (ent == "amp") {
      out += '&';
    } else if (ent == "lt") {
      out += '<';
    } else if (ent == "gt") {
      out += '>';
    } else if (ent == "quot") {
      out += '"';
    } else if (ent == "apos") {
      out += '\'';
    } else if (ent.size() >= 2 && ent[0] == '#') {
      bool hex = ent[1] == 'x' || ent[1] == 'X';
      std::string_view digits = ent.substr(hex ? 2 : 1);
      if (digits.empty())
        return make_error(errc::parse_error, "malformed XML from the S3 server: empty &#;");
      uint32_t cp = 0;
      for (char d : digits) {
        int v;
        if (d >= '0' && d <= '9') {
          v = d - '0';
        } else if (hex && d >= 'a' && d <= 'f') {
          v = d - 'a' + 10;
        } else if (hex && d >= 'A' && d <= 'F') {
          v = d - 'A' + 10;
        } else {
          return make_error(errc::parse_error, "malformed XML from the S3 server: bad digit in &" +
                                                   std::string(ent) + ";");
        }
        cp = cp * (hex ? 16 : 10) + static_cast<uint32_t>(v);
        if (cp > 0x10FFFF) break;
      }
      // XML 1.0 forbids NUL; surrogates are not characters.
      if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return make_error(errc::parse_error, "malformed XML from the S3 server: &" +
                                                 std::string(ent) + "; is not a character");
      utf8::append(out, cp);
    } else {
      return make_error(errc::parse_error, "malformed XML from the S3 server: unknown entity &" +
                                               std::string(ent) + ";");
    }
    i = semi;
  }
  return out;
}

std::string escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

}  // namespace tidesync::transfer::xml

namespace tidesync::transfer {
namespace {

std::string unquote(std::string s) {
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') return s.substr(1, s.size() - 2);
  // Some servers send &quot; already decoded; others none at all.
  return s;
}

expected<uint64_t> parse_u64(const std::string& s, std::string_view what) {
  if (s.empty() || s.size() > 20)
    return make_error(errc::parse_error, "S3 listing: bad " + std::string(what) + " '" + s + "'");
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9')
      return make_error(errc::parse_error, "S3 listing: bad " + std::string(what) + " '" + s + "'");
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  return v;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string url_decode(std::string_view text, bool plus_is_space) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size()) {
      int hi = hex_value(text[i + 1]), lo = hex_value(text[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
        continue;
      }
    }
    out += (plus_is_space && text[i] == '+') ? ' ' : text[i];
  }
  return out;
}

expected<s3_list_page> parse_list_page(std::string_view document) {
  auto root = xml::parse(document);
  if (!root) return root.error();
  if (root->name != "ListBucketResult")
    return make_error(errc::parse_error,
                      "S3 listing: expected <ListBucketResult>, got <" + root->name + ">");
  bool url = root->child_text("EncodingType") == "url";
  auto decode = [url](const std::string& s) { return url ? url_decode(s, true) : s; };
  s3_list_page page;
  page.truncated = root->child_text("IsTruncated") == "true";
  page.next_continuation_token = root->child_text("NextContinuationToken");
  for (const auto& c : root->children) {
    if (c.name == "Contents") {
      s3_object o;
      o.key = decode(c.child_text("Key"));
      auto size = parse_u64(c.child_text("Size"), "Size");
      if (!size) return size.error();
      o.size = *size;
      o.etag = unquote(c.child_text("ETag"));
      o.last_modified = parse_s3_time(c.child_text("LastModified"));
      page.objects.push_back(std::move(o));
    } else if (c.name == "CommonPrefixes") {
      page.common_prefixes.push_back(decode(c.child_text("Prefix")));
    }
  }
  if (page.truncated && page.next_continuation_token.empty())
    return make_error(errc::parse_error,
                      "S3 listing: IsTruncated is true but there is no NextContinuationToken");
  return page;
}

s3_error_doc parse_error_doc(std::string_view document) {
  s3_error_doc doc;
  auto root = xml::parse(document);
  if (!root || root->name != "Error") return doc;
  doc.code = root->child_text("Code");
  doc.message = root->child_text("Message");
  doc.resource = root->child_text("Resource");
  doc.request_id = root->child_text("RequestId");
  return doc;
}

expected<std::string> parse_upload_id(std::string_view document) {
  auto root = xml::parse(document);
  if (!root) return root.error();
  std::string id = root->child_text("UploadId");
  if (root->name != "InitiateMultipartUploadResult" || id.empty())
    return make_error(errc::parse_error,
                      "S3 multipart: the answer to CreateMultipartUpload has no UploadId");
  return id;
}

expected<std::string> parse_complete_etag(std::string_view document) {
  auto root = xml::parse(document);
  if (!root) return root.error();
  if (root->name == "Error") {
    error e = make_error(errc::parse_error,
                         "S3 multipart: completion failed: " + root->child_text("Code") + ": " +
                             root->child_text("Message"));
    e.reason = root->child_text("Code");
    return e;
  }
  if (root->name != "CompleteMultipartUploadResult")
    return make_error(
        errc::parse_error,
        "S3 multipart: expected <CompleteMultipartUploadResult>, got <" + root->name + ">");
  return unquote(root->child_text("ETag"));
}

std::chrono::system_clock::time_point parse_s3_time(std::string_view text) {
  using namespace std::chrono;
  if (auto t = rfc3339::parse(text)) return system_clock::time_point(*t);
  // IMF-fixdate: "Wed, 21 Oct 2015 07:28:00 GMT".
  static constexpr std::array<const char*, 12> months = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  if (text.size() != 29 || text.substr(25) != " GMT") return {};
  auto num = [&](size_t pos, size_t n) -> int {
    int v = 0;
    for (size_t i = pos; i < pos + n; ++i) {
      if (text[i] < '0' || text[i] > '9') return -1;
      v = v * 10 + (text[i] - '0');
    }
    return v;
  };
  int day = num(5, 2), year = num(12, 4), hh = num(17, 2), mm = num(20, 2), ss = num(23, 2);
  unsigned month = 0;
  for (unsigned i = 0; i < months.size(); ++i)
    if (text.substr(8, 3) == months[i]) month = i + 1;
  if (day < 0 || year < 0 || hh < 0 || mm < 0 || ss < 0 || month == 0) return {};
  year_month_day ymd{std::chrono::year(year), std::chrono::month(month),
                     std::chrono::day(static_cast<unsigned>(day))};
  if (!ymd.ok()) return {};
  return system_clock::time_point(sys_days(ymd) + hours(hh) + minutes(mm) + seconds(ss));
}

}  // namespace tidesync::transfer
