// Parses the HTML directory listings web servers generate (nginx autoindex, Apache
// mod_autoindex, Python's http.server, and anything else that lists entries as
// `<a href="...">` links), as rclone's http backend does. Pure: no I/O.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace tidesync::transfer {

struct listing_link {
  std::string name;  // decoded, one path element (no '/')
  bool dir = false;  // the link ended in '/'
};

// The entries of the directory at `dir_url` (absolute, ending in '/') linked from `html`, in
// document order, without duplicates. Kept: links that resolve to a direct child of the
// directory (relative, root-relative or absolute to the same scheme and host). Dropped:
// parent and self links, other hosts, query links (Apache's "?C=N;O=D" sort links),
// fragment-only links, and deeper paths.
std::vector<listing_link> parse_listing(std::string_view html, std::string_view dir_url);

// "&amp;" → "&", numeric and the common named entities; unknown ones are kept as written.
std::string decode_html_entities(std::string_view text);

}  // namespace tidesync::transfer
