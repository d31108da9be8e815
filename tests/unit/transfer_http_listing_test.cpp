// The HTML directory-listing parser (http_listing.hpp) on hand-written samples of what nginx
// autoindex, Apache mod_autoindex and Python's http.server generate.
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "runtime/transfer/http_listing.hpp"
#include "runtime/transfer/s3_client.hpp"

namespace {

using tidesync::transfer::decode_html_entities;

using tidesync::transfer::listing_link;
using tidesync::transfer::parse_listing;

// "name" for files, "name/" for directories, in order.
std::vector<std::string> names(const std::vector<listing_link>& links) {
  std::vector<std::string> out;
  for (const auto& l : links)
    out.push_back(l.name + (l.dir ? "/" : ""));
  return out;
}

// nginx 1.24 `autoindex on;` for /pub/ (names are escaped; long names are cut in the text, not
// in the href).
const char* k_nginx = R"html(<html>
<head><title>Index of /pub/</title></head>
<body>
<h1>Index of /pub/</h1><hr><pre><a href="../">../</a>
<a href="docs/">docs/</a>                                              12-Mar-2024 09:14       -
<a href="my%20folder/">my folder/</a>                                         12-Mar-2024 09:14       -
<a href="caf%C3%A9%20cr%C3%A8me.txt">caf&#233; cr&#232;me.txt</a>                                  12-Mar-2024 09:13      12
<a href="a%26b.txt">a&amp;b.txt</a>                                          12-Mar-2024 09:13       0
<a href="very-long-file-name-that-nginx-truncates-in-the-text-column.tar.gz">very-long-file-name-that-nginx-truncates-in-the-..&gt;</a> 12-Mar-2024 09:13   10485760
</pre><hr></body>
</html>
)html";

// Apache 2.4 mod_autoindex with FancyIndexing and HTMLTable for /mirror/sub/: sort links,
// an absolute parent link, icons linking to the same files twice.
const char* k_apache = R"html(<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 3.2 Final//EN">
<html>
 <head>
  <title>Index of /mirror/sub</title>
 </head>
 <body>
<h1>Index of /mirror/sub</h1>
  <table>
   <tr><th valign="top"><img src="/icons/blank.gif" alt="[ICO]"></th><th><a href="?C=N;O=D">Name</a></th><th><a href="?C=M;O=A">Last modified</a></th><th><a href="?C=S;O=A">Size</a></th><th><a href="?C=D;O=A">Description</a></th></tr>
   <tr><th colspan="5"><hr></th></tr>
<tr><td valign="top"><a href="/mirror/"><img src="/icons/back.gif" alt="[PARENTDIR]"></a></td><td><a href="/mirror/">Parent Directory</a></td><td>&nbsp;</td><td align="right">  - </td><td>&nbsp;</td></tr>
<tr><td valign="top"><a href="release-1.0/"><img src="/icons/folder.gif" alt="[DIR]"></a></td><td><a href="release-1.0/">release-1.0/</a></td><td align="right">2024-03-12 09:14  </td><td align="right">  - </td><td>&nbsp;</td></tr>
<tr><td valign="top"><a href="README.txt"><img src="/icons/text.gif" alt="[TXT]"></a></td><td><a href="README.txt">README.txt</a></td><td align="right">2024-03-12 09:13  </td><td align="right">1.2K</td><td>&nbsp;</td></tr>
<tr><td valign="top"><a href="Tom&amp;Jerry%20%231.mkv"><img src="/icons/movie.gif" alt="[VID]"></a></td><td><a href="Tom&amp;Jerry%20%231.mkv">Tom&amp;Jerry #1.mkv</a></td><td align="right">2024-03-12 09:13  </td><td align="right">700M</td><td>&nbsp;</td></tr>
   <tr><th colspan="5"><hr></th></tr>
</table>
<address>Apache/2.4.58 (Debian) Server at example.org Port 80</address>
</body></html>
)html";

// Python 3.11 `python3 -m http.server` for /: hrefs are urllib.parse.quote()d, names
// html.escape()d; a symlink shows as "name@" in the text.
const char* k_python = R"html(<!DOCTYPE HTML>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Directory listing for /</title>
</head>
<body>
<h1>Directory listing for /</h1>
<hr>
<ul>
<li><a href="dir%20with%20spaces/">dir with spaces/</a></li>
<li><a href="empty">empty</a></li>
<li><a href="na%C3%AFve%20r%C3%A9sum%C3%A9%20%C3%BC.txt">naïve résumé ü.txt</a></li>
<li><a href="%E6%97%A5%E6%9C%AC/">日本/</a></li>
<li><a href="it%27s%20%3Cok%3E.txt">it&#x27;s &lt;ok&gt;.txt</a></li>
<li><a href="link">link@</a></li>
</ul>
<hr>
</body>
</html>
)html";

TEST(http_listing, nginx_autoindex) {
  auto links = parse_listing(k_nginx, "https://files.example.com/pub/");
  EXPECT_EQ(names(links),
            (std::vector<std::string>{"docs/", "my folder/", "café crème.txt", "a&b.txt",
                                      "very-long-file-name-that-nginx-truncates-in-the-text-"
                                      "column.tar.gz"}));
}

TEST(http_listing, apache_fancy_index_skips_sort_and_parent_links_and_dedupes) {
  auto links = parse_listing(k_apache, "http://example.org/mirror/sub/");
  EXPECT_EQ(names(links),
            (std::vector<std::string>{"release-1.0/", "README.txt", "Tom&Jerry #1.mkv"}));
  EXPECT_TRUE(links[0].dir);
  EXPECT_FALSE(links[1].dir);
}

TEST(http_listing, python_http_server) {
  auto links = parse_listing(k_python, "http://127.0.0.1:8000/");
  EXPECT_EQ(names(links),
            (std::vector<std::string>{"dir with spaces/", "empty", "naïve résumé ü.txt", "日本/",
                                      "it's <ok>.txt", "link"}));
}

TEST(http_listing, absolute_links_count_only_when_below_the_directory_on_the_same_host) {
  const char* html = R"html(
    <a href="http://example.org/d/same-host.txt">1</a>
    <A HREF='HTTP://Example.ORG:80/d/case-and-port.txt'>2</A>
    <a href="//example.org/d/scheme-relative/">3</a>
    <a href="/d/root-relative.txt">4</a>
    <a href="http://other.example/d/other-host.txt">x</a>
    <a href="https://example.org/d/other-scheme.txt">x</a>
    <a href="/elsewhere/file.txt">x</a>
    <a href="/d/">x (self)</a>
    <a href="./">x (self)</a>
    <a href="">x (self)</a>
    <a href="#top">x (fragment)</a>
    <a href="sub/deeper.txt">x (not a direct child)</a>
    <a href="../d/back-in.txt">5</a>
    <a href="../">x (parent)</a>
    <a href="mailto:someone@example.org">x</a>
    <a href="javascript:void(0)">x</a>
    <a href="with-fragment.txt#part2">6</a>
    <a href="file.txt?download=1">x (query)</a>
    <a name="anchor-without-href">x</a>
    <!-- <a href="commented-out.txt">x</a> -->
    <abbr href="not-a-link.txt">x</abbr>
    <a class="x" href = unquoted.txt >7</a>
  )html";
  auto links = parse_listing(html, "http://example.org/d/");
  EXPECT_EQ(names(links),
            (std::vector<std::string>{"same-host.txt", "case-and-port.txt", "scheme-relative/",
                                      "root-relative.txt", "back-in.txt", "with-fragment.txt",
                                      "unquoted.txt"}));
}

TEST(http_listing, encoded_slash_in_a_name_is_not_a_child) {
  // %2F decodes to '/': such a name cannot be a file here, so it is skipped, not split.
  auto links = parse_listing(R"html(<a href="a%2Fb.txt">a/b</a><a href="ok.txt">ok</a>)html",
                             "http://h/dir/");
  EXPECT_EQ(names(links), (std::vector<std::string>{"ok.txt"}));
}

TEST(http_listing, directory_url_with_encoded_characters) {
  auto links = parse_listing(R"html(<a href="/my%20dir/x.txt">x</a><a href="y%20z/">y</a>)html",
                             "http://h/my%20dir/");
  EXPECT_EQ(names(links), (std::vector<std::string>{"x.txt", "y z/"}));
}

TEST(http_listing, empty_and_garbage_documents) {
  EXPECT_TRUE(parse_listing("", "http://h/").empty());
  EXPECT_TRUE(parse_listing("<html><body>No files</body></html>", "http://h/").empty());
  EXPECT_TRUE(parse_listing("<a href=\"unterminated", "http://h/").empty());
  EXPECT_TRUE(parse_listing("<a", "http://h/").empty());
  EXPECT_TRUE(parse_listing("<a href=\"x\">", "not a url").empty());
}

TEST(http_listing, html_entities) {
  EXPECT_EQ(decode_html_entities("a&amp;b&lt;c&gt;d&quot;e&#39;f&#x27;g&apos;"), "a&b<c>d\"e'f'g'");
  EXPECT_EQ(decode_html_entities("caf&#233; &#x65E5;"), "café 日");
  EXPECT_EQ(decode_html_entities("AT&T &unknown; &#xZZ; trailing &"),
            "AT&T &unknown; &#xZZ; trailing &");
}

// The HTTP backend builds file URLs with the S3 client's encoder.
TEST(http_listing, uri_encode_keeps_slashes_and_unreserved) {
  auto encode_url_path = [](std::string_view p) { return tidesync::transfer::uri_encode(p, true); };
  EXPECT_EQ(encode_url_path("dir with spaces/naïve #1?.txt"),
            "dir%20with%20spaces/na%C3%AFve%20%231%3F.txt");
  EXPECT_EQ(encode_url_path("a-b_c.d~e/F9"), "a-b_c.d~e/F9");
  EXPECT_EQ(encode_url_path("100%&+"), "100%25%26%2B");
}

}  // namespace
