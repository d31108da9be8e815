#include "runtime/transfer/backend.hpp"

namespace tidesync::transfer {

expected<std::unique_ptr<backend>> make_backend(const location& loc, http::loop& loop,
                                                const backend_options& opts) {
  switch (loc.kind) {
    case location_kind::local:
      return make_local_backend(loc);
    case location_kind::s3:
      return make_s3_backend(loc, loop, opts);
    case location_kind::http:
      return make_http_backend(loc, loop, opts);
    case location_kind::sftp:
      return make_sftp_backend(loc, opts);
    case location_kind::crypt:
      return make_crypt_backend(loc, loop, opts);
  }
  return make_error(errc::invalid_argument, "unsupported location \"" + loc.text + "\"");
}

expected<std::optional<entry>> backend::stat(const std::string& rel) {
  auto all = list();
  if (!all) return all.error();
  for (auto& e : *all) {
    if (!e.dir && e.path == rel) return std::optional<entry>(std::move(e));
  }
  return std::optional<entry>();
}

}  // namespace tidesync::transfer
