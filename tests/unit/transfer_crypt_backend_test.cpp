// The crypt backend over a local directory: a plain file the caller keeps beside the encrypted
// tree on purpose (crypt_config::plain_top_level, the pod agents' marker) is left out of the
// listing without the "do not decrypt" warning that a foreign file gets.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <string>

#include "runtime/http/loop.hpp"
#include "runtime/transfer/backend.hpp"
#include "runtime/transfer/crypt.hpp"
#include "runtime/transfer/remote.hpp"
#include "tests/support/files.hpp"

namespace {

using namespace tidesync;
using namespace tidesync::transfer;

env_lookup env_of(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

class one_string : public reader {
 public:
  explicit one_string(std::string s) : s_(std::move(s)) {}
  expected<size_t> read(char* buf, size_t n) override {
    const size_t k = std::min(n, s_.size() - pos_);
    std::copy_n(s_.data() + pos_, k, buf);
    pos_ += k;
    return k;
  }

 private:
  std::string s_;
  size_t pos_ = 0;
};

}  // namespace

TEST(transfer_crypt_backend, plain_top_level_files_are_not_listed_and_not_warned_about) {
  test::temp_dir dir("tidesync-crypt-backend");
  auto loc =
      parse_location("vault:", env_of({{"RCLONE_CONFIG_VAULT_TYPE", "crypt"},
                                       {"RCLONE_CONFIG_VAULT_REMOTE", dir.path().string()},
                                       {"RCLONE_CONFIG_VAULT_PASSWORD", crypt::obscure("pw")}}));
  ASSERT_TRUE(loc) << loc.error().message;
  http::loop loop;
  {
    auto b = make_backend(*loc, loop, backend_options{});
    ASSERT_TRUE(b) << b.error().message;
    entry e;
    e.path = "docs/a.txt";
    e.size = 5;
    e.mtime = std::chrono::system_clock::now();
    one_string in("alpha");
    ASSERT_TRUE((*b)->write(e, in));
  }
  test::write_file(dir.path() / ".tidesync-initialized", "marker");

  auto list_with = [&](const location& l, std::string& warnings) {
    auto b = make_backend(l, loop, backend_options{});
    EXPECT_TRUE(b);
    ::testing::internal::CaptureStderr();
    auto listing = (*b)->list();
    warnings = ::testing::internal::GetCapturedStderr();
    EXPECT_TRUE(listing);
    std::map<std::string, bool> out;
    for (const auto& e : *listing)
      out[e.path] = e.dir;
    return out;
  };
  const std::map<std::string, bool> want{{"docs", true}, {"docs/a.txt", false}};

  std::string warnings;
  EXPECT_EQ(list_with(*loc, warnings), want);
  EXPECT_NE(warnings.find("skipped 1 name(s) that do not decrypt"), std::string::npos) << warnings;

  location agents = *loc;
  agents.crypt.plain_top_level.emplace_back(".tidesync-initialized");
  EXPECT_EQ(list_with(agents, warnings), want);
  EXPECT_EQ(warnings, "");

  // Only at the top, and only files of that name.
  test::write_file(dir.path() / "sub" / ".tidesync-initialized", "not at the top");
  EXPECT_EQ(list_with(agents, warnings), want);
  EXPECT_NE(warnings.find("do not decrypt"), std::string::npos) << warnings;
}
