// The seed's safety valves: checks run before a sync may delete anything. Each refusal says
// what is wrong and names the override.
//
// Overrides: the seed's `--force-delete-local-dir` (remote-to-local-sync: remote empty,
// dangerous roots, local ownership) and, for sync-to-remote, `--force-delete-remote-dir`
// (our name: the seed gives that direction's rule no switch). The CRD's
// spec.cleanUp.forceLocal / forceRemote map to the same two overrides.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <string>
#include <string_view>

#include "runtime/error.hpp"

namespace tidesync::transfer {

// Which side receives the deletes.
enum class direction {
  to_remote,  // sync-to-remote: local is the source, the remote may be emptied
  to_local,   // remote-to-local-sync: the remote is the source, local files may be deleted
};

// The override flag that lifts the valves guarding `dir`'s destination.
std::string_view override_flag(direction dir);

// Lexically normalises an absolute or relative local path: collapses "//", "." and "..",
// drops a trailing '/'. Relative paths are made absolute against the working directory.
std::string normalize_local_path(std::string_view path);

// Refuses an operating-system directory as the local sync root: "/", "/bin", "/sbin",
// "/usr", "/usr/bin", "/usr/sbin", "/usr/lib{,32,64,x32,exec}", "/usr/local", "/usr/share",
// "/lib{,32,64,x32}", "/etc", "/home", "/root", "/boot", "/dev", "/proc", "/sys", "/var",
// "/run" — after normalising ("/usr/bin/", "/usr/../home", "//etc/." count). Their
// subdirectories are fine ("/home/me/data", "/var/www").
expected<void> check_sync_root(std::string_view local_path);

// An empty source never empties a non-empty destination.
expected<void> check_not_emptying(size_t src_count, size_t dst_count, direction dir);

// A local target must be owned by `uid` (the uid the process runs as, normally geteuid())
// and not by root, even when the process is root (the seed's two rules). A target that does
// not exist yet passes: there is nothing in it to delete. A target that is not a directory
// is refused.
expected<void> check_owner(std::string_view local_path, uid_t uid);

}  // namespace tidesync::transfer
