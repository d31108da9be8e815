#include <gtest/gtest.h>

#include <string>

#include "runtime/base64.hpp"

namespace tidesync::base64 {
namespace {

TEST(Base64, RoundTripsEveryLengthAndByte) {
  std::string s;
  for (int i = 0; i < 300; ++i) {
    s.push_back(static_cast<char>(i * 37));
    for (auto a : {alphabet::standard, alphabet::url}) {
      auto enc = encode(s, a);
      auto dec = decode(enc);
      ASSERT_TRUE(dec.has_value()) << enc;
      EXPECT_EQ(*dec, s);
    }
  }
}

TEST(Base64, KnownValues) {
  EXPECT_EQ(encode("abc:def"), "YWJjOmRlZg==");
  EXPECT_EQ(encode("\xfb\xff"), "+/8=");
  EXPECT_EQ(encode("\xfb\xff", alphabet::url), "-_8");
  EXPECT_EQ(*decode("YWJj\nOmRl\nZg=="), "abc:def");
  EXPECT_EQ(*decode("YWJjOmRlZg"), "abc:def") << "padding is optional";
  EXPECT_EQ(*decode("-_8"), "\xfb\xff");
}

TEST(Base64, RejectsGarbage) {
  EXPECT_FALSE(decode("not base64!"));
  EXPECT_FALSE(decode("YQ==YQ")) << "data after padding";
  EXPECT_FALSE(decode("YWJjO")) << "a dangling final character";
}

}  // namespace
}  // namespace tidesync::base64
