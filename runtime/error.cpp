#include "runtime/error.hpp"

namespace tidesync {

std::string_view to_string(errc code) {
  switch (code) {
    case errc::invalid_argument:
      return "invalid_argument";
    case errc::parse_error:
      return "parse_error";
    case errc::not_found:
      return "not_found";
    case errc::already_exists:
      return "already_exists";
    case errc::conflict:
      return "conflict";
    case errc::gone:
      return "gone";
    case errc::invalid:
      return "invalid";
    case errc::bad_request:
      return "bad_request";
    case errc::unauthorized:
      return "unauthorized";
    case errc::forbidden:
      return "forbidden";
    case errc::too_many_requests:
      return "too_many_requests";
    case errc::timeout:
      return "timeout";
    case errc::unavailable:
      return "unavailable";
    case errc::io_error:
      return "io_error";
    case errc::config_error:
      return "config_error";
    case errc::cancelled:
      return "cancelled";
    case errc::internal:
      return "internal";
  }
  return "unknown";
}

bool error::transient() const {
  switch (code) {
    case errc::too_many_requests:
    case errc::timeout:
    case errc::unavailable:
    case errc::conflict:
      return true;
    default:
      return false;
  }
}

std::string error::to_string() const {
  std::string out(tidesync::to_string(code));
  if (!message.empty()) {
    out += ": ";
    out += message;
  }
  return out;
}

errc errc_from_http_status(int status) {
  switch (status) {
    case 400:
      return errc::bad_request;
    case 401:
      return errc::unauthorized;
    case 403:
      return errc::forbidden;
    case 404:
      return errc::not_found;
    case 409:
      return errc::conflict;
    case 410:
      return errc::gone;
    case 422:
      return errc::invalid;
    case 429:
      return errc::too_many_requests;
    case 408:
    case 504:
      return errc::timeout;
    default:
      break;
  }
  if (status >= 500) return errc::unavailable;
  if (status >= 400) return errc::bad_request;
  return errc::internal;
}

}  // namespace tidesync
