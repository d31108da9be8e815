#include "runtime/mirror/git.hpp"

#include <openssl/evp.h>
#include <stdlib.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <system_error>

#include "runtime/mirror/detail/libgit2.hpp"
#include "runtime/mirror/git_url.hpp"
#include "runtime/mirror/known_hosts.hpp"

namespace tidesync::mirror {
namespace {

namespace fs = std::filesystem;
using detail::libgit2_api;

constexpr const char* k_marker = "tidesync-source";  // in the store: which URL it holds
constexpr const char* k_home = "tidesync-home";      // in the store: libgit2's HOME

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string sha256_hex(std::string_view text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(text.data(), text.size(), digest, &len, EVP_sha256(), nullptr);
  std::string out;
  char hex[3];
  for (unsigned int i = 0; i < len; ++i) {
    std::snprintf(hex, sizeof hex, "%02x", digest[i]);
    out += hex;
  }
  return out;
}

// A libgit2 message made safe to show: the URL as redact_url shows it, no secret.
std::string clean(std::string message, const git_source& s) {
  if (!s.url.empty()) {
    const std::string shown = redact_url(s.url);
    for (size_t pos = message.find(s.url); pos != std::string::npos;
         pos = message.find(s.url, pos + shown.size()))
      message.replace(pos, s.url.size(), shown);
  }
  return scrub(std::move(message), s.secrets());
}

std::string last_error(const libgit2_api& g, const git_source& s) {
  const git_error* e = g.git_error_last();
  std::string m = e != nullptr && e->message != nullptr ? e->message : "unknown libgit2 error";
  while (!m.empty() && (m.back() == '\n' || m.back() == '.'))
    m.pop_back();
  return clean(std::move(m), s);
}

// The callbacks' shared state for one fetch.
struct session {
  const git_source* src = nullptr;
  git_url url;
  std::string known_hosts;  // the file's text, when GIT_KNOWN_HOSTS_FILE is set
  int userpass_tries = 0, key_tries = 0;
  std::string problem;  // set by a callback before it fails the fetch: the message to show
};

int credentials_cb(git_credential** out, const char* /*url*/, const char* username_from_url,
                   unsigned int allowed, void* payload) {
  auto& ss = *static_cast<session*>(payload);
  const git_source& s = *ss.src;
  const libgit2_api& g = **detail::libgit2();
  const std::string url_user = username_from_url != nullptr ? username_from_url : "";
  const bool userpass = (allowed & GIT_CREDENTIAL_USERPASS_PLAINTEXT) != 0;
  if ((allowed & GIT_CREDENTIAL_SSH_KEY) != 0 &&
      (!s.ssh_key_file.empty() || s.password.empty() || !userpass)) {
    if (s.ssh_key_file.empty()) {
      ss.problem =
          "the SSH server wants a key: set GIT_SSH_KEY_FILE to a private key file (the Secret's "
          "ssh-privatekey mounted as a file)";
      return GIT_EUSER;
    }
    if (++ss.key_tries > 1) {
      ss.problem = "the SSH server refused the key in GIT_SSH_KEY_FILE for user \"" +
                   (url_user.empty() ? std::string("git") : url_user) +
                   "\": check that its public key is authorised for the repository";
      return GIT_EUSER;
    }
    std::error_code ec;
    if (!fs::is_regular_file(s.ssh_key_file, ec)) {
      ss.problem = "GIT_SSH_KEY_FILE " + s.ssh_key_file + " is not a readable file";
      return GIT_EUSER;
    }
    return g.git_credential_ssh_key_new(
        out, url_user.empty() ? "git" : url_user.c_str(), nullptr, s.ssh_key_file.c_str(),
        s.ssh_key_passphrase.empty() ? nullptr : s.ssh_key_passphrase.c_str());
  }
  if (userpass) {
    if (s.password.empty()) {
      ss.problem =
          "the server asks for credentials: set GIT_USERNAME and GIT_PASSWORD (a token works as "
          "the password)";
      return GIT_EUSER;
    }
    if (++ss.userpass_tries > 1) {
      ss.problem =
          "the server refused GIT_USERNAME/GIT_PASSWORD: check the user name and the "
          "password or token, and that it may read the repository";
      return GIT_EUSER;
    }
    std::string user = !s.username.empty() ? s.username : url_user;
    if (user.empty()) user = "git";
    return g.git_credential_userpass_plaintext_new(out, user.c_str(), s.password.c_str());
  }
  if ((allowed & GIT_CREDENTIAL_USERNAME) != 0) {
    std::string user = !url_user.empty() ? url_user : s.username;
    if (user.empty()) user = "git";
    return g.git_credential_username_new(out, user.c_str());
  }
  ss.problem = "the server wants a kind of credentials tidesync cannot give (libgit2 types " +
               std::to_string(allowed) +
               "): use HTTPS with GIT_USERNAME/GIT_PASSWORD or SSH "
               "with GIT_SSH_KEY_FILE";
  return GIT_EUSER;
}

int certificate_cb(git_cert* cert, int valid, const char* host, void* payload) {
  auto& ss = *static_cast<session*>(payload);
  if (cert == nullptr || cert->cert_type != GIT_CERT_HOSTKEY_LIBSSH2)
    return GIT_PASSTHROUGH;  // TLS: libgit2's verification against the trusted CAs holds
  const auto* key = reinterpret_cast<const git_cert_hostkey*>(cert);
  const std::string hostname = host != nullptr ? host : ss.url.host;
  const int port = ss.url.port != 0 ? ss.url.port : 22;
  if ((key->type & GIT_CERT_SSH_RAW) == 0 || key->hostkey == nullptr) {
    if (ss.src->known_hosts_file.empty()) return 0;
    ss.problem = "libgit2 gave no host key for " + hostname + " to check against " +
                 ss.src->known_hosts_file;
    return GIT_ECERTIFICATE;
  }
  const std::string_view blob(key->hostkey, key->hostkey_len);
  const std::string described = key_type(blob) + " " + sha256_fingerprint(blob);
  if (ss.src->known_hosts_file.empty()) {
    std::fprintf(stderr,
                 "tidesync agent mirror: warning: the SSH host key of %s (%s) is not checked: "
                 "set GIT_KNOWN_HOSTS_FILE to a known_hosts file that lists it\n",
                 known_hosts_name(hostname, port).c_str(), described.c_str());
    return 0;
  }
  const auto check = check_host_key(ss.known_hosts, hostname, port, blob);
  switch (check.verdict) {
    case host_key_verdict::match:
      return 0;
    case host_key_verdict::revoked:
      ss.problem = "the SSH host key of " + known_hosts_name(hostname, port) + " (" + described +
                   ") is marked @revoked in GIT_KNOWN_HOSTS_FILE: refusing to connect";
      return GIT_ECERTIFICATE;
    case host_key_verdict::mismatch:
    case host_key_verdict::unknown_host:
      break;
  }
  // libssh2 read the same file (our HOME's .ssh/known_hosts) and may know forms we do not.
  if (valid != 0) return 0;
  if (check.verdict == host_key_verdict::mismatch) {
    std::string types;
    for (const auto& t : check.known_types)
      types += (types.empty() ? "" : ", ") + t;
    ss.problem = "the SSH host key of " + known_hosts_name(hostname, port) + " (" + described +
                 ") is not the one GIT_KNOWN_HOSTS_FILE lists for it (" + types +
                 "): refusing to connect. If the server's key changed on purpose, or it offered "
                 "another key type, update the file (ssh-keyscan " +
                 (port == 22 ? "" : "-p " + std::to_string(port) + " ") + hostname + ")";
  } else {
    ss.problem = "GIT_KNOWN_HOSTS_FILE has no line for " + known_hosts_name(hostname, port) +
                 " (the server's key: " + described +
                 "): refusing to connect. Add the host's keys (ssh-keyscan " +
                 (port == 22 ? "" : "-p " + std::to_string(port) + " ") + hostname + ")";
  }
  return GIT_ECERTIFICATE;
}

template <class T>
using git_ptr = std::unique_ptr<T, void (*)(T*)>;

expected<git_ptr<git_repository>> open_store(const libgit2_api& g, const git_source& s,
                                             bool create) {
  git_repository* repo = nullptr;
  if (g.git_repository_open_bare(&repo, s.cache.c_str()) < 0) {
    if (!create || g.git_repository_init(&repo, s.cache.c_str(), 1) < 0)
      return make_error(errc::io_error,
                        "cannot open the git store " + s.cache.string() + ": " + last_error(g, s));
  }
  return git_ptr<git_repository>(repo, g.git_repository_free);
}

// Removes the lock files and partial packs a killed fetch left (the store has one writer: us;
// a finished pack is named pack-<hash>.*).
void clear_stale_locks(const fs::path& store) {
  std::error_code ec;
  std::vector<fs::path> locks;
  for (fs::directory_iterator it(store / "objects" / "pack", ec), end; !ec && it != end;
       it.increment(ec))
    if (it->path().filename().string().rfind("pack-", 0) != 0 && it->is_regular_file(ec))
      locks.push_back(it->path());
  for (fs::recursive_directory_iterator it(store, ec), end; !ec && it != end; it.increment(ec)) {
    const auto name = it->path().filename().string();
    if (it->path().parent_path() == store / "objects") {
      it.disable_recursion_pending();  // the object directories hold no locks
      continue;
    }
    if (name.size() > 5 && name.compare(name.size() - 5, 5, ".lock") == 0 &&
        it->is_regular_file(ec))
      locks.push_back(it->path());
  }
  for (const auto& p : locks)
    fs::remove(p, ec);
}

// The store exists, holds this URL's objects (or nothing), and has no stale locks.
expected<void> prepare_store(const git_source& s) {
  std::error_code ec;
  fs::create_directories(s.cache, ec);
  if (ec)
    return make_error(errc::io_error,
                      "cannot create the git store " + s.cache.string() + ": " + ec.message());
  const std::string want = sha256_hex(redact_url(s.url)) + "\n";
  const fs::path marker = s.cache / k_marker;
  bool empty = true;
  for (fs::directory_iterator it(s.cache, ec), end; !ec && it != end; it.increment(ec))
    empty = false;
  if (!empty) {
    if (!fs::exists(marker, ec))
      return make_error(errc::config_error, "--cache " + s.cache.string() +
                                                " is not empty and is not a tidesync git "
                                                "store (no " +
                                                k_marker +
                                                " file): give an empty or missing directory");
    if (read_text(marker) != want) {
      // Another URL: its objects are of no use; start afresh (the directory may be a mount).
      for (fs::directory_iterator it(s.cache, ec), end; !ec && it != end; it.increment(ec))
        fs::remove_all(it->path(), ec);
      if (ec)
        return make_error(errc::io_error, "cannot empty the git store " + s.cache.string() +
                                              " (it held another URL): " + ec.message());
      empty = true;
    }
  }
  if (empty) {
    // The marker first: a store without one was never ours.
    std::ofstream(marker, std::ios::binary | std::ios::trunc) << want;
  }
  clear_stale_locks(s.cache);
  // libgit2 reads HOME/.ssh/known_hosts (to verify host keys and prefer the listed key type)
  // and HOME/.gitconfig: give it a HOME of its own holding GIT_KNOWN_HOSTS_FILE.
  const fs::path home = s.cache / k_home;
  fs::remove_all(home, ec);
  fs::create_directories(home / ".ssh", ec);
  if (!s.known_hosts_file.empty()) {
    fs::copy_file(s.known_hosts_file, home / ".ssh" / "known_hosts",
                  fs::copy_options::overwrite_existing, ec);
    if (ec)
      return make_error(errc::config_error, "cannot read GIT_KNOWN_HOSTS_FILE " +
                                                s.known_hosts_file + ": " + ec.message());
  }
  ::setenv("HOME", home.c_str(), 1);
  return {};
}

expected<const libgit2_api*> setup(const git_source& s) {
  auto g = detail::libgit2();
  if (!g) return g.error();
  const fs::path home = s.cache / k_home;
  (*g)->git_libgit2_opts(GIT_OPT_SET_SEARCH_PATH, GIT_CONFIG_LEVEL_GLOBAL, home.c_str());
  // The store is ours even where a volume maps its owner to another user (NFS root squash).
  (*g)->git_libgit2_opts(GIT_OPT_SET_OWNER_VALIDATION, 0);
  if (!s.ca_file.empty() &&
      (*g)->git_libgit2_opts(GIT_OPT_SET_SSL_CERT_LOCATIONS, s.ca_file.c_str(), nullptr) < 0)
    return make_error(errc::config_error,
                      "GIT_SSL_CAINFO " + s.ca_file + ": " + last_error(**g, s));
  return g;
}

std::string human_bytes(uint64_t n) {
  char buf[32];
  if (n < 1024) return std::to_string(n) + " B";
  if (n < (1ull << 20)) {
    std::snprintf(buf, sizeof buf, "%.1f KiB", static_cast<double>(n) / 1024);
  } else {
    std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(n) / (1 << 20));
  }
  return buf;
}

// The names under `prefix` the remote advertised, for a message ("main, dev, ...").
std::string advertised_names(const git_remote_head** heads, size_t n, std::string_view prefix) {
  std::vector<std::string> names;
  for (size_t i = 0; i < n; ++i) {
    std::string_view name = heads[i]->name;
    if (name.substr(0, prefix.size()) != prefix) continue;
    name.remove_prefix(prefix.size());
    if (name.size() >= 3 && name.substr(name.size() - 3) == "^{}") continue;
    names.emplace_back(name);
  }
  if (names.empty()) return "none";
  std::sort(names.begin(), names.end());
  std::string out;
  for (size_t i = 0; i < names.size() && i < 10; ++i)
    out += (i == 0 ? "" : ", ") + names[i];
  if (names.size() > 10) out += ", ... (" + std::to_string(names.size()) + " in all)";
  return out;
}

// The commit an object (a commit, or a tag of one) is, as 40 hex digits.
expected<std::string> peel_to_commit(const libgit2_api& g, const git_source& s,
                                     git_repository* repo, const git_oid& oid,
                                     const std::string& what) {
  git_object* obj = nullptr;
  if (g.git_object_lookup(&obj, repo, &oid, GIT_OBJECT_ANY) < 0)
    return make_error(errc::unavailable,
                      what + " was advertised but not fetched: " + last_error(g, s));
  git_ptr<git_object> owned(obj, g.git_object_free);
  git_object* commit = nullptr;
  if (g.git_object_peel(&commit, obj, GIT_OBJECT_COMMIT) < 0)
    return make_error(errc::invalid_argument, what + " does not point at a commit");
  git_ptr<git_object> owned_commit(commit, g.git_object_free);
  return std::string(g.git_oid_tostr_s(g.git_object_id(commit)));
}

// A commit given by (a prefix of) its id, when the store has it.
expected<std::string> lookup_commit(const libgit2_api& g, const git_source& s, git_repository* repo,
                                    const std::string& hex) {
  git_oid oid{};
  if (g.git_oid_fromstrn(&oid, hex.c_str(), hex.size()) < 0)
    return make_error(errc::invalid_argument, "\"" + hex + "\" is not a commit id");
  git_object* obj = nullptr;
  const int rc = g.git_object_lookup_prefix(&obj, repo, &oid, hex.size(), GIT_OBJECT_COMMIT);
  if (rc == GIT_EAMBIGUOUS)
    return make_error(errc::invalid_argument, "the commit prefix " + hex +
                                                  " is ambiguous: give more digits (all 40 are "
                                                  "best)");
  if (rc < 0) return make_error(errc::not_found, "no commit " + hex);
  git_ptr<git_object> owned(obj, g.git_object_free);
  return std::string(g.git_oid_tostr_s(g.git_object_id(obj)));
}

}  // namespace

void git_source::from_env(const transfer::env_lookup& env) {
  auto get = [&](const char* name) { return env(name).value_or(""); };
  username = get("GIT_USERNAME");
  password = get("GIT_PASSWORD");
  ssh_key_file = get("GIT_SSH_KEY_FILE");
  ssh_key_passphrase = get("GIT_SSH_KEY_PASSPHRASE");
  known_hosts_file = get("GIT_KNOWN_HOSTS_FILE");
  ca_file = get("GIT_SSL_CAINFO");
}

std::vector<std::string> git_source::secrets() const {
  std::vector<std::string> out{password, ssh_key_passphrase};
  if (auto u = parse_git_url(url)) {
    out.push_back(u->password);
    if (u->transport == git_transport::https || u->transport == git_transport::http)
      out.push_back(u->user);  // a token may be the user name
  }
  // Short values (a one-letter user) would blank unrelated text; none of those is a secret.
  out.erase(
      std::remove_if(out.begin(), out.end(), [](const std::string& v) { return v.size() < 3; }),
      out.end());
  return out;
}

expected<fetched_commit> fetch_commit(const git_source& given) {
  auto url = parse_git_url(given.url);
  if (!url) return url.error();
  git_source s = given;
  if (!s.known_hosts_file.empty()) {
    // The controller mounts the Secret's known_hosts when it has one ("checked when present"):
    // a path to no file means there is none.
    std::error_code ec;
    if (!fs::exists(s.known_hosts_file, ec)) {
      if (url->transport == git_transport::ssh)
        std::fprintf(stderr,
                     "tidesync agent mirror: warning: GIT_KNOWN_HOSTS_FILE %s does not exist (the "
                     "Secret has no known_hosts): SSH host keys are not checked\n",
                     s.known_hosts_file.c_str());
      s.known_hosts_file.clear();
    }
  }
  if (url->transport == git_transport::local) {
    std::error_code ec;
    if (!fs::is_directory(url->path, ec))
      return make_error(errc::not_found, "cannot fetch " + redact_url(s.url) + ": there is no " +
                                             "directory " + url->path);
  }
  if (auto r = prepare_store(s); !r) return r.error();
  auto gx = setup(s);
  if (!gx) return gx.error();
  const libgit2_api& g = **gx;
  auto repo = open_store(g, s, true);
  if (!repo) return repo.error();

  // A commit is immutable: once in the store, no fetch is needed.
  if (s.ref.kind == ref_kind::commit)
    if (auto c = lookup_commit(g, s, repo->get(), s.ref.name))
      return fetched_commit{*c, "already in the cache"};

  git_remote* remote_raw = nullptr;
  if (g.git_remote_create_anonymous(&remote_raw, repo->get(), s.url.c_str()) < 0)
    return make_error(errc::invalid_argument,
                      "--source " + redact_url(s.url) + ": " + last_error(g, s));
  git_ptr<git_remote> remote(remote_raw, g.git_remote_free);

  session ss;
  ss.src = &s;
  ss.url = *url;
  if (!s.known_hosts_file.empty()) ss.known_hosts = read_text(s.known_hosts_file);

  git_fetch_options fo;
  g.git_fetch_options_init(&fo, GIT_FETCH_OPTIONS_VERSION);
  fo.callbacks.credentials = credentials_cb;
  fo.callbacks.certificate_check = certificate_cb;
  fo.callbacks.payload = &ss;
  fo.prune = GIT_FETCH_PRUNE;
  fo.update_fetchhead = 0;
  fo.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE;
  const std::vector<std::string> specs = fetch_refspecs(s.ref);
  std::vector<char*> spec_ptrs;
  spec_ptrs.reserve(specs.size());
  for (const auto& spec : specs)
    spec_ptrs.push_back(const_cast<char*>(spec.c_str()));
  git_strarray refspecs{spec_ptrs.data(), spec_ptrs.size()};
  if (g.git_remote_fetch(remote.get(), &refspecs, &fo, "tidesync agent mirror") < 0) {
    const std::string why = !ss.problem.empty() ? clean(ss.problem, s) : last_error(g, s);
    return make_error(errc::unavailable, "cannot fetch " + redact_url(s.url) + ": " + why);
  }
  std::string detail = "up to date";
  if (const git_indexer_progress* st = g.git_remote_stats(remote.get());
      st != nullptr && st->received_objects > 0)
    detail = "fetched " + std::to_string(st->received_objects) + " object(s)" +
             (st->received_bytes > 0 ? ", " + human_bytes(st->received_bytes) : "");

  const git_remote_head** heads = nullptr;
  size_t n = 0;
  if (g.git_remote_ls(&heads, &n, remote.get()) < 0)
    return make_error(errc::unavailable,
                      "cannot list the refs of " + redact_url(s.url) + ": " + last_error(g, s));
  const std::string shown = redact_url(s.url);
  if (s.ref.kind == ref_kind::commit) {
    auto c = lookup_commit(g, s, repo->get(), s.ref.name);
    if (!c && c.error().code == errc::not_found)
      return make_error(errc::not_found, "commit " + s.ref.name + " is not in " + shown +
                                             ": no branch or tag there contains it (branches: " +
                                             advertised_names(heads, n, "refs/heads/") + ")");
    if (!c) return c.error();
    return fetched_commit{*c, detail};
  }
  const std::string want = advertised_ref(s.ref);
  const git_remote_head* found = nullptr;
  for (size_t i = 0; i < n; ++i)
    if (want == heads[i]->name) found = heads[i];
  if (found == nullptr) {
    switch (s.ref.kind) {
      case ref_kind::branch:
        return make_error(errc::not_found, "branch " + s.ref.name + " does not exist in " + shown +
                                               " (branches there: " +
                                               advertised_names(heads, n, "refs/heads/") + ")");
      case ref_kind::tag:
        return make_error(errc::not_found,
                          "tag " + s.ref.name + " does not exist in " + shown +
                              " (tags there: " + advertised_names(heads, n, "refs/tags/") + ")");
      default:
        return make_error(errc::not_found,
                          shown + " has no HEAD: an empty repository? Give --ref-branch");
    }
  }
  auto c = peel_to_commit(g, s, repo->get(), found->oid, describe(s.ref) + " of " + shown);
  if (!c) return c.error();
  return fetched_commit{*c, detail};
}

expected<void> checkout_commit(const git_source& s, std::string_view commit,
                               const fs::path& target) {
  auto gx = setup(s);
  if (!gx) return gx.error();
  const libgit2_api& g = **gx;
  auto repo = open_store(g, s, false);
  if (!repo) return repo.error();
  git_oid oid{};
  if (!is_commit_id(commit) || g.git_oid_fromstrn(&oid, commit.data(), commit.size()) < 0)
    return make_error(errc::invalid_argument,
                      "\"" + std::string(commit) + "\" is not a full commit id");
  git_object* obj = nullptr;
  if (g.git_object_lookup(&obj, repo->get(), &oid, GIT_OBJECT_COMMIT) < 0)
    return make_error(errc::not_found, "commit " + std::string(commit) + " is not in the store " +
                                           s.cache.string() + ": " + last_error(g, s));
  git_ptr<git_object> owned(obj, g.git_object_free);
  std::error_code ec;
  const fs::path dir = fs::absolute(target, ec);
  fs::create_directories(dir, ec);
  if (ec) return make_error(errc::io_error, "cannot create " + dir.string() + ": " + ec.message());
  git_checkout_options co;
  g.git_checkout_options_init(&co, GIT_CHECKOUT_OPTIONS_VERSION);
  // The target starts empty; the store's index is neither read for it nor written.
  co.checkout_strategy = GIT_CHECKOUT_FORCE | GIT_CHECKOUT_DONT_UPDATE_INDEX;
  const std::string dir_text = dir.string();
  co.target_directory = dir_text.c_str();
  if (g.git_checkout_tree(repo->get(), obj, &co) < 0)
    return make_error(errc::io_error, "cannot check commit " + std::string(commit) + " out into " +
                                          dir.string() + ": " + last_error(g, s));
  return {};
}

}  // namespace tidesync::mirror
