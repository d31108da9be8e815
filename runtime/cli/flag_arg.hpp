// One command-line argument as the subcommands' parsers read it: "--flag=value" is split into
// the flag and its value; anything else is the flag alone.
#pragma once

#include <string>
#include <string_view>

namespace tidesync::cli {

struct flag_arg {
  std::string_view flag;
  std::string value;
  bool has_value = false;  // the value came after '='
};

inline flag_arg split_flag(std::string_view arg) {
  flag_arg out{arg, {}, false};
  if (arg.rfind("--", 0) == 0)
    if (auto eq = arg.find('='); eq != std::string_view::npos) {
      out.flag = arg.substr(0, eq);
      out.value = std::string(arg.substr(eq + 1));
      out.has_value = true;
    }
  return out;
}

}  // namespace tidesync::cli
