// Segment-trie router (see router.hpp).
#include "engine/router.hpp"

#include <algorithm>

namespace depot {
namespace {
std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> segments;
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) slash = path.size();
    if (slash > start) segments.push_back(path.substr(start, slash - start));
    start = slash + 1;
  }
  return segments;
}
}  // namespace

struct Router::Node {
  struct Handler {
    RouteTarget target;
    std::string description;
  };
  std::map<std::string, std::unique_ptr<Node>, std::less<>> literals;
  std::unique_ptr<Node> param;
  std::string param_name;
  std::unique_ptr<Node> splat;  // a splat node is always a leaf
  std::string splat_name;
  std::map<std::string, Handler, std::less<>> handlers;  // by method

  bool match(const std::vector<std::string_view>& segments, size_t index, std::string_view method,
             RouteMatch& result) const {
    if (index == segments.size()) {
      if (accept(method, result)) return true;
      // "/files/*rest" also matches "/files".
      if (splat && splat->accept(method, result)) {
        result.params.emplace_back(splat_name, "");
        return true;
      }
      return false;
    }
    std::string_view segment = segments[index];
    if (auto it = literals.find(segment); it != literals.end()) {
      if (it->second->match(segments, index + 1, method, result)) return true;
    }
    if (param) {
      size_t mark = result.params.size();
      result.params.emplace_back(param_name, std::string(segment));
      if (param->match(segments, index + 1, method, result)) return true;
      result.params.resize(mark);
    }
    if (splat) {
      std::string rest;
      for (size_t i = index; i < segments.size(); ++i) {
        if (i > index) rest.push_back('/');
        rest.append(segments[i]);
      }
      if (splat->accept(method, result)) {
        result.params.emplace_back(splat_name, std::move(rest));
        return true;
      }
    }
    return false;
  }

  // True when this node answers `method`; records the allowed methods when it answers others.
  bool accept(std::string_view method, RouteMatch& result) const {
    if (handlers.empty()) return false;
    auto it = handlers.find(method);
    if (it == handlers.end() && method == "HEAD") it = handlers.find("GET");
    if (it == handlers.end()) it = handlers.find("*");
    if (it != handlers.end()) {
      result.kind = RouteMatch::Kind::found;
      result.target = it->second.target;
      return true;
    }
    if (result.kind == RouteMatch::Kind::not_found) {
      result.kind = RouteMatch::Kind::method_not_allowed;
      for (const auto& [name, handler] : handlers) {
        if (!result.allowed.empty()) result.allowed += ", ";
        result.allowed += name;
        result.target = handler.target;
      }
      if (handlers.count("GET") && !handlers.count("HEAD")) result.allowed += ", HEAD";
    }
    return false;
  }
};

Router::Router() : root_(std::make_unique<Node>()) {}
Router::~Router() = default;
Router::Router(Router&&) noexcept = default;
Router& Router::operator=(Router&&) noexcept = default;

std::string Router::join(std::string_view prefix, std::string_view pattern) {
  std::string joined(prefix);
  while (!joined.empty() && joined.back() == '/') joined.pop_back();
  if (pattern.empty() || pattern.front() != '/') joined.push_back('/');
  joined.append(pattern);
  return joined.empty() ? "/" : joined;
}

void Router::add(std::string_view method, std::string_view pattern, RouteTarget target,
                 std::string description) {
  Node* node = root_.get();
  for (std::string_view segment : split_path(pattern)) {
    if (segment.front() == ':') {
      std::string name(segment.substr(1));
      if (!node->param) {
        node->param = std::make_unique<Node>();
        node->param_name = name;
      } else if (node->param_name != name) {
        throw RouteConflict("route " + description + ": parameter :" + name + " clashes with :" +
                            node->param_name + " at the same position in another route");
      }
      node = node->param.get();
    } else if (segment.front() == '*') {
      std::string name(segment.substr(1));
      if (!node->splat) {
        node->splat = std::make_unique<Node>();
        node->splat_name = name.empty() ? "splat" : name;
      }
      node = node->splat.get();
      break;  // a splat takes the rest of the path
    } else {
      auto& child = node->literals[std::string(segment)];
      if (!child) child = std::make_unique<Node>();
      node = child.get();
    }
  }
  std::string verb(method);
  auto existing = node->handlers.find(verb);
  if (existing != node->handlers.end()) {
    throw RouteConflict("route " + description + " conflicts with " + existing->second.description);
  }
  node->handlers.emplace(verb, Node::Handler{target, std::move(description)});
}

void Router::add_mount(std::string_view prefix, uint32_t service) {
  std::vector<std::string> segments;
  for (std::string_view segment : split_path(prefix)) segments.emplace_back(segment);
  mounts_.emplace_back(std::move(segments), service);
  std::stable_sort(mounts_.begin(), mounts_.end(),
                   [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
}

RouteMatch Router::match(std::string_view method, std::string_view path) const {
  RouteMatch result;
  std::vector<std::string_view> segments = split_path(path);
  if (root_->match(segments, 0, method, result)) {
    result.service = static_cast<int>(result.target.service);
    return result;
  }
  if (result.kind == RouteMatch::Kind::method_not_allowed) {
    result.service = static_cast<int>(result.target.service);
    result.params.clear();
    return result;
  }
  for (const auto& [mount, service] : mounts_) {
    if (mount.size() > segments.size()) continue;
    if (std::equal(mount.begin(), mount.end(), segments.begin())) {
      result.service = static_cast<int>(service);
      break;
    }
  }
  return result;
}

}  // namespace depot
