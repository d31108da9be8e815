// Kubernetes label selectors: the string form used in `?labelSelector=` and the
// `metav1.LabelSelector` JSON form (matchLabels / matchExpressions).
//
// Grammar (as in k8s.io/apimachinery/pkg/labels): requirements separated by commas, all of
// which must hold:
//   key=value  key==value  key!=value  key in (a,b)  key notin (a)  key  !key  key>3  key<3
// Pure, no I/O; used by the embedded API server, the informer's label index and the CLI.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/error.hpp"

namespace tidesync::json {
class value;
}

namespace tidesync::k8s {

class label_selector {
 public:
  enum class op { equals, not_equals, in, not_in, exists, not_exists, greater_than, less_than };

  struct requirement {
    std::string key;
    op operation = op::equals;
    std::vector<std::string> values;  // sorted; one value for equals/not_equals/gt/lt
  };

  // The empty selector matches everything.
  label_selector() = default;

  // Parses the string form. Errors (errc::invalid_argument) name the offending part.
  static expected<label_selector> parse(std::string_view text);
  // From a metav1.LabelSelector object ({"matchLabels":{...},"matchExpressions":[...]}).
  // A null value gives the empty selector (matches everything), as Kubernetes does.
  static expected<label_selector> from_json(const json::value& selector);

  [[nodiscard]] bool matches(const std::map<std::string, std::string>& labels) const;
  [[nodiscard]] bool empty() const { return requirements_.empty(); }
  [[nodiscard]] const std::vector<requirement>& requirements() const { return requirements_; }
  // Canonical string form (parse(to_string()) gives an equal selector).
  [[nodiscard]] std::string to_string() const;

  // Validators shared with the API server.
  // A label key: optional DNS-1123 subdomain prefix + "/" + a name of at most 63 characters.
  static bool valid_key(std::string_view key);
  // A label value: empty, or at most 63 characters of [A-Za-z0-9-_.] starting and ending
  // alphanumeric.
  static bool valid_value(std::string_view value);

 private:
  std::vector<requirement> requirements_;
};

}  // namespace tidesync::k8s
