#include "runtime/transfer/safety.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <vector>

namespace tidesync::transfer {

std::string_view override_flag(direction dir) {
  return dir == direction::to_local ? "--force-delete-local-dir" : "--force-delete-remote-dir";
}

std::string normalize_local_path(std::string_view path) {
  std::string full;
  if (path.empty() || path.front() != '/') {
    std::array<char, 4096> buf{};
    if (::getcwd(buf.data(), buf.size()) != nullptr) full = buf.data();
    full += '/';
  }
  full += path;
  std::vector<std::string_view> parts;
  std::string_view rest = full;
  while (!rest.empty()) {
    size_t slash = rest.find('/');
    std::string_view el = rest.substr(0, slash);
    rest = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash + 1);
    if (el.empty() || el == ".") continue;
    if (el == "..") {
      if (!parts.empty()) parts.pop_back();  // "/.." is "/"
      continue;
    }
    parts.push_back(el);
  }
  std::string out;
  for (auto el : parts) {
    out += '/';
    out += el;
  }
  return out.empty() ? "/" : out;
}

expected<void> check_sync_root(std::string_view local_path) {
  // Exact matches only: subdirectories ("/home/me/data", "/var/www") are fine.
  static constexpr std::array<std::string_view, 26> system_dirs = {
      "/",          "/bin",       "/sbin",      "/usr",        "/usr/bin",     "/usr/sbin",
      "/usr/lib",   "/usr/lib32", "/usr/lib64", "/usr/libx32", "/usr/libexec", "/usr/local",
      "/usr/share", "/lib",       "/lib32",     "/lib64",      "/libx32",      "/etc",
      "/home",      "/root",      "/boot",      "/dev",        "/proc",        "/sys",
      "/var",       "/run"};
  const std::string p = normalize_local_path(local_path);
  bool refused = false;
  for (auto d : system_dirs)
    refused = refused || p == d;
  if (!refused) return {};
  return make_error(errc::invalid_argument,
                    "refusing to use \"" + p + "\" (from \"" + std::string(local_path) +
                        "\") as a sync root: syncing it could erase the operating system; pick "
                        "a data directory, or pass " +
                        std::string(override_flag(direction::to_local)) + " if you really mean it");
}

expected<void> check_not_emptying(size_t src_count, size_t dst_count, direction dir) {
  if (src_count > 0 || dst_count == 0) return {};
  const bool to_local = dir == direction::to_local;
  return make_error(
      errc::invalid_argument,
      std::string(to_local ? "the remote directory is empty" : "the local directory is empty") +
          ": syncing would delete all " + std::to_string(dst_count) + " file(s) in the " +
          (to_local ? "local directory" : "remote directory") +
          "; check the source path, or pass " + std::string(override_flag(dir)) + " to allow it");
}

expected<void> check_owner(std::string_view local_path, uid_t uid) {
  const std::string p(local_path);
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0) {
    if (errno == ENOENT) return {};
    return make_error(errc::io_error, "cannot stat \"" + p + "\": " + std::strerror(errno));
  }
  if (!S_ISDIR(st.st_mode)) {
    return make_error(errc::invalid_argument, "the local target \"" + p + "\" is not a directory");
  }
  const std::string flag(override_flag(direction::to_local));
  if (st.st_uid == 0) {
    return make_error(errc::forbidden, "the local target \"" + p +
                                           "\" is owned by root; refusing to sync into it. "
                                           "Use a directory owned by the user the sync runs "
                                           "as, or pass " +
                                           flag);
  }
  if (st.st_uid != uid) {
    return make_error(errc::forbidden, "the local target \"" + p + "\" is owned by uid " +
                                           std::to_string(st.st_uid) + ", not by uid " +
                                           std::to_string(uid) +
                                           " the sync runs as; refusing to sync into it. Fix "
                                           "the ownership, or pass " +
                                           flag);
  }
  return {};
}

}  // namespace tidesync::transfer
