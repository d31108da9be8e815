// `tidesync config publish|get`: the client side of the config API (docs/sharedconfig.md).
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>

#include "runtime/archive/bundle.hpp"
#include "runtime/archive/revision.hpp"
#include "runtime/cli/commands.hpp"
#include "runtime/configapi/client.hpp"
#include "runtime/http/loop.hpp"
#include "runtime/json/value.hpp"

namespace tidesync::cli {
namespace {

namespace fs = std::filesystem;

constexpr int k_exit_conflict = 4;

void config_usage(std::FILE* out) {
  std::fputs(R"(Usage:
  tidesync config publish DIR --api URL --config NAMESPACE/NAME --expected-revision REV [--token-file F]
  tidesync config get --api URL --config NAMESPACE/NAME [--token-file F]

publish packs DIR into a reproducible tar.zst (entries sorted, times and owners fixed) and
publishes it through the controller's config API as the new revision of SharedConfig
NAMESPACE/NAME, if REV is still the current revision ("" when nothing is published yet).
get prints the current latest.json.

  --api URL            the config API, e.g. http://tidesync-config.tidesync-system:8085
  --config NS/NAME     the SharedConfig
  --expected-revision  the revision you read (publish refuses to overwrite a newer one)
  --token-file F       the bearer token (default: $TIDESYNC_CONFIG_TOKEN); the controller keeps
                       it in Secret tidesync-config-api, key token

Exit codes: 0 done; 4 conflict (someone published first: the current revision is printed;
read it, merge, publish against it); 1 other failures; 2 usage.
)",
             out);
}

}  // namespace

int run_config(int argc, char** argv) {
  if (argc < 2 || std::string_view(argv[1]) == "-h" || std::string_view(argv[1]) == "--help") {
    config_usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  const std::string sub = argv[1];
  if (sub != "publish" && sub != "get") {
    std::fprintf(stderr, "tidesync config: unknown subcommand \"%s\"\n\n", sub.c_str());
    config_usage(stderr);
    return 2;
  }
  std::string dir, api, config, token_file;
  std::optional<std::string> expected;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    const char* v = nullptr;
    if (a == "-h" || a == "--help") {
      config_usage(stdout);
      return 0;
    }
    if (a == "--api" || a == "--config" || a == "--expected-revision" || a == "--token-file") {
      if ((v = value()) == nullptr) {
        std::fprintf(stderr, "tidesync config: %s needs a value\n", a.c_str());
        return 2;
      }
      if (a == "--api") api = v;
      if (a == "--config") config = v;
      if (a == "--expected-revision") expected = v;
      if (a == "--token-file") token_file = v;
    } else if (!a.empty() && a[0] == '-') {
      std::fprintf(stderr, "tidesync config: unknown flag %s\n\n", a.c_str());
      config_usage(stderr);
      return 2;
    } else if (sub == "publish" && dir.empty()) {
      dir = a;
    } else {
      std::fprintf(stderr, "tidesync config: unexpected argument \"%s\"\n", a.c_str());
      return 2;
    }
  }
  auto ref = configapi::parse_config_ref(config);
  if (api.empty() || !ref || (sub == "publish" && (dir.empty() || !expected))) {
    std::fprintf(stderr,
                 "tidesync config %s: needs %s--api URL and --config NAMESPACE/NAME%s (see "
                 "--help)\n",
                 sub.c_str(), sub == "publish" ? "DIR, " : "",
                 sub == "publish" ? " and --expected-revision REV (\"\" for the first one)" : "");
    return 2;
  }
  // Checked once here for a clear usage error; the client reads it again per request.
  if (auto token = configapi::read_token(token_file); !token) {
    std::fprintf(stderr, "tidesync config: %s\n", token.error().message.c_str());
    return token_file.empty() ? 2 : 1;
  }
  http::loop loop;
  configapi::client api_client(loop, {.api = api, .config = *ref, .token_file = token_file});

  if (sub == "get") {
    auto a = api_client.get_latest(std::nullopt);
    if (!a) {
      std::fprintf(stderr, "tidesync config get: %s\n", a.error().message.c_str());
      return 1;
    }
    if (a->state == configapi::latest_state::not_published) {
      std::fprintf(stderr, "tidesync config get: nothing is published yet for SharedConfig %s\n",
                   config.c_str());
      return 1;
    }
    std::fputs(a->body.c_str(), stdout);
    return 0;
  }

  if (*expected != "" && !archive::valid_revision(*expected)) {
    std::fprintf(stderr, "tidesync config publish: \"%s\" is not a revision\n", expected->c_str());
    return 2;
  }
  char tmpl[] = "/tmp/tidesync-publish-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) {
    std::fprintf(stderr, "tidesync config publish: mkdtemp: %s\n", std::strerror(errno));
    return 1;
  }
  fs::path work = tmpl;
  auto cleanup = [&] {
    std::error_code ec;
    fs::remove_all(work, ec);
  };
  auto packed = archive::pack_bundle(dir, work / "bundle.tar.zst");
  if (!packed) {
    std::fprintf(stderr, "tidesync config publish: packing %s: %s\n", dir.c_str(),
                 packed.error().message.c_str());
    cleanup();
    return 1;
  }
  std::ifstream in(work / "bundle.tar.zst", std::ios::binary);
  std::ostringstream body;
  body << in.rdbuf();
  cleanup();
  std::fprintf(stderr, "packed %s: %llu entries, %llu bytes -> %llu bytes (%s)\n", dir.c_str(),
               static_cast<unsigned long long>(packed->entries),
               static_cast<unsigned long long>(packed->content_bytes),
               static_cast<unsigned long long>(packed->archive_bytes), packed->sha256.c_str());
  auto a = api_client.put_latest(*expected, body.str());
  if (!a) {
    std::fprintf(stderr, "tidesync config publish: %s\n", a.error().message.c_str());
    return 1;
  }
  if (a->status == 201) {
    std::fputs(a->body.c_str(), stdout);
    return 0;
  }
  if (a->status == 409) {
    auto v = json::parse(a->body);
    std::string cur = v && v->is_object() ? std::string(v->get_string("currentRevision")) : "";
    std::fprintf(stderr, "tidesync config publish: conflict: the current revision is \"%s\"; %s\n",
                 cur.c_str(), a->message().c_str());
    std::printf("%s\n", cur.c_str());
    return k_exit_conflict;
  }
  std::fprintf(stderr, "tidesync config publish: %s\n",
               configapi::answer_error(*a, api_client.where()).message.c_str());
  return 1;
}

}  // namespace tidesync::cli
