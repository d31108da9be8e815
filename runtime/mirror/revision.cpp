#include "runtime/mirror/revision.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

namespace tidesync::mirror {
namespace {

bool is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// What `git check-ref-format` refuses, for one branch or tag name (without refs/heads/).
std::string ref_name_problem(std::string_view name) {
  if (name.empty()) return "is empty";
  if (name.size() > 255) return "is longer than 255 characters";
  if (name.front() == '-') return "starts with '-'";
  if (name.front() == '/' || name.back() == '/') return "starts or ends with '/'";
  if (name.back() == '.') return "ends with '.'";
  if (name.size() >= 5 && name.substr(name.size() - 5) == ".lock") return "ends with \".lock\"";
  if (name == "@") return "is \"@\"";
  if (name.find("..") != std::string_view::npos) return "contains \"..\"";
  if (name.find("@{") != std::string_view::npos) return "contains \"@{\"";
  if (name.find("//") != std::string_view::npos) return "contains \"//\"";
  for (char c : name) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f || c == ' ' || c == '~' || c == '^' || c == ':' || c == '?' ||
        c == '*' || c == '[' || c == '\\')
      return "contains a space, a control character or one of ~ ^ : ? * [ \\";
  }
  size_t start = 0;
  while (start <= name.size()) {
    const size_t end = std::min(name.find('/', start), name.size());
    const std::string_view part = name.substr(start, end - start);
    if (!part.empty() && part.front() == '.') return "has a component starting with '.'";
    if (part.size() >= 5 && part.substr(part.size() - 5) == ".lock")
      return "has a component ending with \".lock\"";
    start = end + 1;
  }
  return {};
}

}  // namespace

std::string_view to_string(source_type t) {
  switch (t) {
    case source_type::git:
      return "git";
    case source_type::s3:
      return "s3";
    case source_type::sftp:
      return "sftp";
    case source_type::http:
      return "http";
  }
  return "git";
}

expected<source_type> parse_source_type(std::string_view text) {
  for (auto t : {source_type::git, source_type::s3, source_type::sftp, source_type::http})
    if (text == to_string(t)) return t;
  return make_error(errc::invalid_argument,
                    "--source-type wants git, s3, sftp or http, not \"" + std::string(text) + "\"");
}

expected<git_ref> make_ref(ref_kind kind, std::string_view name) {
  git_ref out;
  out.kind = kind;
  switch (kind) {
    case ref_kind::head:
      return out;
    case ref_kind::branch:
    case ref_kind::tag: {
      const char* what = kind == ref_kind::branch ? "branch" : "tag";
      if (auto problem = ref_name_problem(name); !problem.empty())
        return make_error(errc::invalid_argument, std::string("the ") + what + " name \"" +
                                                      std::string(name) + "\" " + problem +
                                                      ": git refuses such a name");
      out.name = std::string(name);
      return out;
    }
    case ref_kind::commit: {
      if (name.size() < 4 || name.size() > 40 || !std::all_of(name.begin(), name.end(), is_hex))
        return make_error(errc::invalid_argument,
                          "the commit \"" + std::string(name) +
                              "\" is not a commit id: want 4 to 40 hex digits (the full 40 is "
                              "unambiguous)");
      out.name = std::string(name);
      std::transform(out.name.begin(), out.name.end(), out.name.begin(),
                     [](char c) { return static_cast<char>(c >= 'A' && c <= 'F' ? c + 32 : c); });
      return out;
    }
  }
  return out;
}

std::string describe(const git_ref& ref) {
  switch (ref.kind) {
    case ref_kind::head:
      return "the remote's HEAD";
    case ref_kind::branch:
      return "branch " + ref.name;
    case ref_kind::tag:
      return "tag " + ref.name;
    case ref_kind::commit:
      return "commit " + ref.name;
  }
  return {};
}

std::vector<std::string> fetch_refspecs(const git_ref& ref) {
  switch (ref.kind) {
    case ref_kind::head:
      return {"+refs/heads/*:refs/remotes/origin/*"};
    case ref_kind::branch:
      return {"+refs/heads/" + ref.name + ":refs/remotes/origin/" + ref.name};
    case ref_kind::tag:
      return {"+refs/tags/" + ref.name + ":refs/tags/" + ref.name};
    case ref_kind::commit:
      return {"+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*"};
  }
  return {};
}

std::string advertised_ref(const git_ref& ref) {
  switch (ref.kind) {
    case ref_kind::head:
      return "HEAD";
    case ref_kind::branch:
      return "refs/heads/" + ref.name;
    case ref_kind::tag:
      return "refs/tags/" + ref.name;
    case ref_kind::commit:
      return {};
  }
  return {};
}

std::string local_ref(const git_ref& ref) {
  switch (ref.kind) {
    case ref_kind::branch:
      return "refs/remotes/origin/" + ref.name;
    case ref_kind::tag:
      return "refs/tags/" + ref.name;
    case ref_kind::head:
    case ref_kind::commit:
      return {};
  }
  return {};
}

bool is_commit_id(std::string_view text) {
  return text.size() == 40 && std::all_of(text.begin(), text.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

std::string listing_revision(source_type type, std::string_view source,
                             std::vector<transfer::entry> entries) {
  std::sort(entries.begin(), entries.end(),
            [](const transfer::entry& a, const transfer::entry& b) { return a.path < b.path; });
  std::string text;
  text.reserve(64 + entries.size() * 64);
  text.append(to_string(type)).append("\n").append(source).append("\n");
  for (const auto& e : entries) {
    // Paths hold no NUL: a NUL separates the fields of one entry, a newline ends it.
    text.append(e.path).push_back('\0');
    if (e.dir) {
      text.append("dir\n");
      continue;
    }
    text.append(std::to_string(e.size)).push_back('\0');
    if (e.md5 && !e.md5->empty()) {
      text.append("md5:").append(*e.md5);
    } else {
      const auto secs =
          std::chrono::floor<std::chrono::seconds>(e.mtime.time_since_epoch()).count();
      text.append("t:").append(std::to_string(secs));
    }
    text.push_back('\n');
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(text.data(), text.size(), digest, &len, EVP_sha256(), nullptr);
  std::string out = "sha256-";
  char hex[3];
  for (unsigned int i = 0; i < 8 && i < len; ++i) {
    std::snprintf(hex, sizeof hex, "%02x", digest[i]);
    out += hex;
  }
  return out;
}

}  // namespace tidesync::mirror
