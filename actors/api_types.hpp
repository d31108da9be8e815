// The answer to one Kubernetes API call as a CAF message (actors/api_call.hpp sends it).
// No CAF here; the `inspect` function lives in actors/type_ids.hpp.
#pragma once

#include <cstdint>
#include <string>

#include "runtime/error.hpp"
#include "runtime/json/value.hpp"

namespace tidesync::actors {

// The answer to one API call, as a message. `ok` false: `error` says why (the body of a
// failed call is not carried). A successful answer's JSON travels as text (parsed again by the
// receiver only when it wants it: most callers only need the resourceVersion).
struct api_reply {
  uint64_t token = 0;
  bool ok = false;
  int32_t code = 0;  // static_cast<int32_t>(errc) when !ok
  int32_t http_status = 0;
  std::string message;  // the error's message when !ok
  std::string body;     // the returned object as JSON when ok

  [[nodiscard]] errc error_code() const { return static_cast<errc>(code); }
  [[nodiscard]] tidesync::error to_error() const;
  // The returned object parsed (an empty object when there is none or it does not parse).
  [[nodiscard]] json::value object() const;
};

}  // namespace tidesync::actors
