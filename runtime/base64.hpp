// RFC 4648 base64: Secret data, kubeconfig *-data fields, basic auth, continue tokens.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace tidesync::base64 {

enum class alphabet { standard, url };

// Encodes `in`; the url alphabet ('-', '_') is used without padding (for tokens in URLs).
std::string encode(std::string_view in, alphabet a = alphabet::standard);

// Decodes either alphabet; whitespace is ignored and padding is optional. Returns nullopt for
// characters outside the alphabets, data after padding, or a dangling final character.
std::optional<std::string> decode(std::string_view in);

}  // namespace tidesync::base64
