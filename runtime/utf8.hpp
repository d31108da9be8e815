// UTF-8 encoding of one code point, shared by the parsers that decode character references
// (S3 XML, HTML listings) and rclone-crypt's name obfuscation.
#pragma once

#include <cstdint>
#include <string>

namespace tidesync::utf8 {

// Appends `cp` encoded as UTF-8. Surrogates and values above U+10FFFF are written as U+FFFD,
// the replacement character (what Go's WriteRune does).
void append(std::string& out, uint32_t cp);

}  // namespace tidesync::utf8
