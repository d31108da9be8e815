#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>

#include "runtime/k8s/config.hpp"

using namespace std::chrono_literals;
namespace fs = std::filesystem;
using namespace tidesync;
using namespace tidesync::k8s;

namespace {

class temp_dir {
 public:
  temp_dir() {
    std::string tmpl = (fs::temp_directory_path() / "tidesync-config-XXXXXX").string();
    path_ = mkdtemp(tmpl.data());
  }
  ~temp_dir() { fs::remove_all(path_); }
  std::string file(const std::string& name, const std::string& text) const {
    fs::path p = fs::path(path_) / name;
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << text;
    return p.string();
  }
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  std::string path_;
};

const char* kTwoContexts = R"(apiVersion: v1
kind: Config
current-context: dev
clusters:
- name: dev-cluster
  cluster:
    server: https://dev.example:6443/
    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCmNhCg==
- name: prod-cluster
  cluster:
    server: https://prod.example:443
    insecure-skip-tls-verify: true
contexts:
- name: dev
  context: {cluster: dev-cluster, user: dev-user, namespace: team-a}
- name: prod
  context: {cluster: prod-cluster, user: prod-user}
users:
- name: dev-user
  user:
    token: s3cr3t-dev
- name: prod-user
  user:
    client-certificate-data: Y2VydA==
    client-key-data: a2V5
)";

config_options with_env(std::map<std::string, std::string> env) {
  config_options o;
  o.getenv = [env](const std::string& name) -> std::optional<std::string> {
    auto it = env.find(name);
    if (it == env.end()) return std::nullopt;
    return it->second;
  };
  return o;
}

}  // namespace

TEST(Kubeconfig, CurrentContextWithTokenAndCaData) {
  temp_dir dir;
  auto path = dir.file("config", kTwoContexts);
  auto cfg = load_kubeconfig(path, "");
  ASSERT_TRUE(cfg) << cfg.error().to_string();
  EXPECT_EQ(cfg->server, "https://dev.example:6443");
  EXPECT_EQ(cfg->token, "s3cr3t-dev");
  EXPECT_EQ(cfg->default_namespace, "team-a");
  EXPECT_EQ(cfg->tls->ca_pem, "-----BEGIN CERTIFICATE-----\nca\n");
  EXPECT_FALSE(cfg->tls->insecure_skip_verify);
  EXPECT_NE(cfg->source.find("context dev"), std::string::npos);
}

TEST(Kubeconfig, ExplicitContextWithClientCertData) {
  temp_dir dir;
  auto path = dir.file("config", kTwoContexts);
  auto cfg = load_kubeconfig(path, "prod");
  ASSERT_TRUE(cfg) << cfg.error().to_string();
  EXPECT_EQ(cfg->server, "https://prod.example:443");
  EXPECT_EQ(cfg->tls->cert_pem, "cert");
  EXPECT_EQ(cfg->tls->key_pem, "key");
  EXPECT_TRUE(cfg->tls->insecure_skip_verify);
  EXPECT_TRUE(cfg->token.empty());
  EXPECT_EQ(cfg->default_namespace, "default");
}

TEST(Kubeconfig, RelativeFilesResolveAgainstTheKubeconfigDirectory) {
  temp_dir dir;
  dir.file("certs/ca.crt", "CA");
  dir.file("certs/client.crt", "CERT");
  dir.file("certs/client.key", "KEY");
  dir.file("token", "tok-1\n");
  auto path = dir.file("sub/../config", R"(
current-context: c
clusters: [{name: k, cluster: {server: "http://127.0.0.1:1", certificate-authority: certs/ca.crt}}]
contexts: [{name: c, context: {cluster: k, user: u}}]
users: [{name: u, user: {client-certificate: certs/client.crt, client-key: certs/client.key, tokenFile: token}}]
)");
  auto cfg = load_kubeconfig(path, "");
  ASSERT_TRUE(cfg) << cfg.error().to_string();
  EXPECT_EQ(cfg->tls->ca_file, (fs::path(dir.path()) / "certs/ca.crt").string());
  EXPECT_EQ(cfg->tls->cert_file, (fs::path(dir.path()) / "certs/client.crt").string());
  EXPECT_EQ(cfg->tls->key_file, (fs::path(dir.path()) / "certs/client.key").string());
  EXPECT_EQ(cfg->token_file, (fs::path(dir.path()) / "token").string());
}

TEST(Kubeconfig, MissingFileSaysWhatToDo) {
  auto cfg = load_kubeconfig("/nonexistent/kubeconfig", "");
  ASSERT_FALSE(cfg);
  EXPECT_EQ(cfg.error().code, errc::config_error);
  EXPECT_NE(cfg.error().message.find("/nonexistent/kubeconfig does not exist"), std::string::npos);
  EXPECT_NE(cfg.error().message.find("--kubeconfig"), std::string::npos);
}

TEST(Kubeconfig, BrokenYamlNamesTheFile) {
  temp_dir dir;
  auto path = dir.file("config", "clusters: [\n  - name: a\n  bad: {\n");
  auto cfg = load_kubeconfig(path, "");
  ASSERT_FALSE(cfg);
  EXPECT_EQ(cfg.error().code, errc::config_error);
  EXPECT_NE(cfg.error().message.find(path), std::string::npos);
  EXPECT_NE(cfg.error().message.find("not valid YAML"), std::string::npos);
}

TEST(Kubeconfig, UnknownContextListsTheContexts) {
  temp_dir dir;
  auto path = dir.file("config", kTwoContexts);
  auto cfg = load_kubeconfig(path, "staging");
  ASSERT_FALSE(cfg);
  EXPECT_EQ(
      cfg.error().message,
      "kubeconfig " + path + ": context \"staging\" names no context; contexts are: dev, prod");
}

TEST(Kubeconfig, DanglingReferencesAndPluginsAreClearErrors) {
  temp_dir dir;
  auto p1 = dir.file("c1", R"(
current-context: c
clusters: [{name: k, cluster: {server: "https://x"}}]
contexts: [{name: c, context: {cluster: nope, user: u}}]
users: [{name: u, user: {token: t}}]
)");
  auto r1 = load_kubeconfig(p1, "");
  ASSERT_FALSE(r1);
  EXPECT_NE(r1.error().message.find("cluster \"nope\", which is not defined; clusters are: k"),
            std::string::npos);
  auto p2 = dir.file("c2", R"(
current-context: c
clusters: [{name: k, cluster: {server: "https://x"}}]
contexts: [{name: c, context: {cluster: k, user: u}}]
users: [{name: u, user: {exec: {command: aws}}}]
)");
  auto r2 = load_kubeconfig(p2, "");
  ASSERT_FALSE(r2);
  EXPECT_NE(r2.error().message.find("exec or auth-provider"), std::string::npos);
  // Tokens never appear in errors.
  auto p3 = dir.file("c3", R"(
current-context: c
clusters: [{name: k, cluster: {server: "ftp://x"}}]
contexts: [{name: c, context: {cluster: k, user: u}}]
users: [{name: u, user: {token: very-secret}}]
)");
  auto r3 = load_kubeconfig(p3, "");
  ASSERT_FALSE(r3);
  EXPECT_EQ(r3.error().message.find("very-secret"), std::string::npos);
  EXPECT_NE(r3.error().message.find("not an http:// or https:// URL"), std::string::npos);
}

TEST(Kubeconfig, KubeconfigEnvTakesTheFirstExistingFile) {
  temp_dir dir;
  auto path = dir.file("config", kTwoContexts);
  auto opts = with_env(
      {{"KUBECONFIG", dir.path() + "/missing:" + path}, {"KUBERNETES_SERVICE_HOST", "10.0.0.1"}});
  auto cfg = load_config(opts);
  ASSERT_TRUE(cfg) << cfg.error().to_string();
  EXPECT_EQ(cfg->server, "https://dev.example:6443");

  auto none = load_config(with_env({{"KUBECONFIG", "/nope/a:/nope/b"}}));
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().message.find("/nope/a, /nope/b"), std::string::npos);
}

TEST(Kubeconfig, FlagBeatsEnvironment) {
  temp_dir dir;
  auto path = dir.file("config", kTwoContexts);
  auto opts = with_env({{"KUBECONFIG", "/nope"}});
  opts.kubeconfig = path;
  opts.context = "prod";
  auto cfg = load_config(opts);
  ASSERT_TRUE(cfg) << cfg.error().to_string();
  EXPECT_EQ(cfg->server, "https://prod.example:443");
}

TEST(InCluster, ReadsTheServiceAccountDirectory) {
  temp_dir dir;
  dir.file("sa/token", "in-cluster-token\n");
  dir.file("sa/ca.crt", "CA");
  dir.file("sa/namespace", "tidesync-system\n");
  dir.file("home/.kube/config", kTwoContexts);  // in-cluster wins over ~/.kube/config
  auto opts = with_env({{"KUBERNETES_SERVICE_HOST", "10.96.0.1"},
                        {"KUBERNETES_SERVICE_PORT", "443"},
                        {"HOME", dir.path() + "/home"}});
  opts.in_cluster_root = dir.path() + "/sa";
  auto cfg = load_config(opts);
  ASSERT_TRUE(cfg) << cfg.error().to_string();
  EXPECT_EQ(cfg->server, "https://10.96.0.1:443");
  EXPECT_EQ(cfg->token_file, dir.path() + "/sa/token");
  EXPECT_EQ(cfg->tls->ca_file, dir.path() + "/sa/ca.crt");
  EXPECT_EQ(cfg->default_namespace, "tidesync-system");

  auto v6 = load_in_cluster(dir.path() + "/sa", "fd00::1", "6443");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->server, "https://[fd00::1]:6443");

  auto missing = load_in_cluster(dir.path() + "/nothing", "10.0.0.1", "443");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("token"), std::string::npos);
}

TEST(InCluster, FallsBackToHomeKubeconfig) {
  temp_dir dir;
  dir.file("home/.kube/config", kTwoContexts);
  auto cfg = load_config(with_env({{"HOME", dir.path() + "/home"}}));
  ASSERT_TRUE(cfg) << cfg.error().to_string();
  EXPECT_EQ(cfg->server, "https://dev.example:6443");
  auto none = load_config(with_env({{"HOME", dir.path() + "/empty"}}));
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, errc::config_error);
}

TEST(TokenSource, RereadsTheFileWhenItChanges) {
  temp_dir dir;
  auto path = dir.file("token", "first\n");
  token_source src("static", path, 10s);
  const auto t0 = token_source::clock::time_point{} + 1h;
  EXPECT_EQ(src.get(t0), "first");  // the file wins over the static token

  dir.file("token", "second-token\n");
  fs::last_write_time(path, fs::last_write_time(path) + 5s);
  EXPECT_EQ(src.get(t0 + 5s), "first");  // not rechecked within 10 s
  EXPECT_EQ(src.get(t0 + 11s), "second-token");

  // A vanished file keeps the last good token.
  fs::remove(path);
  EXPECT_EQ(src.get(t0 + 30s), "second-token");

  token_source fixed("only", "", 1s);
  EXPECT_EQ(fixed.get(t0), "only");
}
