// Router: literal / :param / *splat precedence, trailing slashes, 405 lists, HEAD, mounts,
// conflicts.
#include "engine/router.hpp"

#include <catch2/catch.hpp>

using depot::RouteMatch;
using depot::Router;
using depot::RouteTarget;

namespace {
std::string param(const RouteMatch& match, const std::string& name) {
  for (const auto& [key, value] : match.params) {
    if (key == name) return value;
  }
  return "<missing>";
}
}  // namespace

TEST_CASE("router prefers literals, then parameters, then splats", "[router]") {
  Router router;
  router.add("GET", "/v1/cache/:id", RouteTarget{0, 1}, "a");
  router.add("GET", "/v1/cache/special", RouteTarget{0, 2}, "b");
  router.add("GET", "/files/*path", RouteTarget{0, 3}, "c");

  auto literal = router.match("GET", "/v1/cache/special");
  REQUIRE(literal.kind == RouteMatch::Kind::found);
  CHECK(literal.target.route == 2);

  auto parameter = router.match("GET", "/v1/cache/abc123");
  REQUIRE(parameter.kind == RouteMatch::Kind::found);
  CHECK(parameter.target.route == 1);
  CHECK(param(parameter, "id") == "abc123");

  auto splat = router.match("GET", "/files/a/b/c.txt");
  REQUIRE(splat.kind == RouteMatch::Kind::found);
  CHECK(param(splat, "path") == "a/b/c.txt");
  CHECK(param(router.match("GET", "/files"), "path").empty());
}

TEST_CASE("router ignores a trailing slash", "[router]") {
  Router router;
  router.add("GET", "/v1", RouteTarget{0, 0}, "v1");
  CHECK(router.match("GET", "/v1/").kind == RouteMatch::Kind::found);
  CHECK(router.match("GET", "/v1").kind == RouteMatch::Kind::found);
  CHECK(router.match("GET", "/v2").kind == RouteMatch::Kind::not_found);
}

TEST_CASE("router answers 405 with the allowed methods, and HEAD falls back to GET", "[router]") {
  Router router;
  router.add("GET", "/thing/:id", RouteTarget{0, 0}, "get");
  router.add("DELETE", "/thing/:id", RouteTarget{0, 1}, "delete");
  auto wrong = router.match("PUT", "/thing/7");
  CHECK(wrong.kind == RouteMatch::Kind::method_not_allowed);
  CHECK(wrong.allowed == "DELETE, GET, HEAD");
  auto head = router.match("HEAD", "/thing/7");
  REQUIRE(head.kind == RouteMatch::Kind::found);
  CHECK(head.target.route == 0);
}

TEST_CASE("router backtracks from a literal branch that does not match further", "[router]") {
  Router router;
  router.add("GET", "/a/b/c", RouteTarget{0, 0}, "literal");
  router.add("GET", "/a/:x/d", RouteTarget{0, 1}, "param");
  auto match = router.match("GET", "/a/b/d");
  REQUIRE(match.kind == RouteMatch::Kind::found);
  CHECK(match.target.route == 1);
  CHECK(param(match, "x") == "b");
}

TEST_CASE("router reports conflicts naming both routes", "[router]") {
  Router router;
  router.add("POST", "/v1/cache/:id", RouteTarget{0, 0}, "file_cache: POST /v1/cache/:id");
  REQUIRE_THROWS_WITH(
      router.add("POST", "/v1/cache/:id", RouteTarget{1, 0}, "other: POST /v1/cache/:id"),
      Catch::Contains("file_cache: POST /v1/cache/:id"));
  REQUIRE_THROWS_AS(router.add("GET", "/v1/cache/:key", RouteTarget{1, 1}, "renamed"),
                    depot::RouteConflict);
}

TEST_CASE("router finds the owning service of an unknown path by the longest mount", "[router]") {
  Router router;
  router.add_mount("/", 0);
  router.add_mount("/cache", 1);
  CHECK(router.match("GET", "/cache/nothing/here").service == 1);
  CHECK(router.match("GET", "/elsewhere").service == 0);
  CHECK(Router::join("/cache/", "/v1/x") == "/cache/v1/x");
  CHECK(Router::join("/", "/v1") == "/v1");
}
