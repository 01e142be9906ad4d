// Maps (method, path) to a route of a service. Patterns are segment lists: literal segments,
// `:name` (one segment) and `*name` (the rest of the path, possibly empty). At each segment a
// literal beats a parameter, which beats a splat. A trailing slash is ignored ("/v1/" is "/v1").
// HEAD falls back to GET. Registering the same method on an equivalent pattern twice is a
// conflict, reported with both routes' names so a reload can refuse it.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace depot {

struct RouteConflict : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct RouteTarget {
  uint32_t service = 0;
  uint32_t route = 0;
};

struct RouteMatch {
  enum class Kind { found, method_not_allowed, not_found };
  Kind kind = Kind::not_found;
  RouteTarget target;
  std::vector<std::pair<std::string, std::string>> params;
  std::string allowed;  // "GET, POST" for method_not_allowed
  int service = -1;     // the service that owns the path (longest mount), -1 if none
};

class Router {
 public:
  Router();
  ~Router();
  Router(Router&&) noexcept;
  Router& operator=(Router&&) noexcept;

  // `description` names the route in conflict messages, e.g. "file_cache: POST /v1/cache_id".
  void add(std::string_view method, std::string_view pattern, RouteTarget target,
           std::string description);
  void add_mount(std::string_view prefix, uint32_t service);
  RouteMatch match(std::string_view method, std::string_view path) const;

  // "/a/" + "/b" → "/a/b"; "/" + "/x" → "/x".
  static std::string join(std::string_view prefix, std::string_view pattern);

 private:
  struct Node;
  std::unique_ptr<Node> root_;
  std::vector<std::pair<std::vector<std::string>, uint32_t>> mounts_;
};

}  // namespace depot
