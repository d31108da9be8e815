#include "runtime/transfer/filter.hpp"

#include <cstdint>

namespace tidesync::transfer {
namespace detail {

enum class tok_kind : uint8_t { lit, any, star, dstar, cls };

struct cls_range {
  uint32_t lo, hi;
};

struct token {
  tok_kind kind = tok_kind::lit;
  char ch = 0;                    // lit
  bool negated = false;           // cls
  std::vector<cls_range> ranges;  // cls
};

using alternative = std::vector<token>;

struct compiled_rule {
  filter_action action = filter_action::exclude;
  bool dir_only = false;
  bool anchored = false;
  std::vector<alternative> alts;  // brace alternatives, already expanded
};

}  // namespace detail

namespace {

using detail::alternative;
using detail::cls_range;
using detail::compiled_rule;
using detail::tok_kind;
using detail::token;

// Brace expansion is done at parse time; this bounds what "{a,b}{c,d}..." can blow up to.
constexpr size_t max_alternatives = 4096;

error bad_pattern(std::string_view pattern, std::string_view why) {
  return make_error(errc::invalid_argument,
                    "bad filter pattern \"" + std::string(pattern) + "\": " + std::string(why));
}

// Decodes one UTF-8 code point at s[i]; invalid bytes decode as themselves (one byte), so
// that odd names still match "?" and "*" sensibly.
uint32_t decode(std::string_view s, size_t i, size_t* len) {
  auto b = static_cast<unsigned char>(s[i]);
  int n = b < 0x80 ? 0 : (b >> 5) == 0x6 ? 1 : (b >> 4) == 0xE ? 2 : (b >> 3) == 0x1E ? 3 : -1;
  if (n <= 0 || i + static_cast<size_t>(n) >= s.size()) {
    *len = 1;
    return b;
  }
  uint32_t cp = b & (0x3F >> n);
  for (int k = 1; k <= n; ++k) {
    auto c = static_cast<unsigned char>(s[i + k]);
    if ((c >> 6) != 0x2) {
      *len = 1;
      return b;
    }
    cp = (cp << 6) | (c & 0x3F);
  }
  *len = static_cast<size_t>(n) + 1;
  return cp;
}

// Finds the '}' closing the '{' at `open`, honouring escapes and classes; npos if none.
size_t find_close_brace(std::string_view p, size_t open) {
  int depth = 0;
  for (size_t i = open; i < p.size(); ++i) {
    char c = p[i];
    if (c == '\\') {
      ++i;
    } else if (c == '[') {
      // skip the class: a ']' right after '[', '[!' or '[^' is not its end here (it is an
      // error later, but must not confuse brace matching)
      size_t j = i + 1;
      if (j < p.size() && (p[j] == '!' || p[j] == '^')) ++j;
      for (; j < p.size() && p[j] != ']'; ++j) {
        if (p[j] == '\\') ++j;
      }
      i = j;
    } else if (c == '{') {
      ++depth;
    } else if (c == '}') {
      if (--depth == 0) return i;
    }
  }
  return std::string_view::npos;
}

// Expands the first top-level {a,b} group and recurses, producing plain glob strings.
expected<void> expand(std::string_view whole, const std::string& p, std::vector<std::string>* out) {
  for (size_t i = 0; i < p.size(); ++i) {
    char c = p[i];
    if (c == '\\') {
      ++i;
      continue;
    }
    if (c == '[') {
      size_t j = i + 1;
      if (j < p.size() && (p[j] == '!' || p[j] == '^')) ++j;
      for (; j < p.size() && p[j] != ']'; ++j) {
        if (p[j] == '\\') ++j;
      }
      i = j;
      continue;
    }
    if (c == '}') return bad_pattern(whole, "unmatched '}'");
    if (c != '{') continue;
    size_t close = find_close_brace(p, i);
    if (close == std::string_view::npos) return bad_pattern(whole, "unterminated '{'");
    if (i + 1 < p.size() && p[i + 1] == '{') {
      return bad_pattern(whole, "{{regexp}} filters are not supported by the native engine");
    }
    // split the inside on top-level commas
    std::vector<std::string> options;
    std::string cur;
    int depth = 0;
    for (size_t k = i + 1; k < close; ++k) {
      char d = p[k];
      if (d == '\\' && k + 1 < close) {
        cur += d;
        cur += p[++k];
        continue;
      }
      if (d == '{') ++depth;
      if (d == '}') --depth;
      if (d == ',' && depth == 0) {
        options.push_back(std::move(cur));
        cur.clear();
        continue;
      }
      cur += d;
    }
    options.push_back(std::move(cur));
    std::string prefix = p.substr(0, i);
    std::string suffix = p.substr(close + 1);
    for (const auto& o : options) {
      auto r = expand(whole, prefix + o + suffix, out);
      if (!r) return r;
      if (out->size() > max_alternatives) return bad_pattern(whole, "too many {,} alternatives");
    }
    return {};
  }
  out->push_back(p);
  return {};
}

bool unsupported_class_escape(char c) {
  return c == 'd' || c == 'D' || c == 's' || c == 'S' || c == 'w' || c == 'W' || c == 'p' ||
         c == 'P';
}

expected<alternative> compile(std::string_view whole, std::string_view p) {
  alternative toks;
  for (size_t i = 0; i < p.size(); ++i) {
    char c = p[i];
    token t;
    if (c == '\\') {
      if (i + 1 >= p.size()) return bad_pattern(whole, "trailing '\\'");
      char e = p[++i];
      if (unsupported_class_escape(e)) {
        return bad_pattern(
            whole, std::string("character class escape \\") + e + " is not supported; use [...]");
      }
      t.kind = tok_kind::lit;
      t.ch = e;
    } else if (c == '*') {
      if (i + 1 < p.size() && p[i + 1] == '*') {
        t.kind = tok_kind::dstar;
        ++i;
      } else {
        t.kind = tok_kind::star;
      }
    } else if (c == '?') {
      t.kind = tok_kind::any;
    } else if (c == '[') {
      t.kind = tok_kind::cls;
      size_t j = i + 1;
      if (j < p.size() && (p[j] == '!' || p[j] == '^')) {
        t.negated = true;
        ++j;
      }
      bool closed = false;
      while (j < p.size()) {
        if (p[j] == ']') {
          closed = true;
          break;
        }
        if (p[j] == '[' && j + 1 < p.size() && p[j + 1] == ':') {
          return bad_pattern(whole, "[[:class:]] character classes are not supported");
        }
        auto read_char = [&](uint32_t* cp) -> bool {
          if (p[j] == '\\') {
            if (j + 1 >= p.size()) return false;
            ++j;
            if (unsupported_class_escape(p[j])) return false;
          }
          size_t len = 1;
          *cp = decode(p, j, &len);
          j += len;
          return true;
        };
        uint32_t lo = 0;
        if (!read_char(&lo)) return bad_pattern(whole, "bad escape in character class");
        uint32_t hi = lo;
        if (j + 1 < p.size() && p[j] == '-' && p[j + 1] != ']') {
          ++j;
          if (!read_char(&hi)) return bad_pattern(whole, "bad escape in character class");
          if (hi < lo) return bad_pattern(whole, "character range is out of order");
        }
        t.ranges.push_back({lo, hi});
      }
      if (!closed) return bad_pattern(whole, "unterminated '['");
      if (t.ranges.empty()) return bad_pattern(whole, "empty character class");
      i = j;
    } else {
      t.kind = tok_kind::lit;
      t.ch = c;
    }
    toks.push_back(std::move(t));
  }
  return toks;
}

// Matches tokens[ti..] against s[si..] to the end. `memo` records failed (ti, si) states so
// that patterns with many stars stay O(tokens * length) instead of exponential.
bool match_from(const alternative& toks, size_t ti, std::string_view s, size_t si,
                std::vector<uint8_t>* memo) {
  const size_t width = s.size() + 1;
  while (true) {
    if (ti == toks.size()) return si == s.size();
    const token& t = toks[ti];
    switch (t.kind) {
      case tok_kind::lit:
        if (si >= s.size() || s[si] != t.ch) return false;
        ++ti;
        ++si;
        continue;
      case tok_kind::any:
      case tok_kind::cls: {
        if (si >= s.size() || s[si] == '/') return false;
        size_t len = 1;
        uint32_t cp = decode(s, si, &len);
        if (t.kind == tok_kind::cls) {
          bool in = false;
          for (const auto& r : t.ranges)
            in = in || (cp >= r.lo && cp <= r.hi);
          if (in == t.negated) return false;
        }
        ++ti;
        si += len;
        continue;
      }
      case tok_kind::star:
      case tok_kind::dstar: {
        if (memo->empty()) memo->assign((toks.size() + 1) * width, 0);
        for (size_t k = si;; ++k) {
          uint8_t& failed = (*memo)[(ti + 1) * width + k];
          if (!failed) {
            if (match_from(toks, ti + 1, s, k, memo)) return true;
            failed = 1;
          }
          if (k >= s.size()) return false;
          if (t.kind == tok_kind::star && s[k] == '/') return false;
        }
      }
    }
  }
}

bool matches(const compiled_rule& r, std::string_view path) {
  std::vector<uint8_t> memo;
  for (const auto& alt : r.alts) {
    // anchored: from the root only; otherwise from the start of any path element
    for (size_t start = 0; start <= path.size(); ++start) {
      if (start == 0 || path[start - 1] == '/') {
        memo.clear();
        if (match_from(alt, 0, path.substr(start), 0, &memo)) return true;
      }
      if (r.anchored) break;
    }
  }
  return false;
}

}  // namespace

filter::filter() = default;
filter::~filter() = default;
filter::filter(filter&&) noexcept = default;
filter& filter::operator=(filter&&) noexcept = default;

expected<filter> filter::parse(const std::vector<filter_rule>& rules) {
  filter f;
  for (const auto& rule : rules) {
    std::string_view p = rule.pattern;
    auto cr = std::make_unique<compiled_rule>();
    cr->action = rule.action;
    if (!p.empty() && p.front() == '/') {
      cr->anchored = true;
      p.remove_prefix(1);
    }
    // a trailing unescaped '/' makes a directory rule
    if (!p.empty() && p.back() == '/') {
      size_t backslashes = 0;
      for (size_t i = p.size() - 1; i > 0 && p[i - 1] == '\\'; --i)
        ++backslashes;
      if (backslashes % 2 == 0) {
        cr->dir_only = true;
        p.remove_suffix(1);
      }
    }
    if (p.empty()) return bad_pattern(rule.pattern, "empty pattern");
    std::vector<std::string> globs;
    auto ex = expand(rule.pattern, std::string(p), &globs);
    if (!ex) return ex.error();
    for (const auto& g : globs) {
      auto toks = compile(rule.pattern, g);
      if (!toks) return toks.error();
      cr->alts.push_back(std::move(*toks));
    }
    f.rules_.push_back(std::move(cr));
  }
  return f;
}

expected<filter> filter::from_flags(const std::vector<std::string>& includes,
                                    const std::vector<std::string>& excludes) {
  std::vector<filter_rule> rules;
  for (const auto& p : includes)
    rules.push_back({filter_action::include, p});
  for (const auto& p : excludes)
    rules.push_back({filter_action::exclude, p});
  if (!includes.empty()) rules.push_back({filter_action::exclude, "**"});
  return parse(rules);
}

bool filter::dir_included(std::string_view path) const {
  // Walk from the top directory down: the first directory rule meeting each level decides
  // that level; an excluded level excludes everything below it.
  for (size_t end = 0; end <= path.size(); ++end) {
    if (end != path.size() && path[end] != '/') continue;
    std::string_view level = path.substr(0, end);
    if (level.empty()) continue;
    for (const auto& r : rules_) {
      if (!r->dir_only || !matches(*r, level)) continue;
      if (r->action == filter_action::exclude) return false;
      break;
    }
  }
  return true;
}

bool filter::included(std::string_view path, bool is_dir) const {
  if (rules_.empty()) return true;
  if (is_dir) return dir_included(path);
  // files below an excluded directory are excluded, whatever the file rules say
  size_t slash = path.rfind('/');
  if (slash != std::string_view::npos && !dir_included(path.substr(0, slash))) return false;
  for (const auto& r : rules_) {
    if (r->dir_only) continue;
    if (matches(*r, path)) return r->action == filter_action::include;
  }
  return true;
}

}  // namespace tidesync::transfer
