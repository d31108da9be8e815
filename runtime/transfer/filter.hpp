// rclone-compatible include/exclude filters for the native transfer engine.
//
// Patterns follow rclone's glob syntax (docs/transfer-sync.md has the full table):
//   *      any run of characters except '/'      **     any run of characters, '/' too
//   ?      one character (one UTF-8 code point) except '/'
//   [a-z] [!a-z] [^a-z]   a character class (code points; '\' escapes inside)
//   {a,b}  alternatives (may nest; each may hold globs)
//   \c     the character c literally
// A leading '/' anchors the pattern at the root of the transfer; otherwise it matches a
// whole trailing run of path elements ("file.jpg" matches "dir/file.jpg" but not
// "dir/afile.jpg"). A trailing '/' makes a directory rule. Matching is case-sensitive.
// Not supported (refused with an error naming the pattern): {{regexp}}, \d-style and
// [[:alpha:]] classes.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/error.hpp"

namespace tidesync::transfer {

enum class filter_action { include, exclude };

struct filter_rule {
  filter_action action = filter_action::exclude;
  std::string pattern;
};

namespace detail {
struct compiled_rule;
}

class filter {
 public:
  filter();
  ~filter();
  filter(filter&&) noexcept;
  filter& operator=(filter&&) noexcept;
  filter(const filter&) = delete;
  filter& operator=(const filter&) = delete;

  // Rules are tried in the order given; the first that matches decides (like rclone's
  // --filter). A path no rule matches is included. An empty list includes everything.
  static expected<filter> parse(const std::vector<filter_rule>& rules);

  // rclone's flag order: every --include first, then every --exclude, and when any
  // --include is given an implied final "exclude **" (so only included files pass).
  static expected<filter> from_flags(const std::vector<std::string>& includes,
                                     const std::vector<std::string>& excludes);

  // Whether a path ('/'-separated, relative to the transfer root, no leading '/') takes
  // part in the transfer.
  //  - A file is matched against file rules (no trailing '/'); an exclude directory rule
  //    ("dir/") also excludes every file below a matching directory, as rclone does since
  //    1.54 ("--exclude dir/" equals "--exclude dir/**"). Include directory rules never
  //    match files: they only steer directory traversal.
  //  - A directory is matched against directory rules, and is excluded when it or an
  //    ancestor meets an exclude directory rule first. Otherwise it is included (files
  //    inside are decided one by one, so "- dir/**" leaves an empty "dir" standing).
  [[nodiscard]] bool included(std::string_view path, bool is_dir) const;

  // No rules at all: everything is included (lets callers skip the per-path work).
  [[nodiscard]] bool empty() const { return rules_.empty(); }

 private:
  [[nodiscard]] bool dir_included(std::string_view path) const;
  std::vector<std::unique_ptr<detail::compiled_rule>> rules_;
};

}  // namespace tidesync::transfer
