// Kubernetes protobuf → JSON for a handful of kinds (see protobuf.hpp). Field numbers are
// from k8s.io/api/core/v1/generated.proto and apimachinery's generated.proto.
#include "runtime/apiserver/protobuf.hpp"

#include <cstdint>
#include <optional>
#include <vector>

#include "runtime/base64.hpp"

namespace tidesync::apiserver {
namespace {

struct field {
  uint32_t number = 0;
  uint32_t wire = 0;
  uint64_t varint = 0;
  std::string_view bytes;
};

error http_error(errc code, std::string message, int status, std::string reason) {
  error e = make_error(code, std::move(message));
  e.http_status = status;
  e.reason = std::move(reason);
  return e;
}

error malformed(const std::string& what) {
  return http_error(errc::bad_request, "the protobuf request body is malformed: " + what, 400,
                    "BadRequest");
}

// Splits one message into its fields; nullopt when the bytes are not valid protobuf.
std::optional<std::vector<field>> fields_of(std::string_view m) {
  std::vector<field> out;
  size_t i = 0;
  auto varint = [&](uint64_t& v) {
    v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (i >= m.size()) return false;
      auto b = static_cast<uint8_t>(m[i++]);
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return true;
    }
    return false;
  };
  while (i < m.size()) {
    uint64_t key;
    if (!varint(key)) return std::nullopt;
    field f;
    f.number = static_cast<uint32_t>(key >> 3);
    f.wire = static_cast<uint32_t>(key & 7);
    switch (f.wire) {
      case 0:
        if (!varint(f.varint)) return std::nullopt;
        break;
      case 1:
        if (i + 8 > m.size()) return std::nullopt;
        i += 8;
        break;
      case 2: {
        uint64_t len;
        if (!varint(len) || len > m.size() - i) return std::nullopt;
        f.bytes = m.substr(i, len);
        i += len;
        break;
      }
      case 5:
        if (i + 4 > m.size()) return std::nullopt;
        i += 4;
        break;
      default:
        return std::nullopt;
    }
    out.push_back(f);
  }
  return out;
}

// A map<string, string|bytes> entry: key = 1, value = 2.
bool add_map_entry(json::value& target, std::string_view entry, bool bytes_value) {
  auto fs = fields_of(entry);
  if (!fs) return false;
  std::string key, value;
  for (const auto& f : *fs) {
    if (f.number == 1 && f.wire == 2) key = std::string(f.bytes);
    if (f.number == 2 && f.wire == 2) value = std::string(f.bytes);
  }
  if (target.is_null()) target = json::object{};
  target.as_object().set(key,
                         bytes_value ? json::value(base64::encode(value)) : json::value(value));
  return true;
}

expected<json::value> object_meta(std::string_view m) {
  auto fs = fields_of(m);
  if (!fs) return malformed("bad ObjectMeta");
  json::value meta = json::object{};
  json::value labels, annotations;
  json::array finalizers, owners;
  for (const auto& f : *fs) {
    if (f.wire != 2 && f.number != 7) continue;
    switch (f.number) {
      case 1:
        meta.as_object().set("name", std::string(f.bytes));
        break;
      case 2:
        meta.as_object().set("generateName", std::string(f.bytes));
        break;
      case 3:
        meta.as_object().set("namespace", std::string(f.bytes));
        break;
      case 6:
        meta.as_object().set("resourceVersion", std::string(f.bytes));
        break;
      case 11:
        if (!add_map_entry(labels, f.bytes, false)) return malformed("bad labels");
        break;
      case 12:
        if (!add_map_entry(annotations, f.bytes, false)) return malformed("bad annotations");
        break;
      case 14:
        finalizers.emplace_back(std::string(f.bytes));
        break;
      case 13: {
        auto rs = fields_of(f.bytes);
        if (!rs) return malformed("bad ownerReference");
        json::object ref;
        for (const auto& r : *rs) {
          if (r.number == 1 && r.wire == 2) ref.set("kind", std::string(r.bytes));
          if (r.number == 3 && r.wire == 2) ref.set("name", std::string(r.bytes));
          if (r.number == 4 && r.wire == 2) ref.set("uid", std::string(r.bytes));
          if (r.number == 5 && r.wire == 2) ref.set("apiVersion", std::string(r.bytes));
          if (r.number == 6 && r.wire == 0) ref.set("controller", r.varint != 0);
          if (r.number == 7 && r.wire == 0) ref.set("blockOwnerDeletion", r.varint != 0);
        }
        owners.emplace_back(std::move(ref));
        break;
      }
      default:
        break;
    }
  }
  if (!labels.is_null()) meta.as_object().set("labels", std::move(labels));
  if (!annotations.is_null()) meta.as_object().set("annotations", std::move(annotations));
  if (!owners.empty()) meta.as_object().set("ownerReferences", std::move(owners));
  if (!finalizers.empty()) meta.as_object().set("finalizers", std::move(finalizers));
  return meta;
}

}  // namespace

expected<json::value> decode_k8s_protobuf(std::string_view body) {
  static constexpr std::string_view magic("k8s\0", 4);
  if (body.substr(0, 4) != magic) return malformed("missing the k8s protobuf envelope");
  auto unknown = fields_of(body.substr(4));
  if (!unknown) return malformed("bad runtime.Unknown envelope");
  std::string api_version, kind;
  std::string_view raw;
  for (const auto& f : *unknown) {
    if (f.number == 1 && f.wire == 2) {
      auto tm = fields_of(f.bytes);
      if (!tm) return malformed("bad TypeMeta");
      for (const auto& t : *tm) {
        if (t.number == 1 && t.wire == 2) api_version = std::string(t.bytes);
        if (t.number == 2 && t.wire == 2) kind = std::string(t.bytes);
      }
    } else if (f.number == 2 && f.wire == 2) {
      raw = f.bytes;
    }
  }
  if (api_version != "v1" ||
      (kind != "ConfigMap" && kind != "Secret" && kind != "Namespace" && kind != "ServiceAccount"))
    return http_error(errc::bad_request,
                      "protobuf bodies are accepted only for v1 ConfigMap, Secret, Namespace and "
                      "ServiceAccount (got " +
                          api_version + " " + kind +
                          "); send JSON instead, e.g. with kubectl apply -f",
                      415, "UnsupportedMediaType");
  auto fs = fields_of(raw);
  if (!fs) return malformed("bad " + kind);
  json::value obj = json::object{{"apiVersion", api_version}, {"kind", kind}};
  json::value data, binary, string_data;
  for (const auto& f : *fs) {
    if (f.number == 1 && f.wire == 2) {
      auto meta = object_meta(f.bytes);
      if (!meta) return meta.error();
      obj.as_object().set("metadata", std::move(*meta));
      continue;
    }
    if (kind == "ConfigMap") {
      if (f.number == 2 && f.wire == 2 && !add_map_entry(data, f.bytes, false))
        return malformed("bad data");
      if (f.number == 3 && f.wire == 2 && !add_map_entry(binary, f.bytes, true))
        return malformed("bad binaryData");
      if (f.number == 4 && f.wire == 0) obj.as_object().set("immutable", f.varint != 0);
    } else if (kind == "Secret") {
      if (f.number == 2 && f.wire == 2 && !add_map_entry(data, f.bytes, true))
        return malformed("bad data");
      if (f.number == 3 && f.wire == 2) obj.as_object().set("type", std::string(f.bytes));
      if (f.number == 4 && f.wire == 2 && !add_map_entry(string_data, f.bytes, false))
        return malformed("bad stringData");
      if (f.number == 5 && f.wire == 0) obj.as_object().set("immutable", f.varint != 0);
    }
  }
  if (!data.is_null()) obj.as_object().set("data", std::move(data));
  if (!binary.is_null()) obj.as_object().set("binaryData", std::move(binary));
  if (!string_data.is_null()) obj.as_object().set("stringData", std::move(string_data));
  return obj;
}

}  // namespace tidesync::apiserver
