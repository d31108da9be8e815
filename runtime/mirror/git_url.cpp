#include "runtime/mirror/git_url.hpp"

#include <algorithm>
#include <cstdlib>
#include <optional>

namespace tidesync::mirror {
namespace {

error bad_url(std::string_view text, const std::string& why) {
  return make_error(errc::invalid_argument,
                    "--source \"" + redact_url(text) + "\" is not a git URL (" + why +
                        "): want https://host/org/repo.git, ssh://git@host/org/repo.git, "
                        "git@host:org/repo.git, git://host/repo, file:///path or a local path");
}

// "%41" -> "A"; other text unchanged.
std::string percent_decode(std::string_view s) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      const int hi = hex(s[i + 1]), lo = hex(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

// host[:port] or [v6]:port into the URL's fields.
std::optional<std::string> parse_authority(std::string_view auth, git_url& u) {
  if (const auto at = auth.rfind('@'); at != std::string_view::npos) {
    const std::string_view info = auth.substr(0, at);
    auth = auth.substr(at + 1);
    const auto colon = info.find(':');
    u.user = percent_decode(info.substr(0, colon));
    if (colon != std::string_view::npos) u.password = percent_decode(info.substr(colon + 1));
  }
  std::string_view host = auth, port;
  if (!auth.empty() && auth.front() == '[') {
    const auto close = auth.find(']');
    if (close == std::string_view::npos) return std::string("an unclosed '[' in the host");
    host = auth.substr(1, close - 1);
    std::string_view rest = auth.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return std::string("text after the ']' of the host");
      port = rest.substr(1);
    }
  } else if (const auto colon = auth.rfind(':'); colon != std::string_view::npos) {
    host = auth.substr(0, colon);
    port = auth.substr(colon + 1);
  }
  if (host.empty()) return std::string("no host");
  u.host = std::string(host);
  if (!port.empty()) {
    if (!std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
        port.size() > 5)
      return std::string("the port is not a number");
    const int p = std::atoi(std::string(port).c_str());
    if (p < 1 || p > 65535) return std::string("the port is out of range");
    u.port = p;
  }
  return std::nullopt;
}

}  // namespace

expected<git_url> parse_git_url(std::string_view text) {
  git_url u;
  if (text.empty()) return bad_url(text, "it is empty");
  if (text.find_first_of(" \t\r\n") != std::string_view::npos)
    return bad_url(text, "it contains white space");
  const auto scheme_end = text.find("://");
  if (scheme_end != std::string_view::npos) {
    const std::string_view scheme = text.substr(0, scheme_end);
    std::string_view rest = text.substr(scheme_end + 3);
    if (scheme == "file") {
      u.transport = git_transport::local;
      if (rest.empty() || rest.front() != '/')
        return bad_url(text, "file:// wants an absolute path, file:///path");
      u.path = percent_decode(rest);
      return u;
    }
    if (scheme == "https") {
      u.transport = git_transport::https;
    } else if (scheme == "http") {
      u.transport = git_transport::http;
    } else if (scheme == "ssh" || scheme == "git+ssh" || scheme == "ssh+git") {
      u.transport = git_transport::ssh;
    } else if (scheme == "git") {
      u.transport = git_transport::git;
    } else {
      return bad_url(text, "the scheme \"" + std::string(scheme) + "\" is not supported");
    }
    const auto slash = rest.find('/');
    const std::string_view auth = rest.substr(0, slash);
    if (auto problem = parse_authority(auth, u)) return bad_url(text, *problem);
    if (slash == std::string_view::npos || slash + 1 >= rest.size())
      return bad_url(text, "no repository path");
    std::string_view path = rest.substr(slash);
    path = path.substr(0, path.find_first_of("?#"));
    u.path = std::string(path);
    if (u.transport == git_transport::ssh || u.transport == git_transport::git) {
      if (!u.password.empty()) return bad_url(text, "a password in an ssh URL");
    }
    return u;
  }
  if (text.front() == '/' || text.front() == '.') {
    u.transport = git_transport::local;
    u.path = std::string(text);
    return u;
  }
  // scp-like: [user@]host:path, the ':' before any '/'.
  const auto colon = text.find(':');
  const auto slash = text.find('/');
  if (colon == std::string_view::npos || (slash != std::string_view::npos && slash < colon))
    return bad_url(text, "no scheme, and not host:path");
  std::string_view auth = text.substr(0, colon);
  const std::string_view path = text.substr(colon + 1);
  if (const auto at = auth.rfind('@'); at != std::string_view::npos) {
    u.user = std::string(auth.substr(0, at));
    auth = auth.substr(at + 1);
    if (u.user.find(':') != std::string::npos)
      return bad_url(text, "a password in an scp-like address");
  }
  if (auth.empty()) return bad_url(text, "no host before the ':'");
  if (path.empty()) return bad_url(text, "no repository path after the ':'");
  u.transport = git_transport::ssh;
  u.scp_like = true;
  u.host = std::string(auth);
  u.path = std::string(path);
  return u;
}

std::string redact_url(std::string_view text) {
  const auto scheme_end = text.find("://");
  if (scheme_end == std::string_view::npos) {
    // scp-like addresses carry a user name only; anything else is a path.
    return std::string(text);
  }
  const std::string_view scheme = text.substr(0, scheme_end);
  const bool ssh = scheme == "ssh" || scheme == "git+ssh" || scheme == "ssh+git";
  std::string_view rest = text.substr(scheme_end + 3);
  const auto slash = rest.find('/');
  std::string_view auth = rest.substr(0, slash);
  std::string_view tail = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash);
  // A query may carry a token (signed URLs); a file path keeps its characters.
  if (scheme != "file") tail = tail.substr(0, tail.find_first_of("?#"));
  std::string out(scheme);
  out += "://";
  if (const auto at = auth.rfind('@'); at != std::string_view::npos) {
    const std::string_view info = auth.substr(0, at);
    auth = auth.substr(at + 1);
    if (ssh) out += std::string(info.substr(0, info.find(':'))) + "@";
  }
  out += auth;
  out += tail;
  return out;
}

std::string scrub(std::string text, std::vector<std::string> secrets) {
  std::sort(secrets.begin(), secrets.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  for (const auto& s : secrets) {
    if (s.empty()) continue;
    for (size_t pos = text.find(s); pos != std::string::npos; pos = text.find(s, pos + 3))
      text.replace(pos, s.size(), "***");
  }
  return text;
}

}  // namespace tidesync::mirror
