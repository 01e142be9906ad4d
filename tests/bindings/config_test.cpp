// The `config` module: environment first, then the service's section, then defaults; typed.
#include <catch2/catch.hpp>
#include <cstdlib>

#include "tests/support/http_client.hpp"
#include "tests/support/lua_fixture.hpp"
#include "tests/support/test_server.hpp"

using depot::testing::LuaFixture;

TEST_CASE("config reads the environment, then the service section, then the default", "[config]") {
  LuaFixture lua;
  setenv("DEPOT_TEST_RETRIES", "7", 1);
  unsetenv("DEPOT_TEST_MISSING");
  CHECK(lua.run(R"LUA(
    local config = require("config").of({ name = "svc", config = {
      DEPOT_TEST_RETRIES = 2, depot_test_url = "http://from-config", flag = "yes", hosts = "a, b,c" } })
    assert(config.integer("DEPOT_TEST_RETRIES", 1) == 7, "env wins")
    assert(config.string("DEPOT_TEST_URL", "x") == "http://from-config", "lower-case config key")
    assert(config.number("DEPOT_TEST_TIMEOUT", 2.5) == 2.5, "default")
    assert(config.boolean("flag") == true)
    local hosts = config.list("hosts")
    assert(#hosts == 3 and hosts[2] == "b", "list")
    assert(config.has("flag") and not config.has("DEPOT_TEST_MISSING"))
  )LUA") == "");
  unsetenv("DEPOT_TEST_RETRIES");
}

TEST_CASE("config errors name the service and the setting", "[config]") {
  LuaFixture lua;
  unsetenv("KT_AUTH_EMAIL");
  setenv("DEPOT_TEST_BAD", "three", 1);
  CHECK_THAT(
      lua.run(
          R"(require("config").of({ name = "image_cache", config = {} }).string("KT_AUTH_EMAIL"))"),
      Catch::Contains("config: image_cache: KT_AUTH_EMAIL is required"));
  CHECK_THAT(
      lua.run(R"(require("config").of({ name = "svc", config = {} }).integer("DEPOT_TEST_BAD"))"),
      Catch::Contains("DEPOT_TEST_BAD must be an integer, got 'three' (from environment variable"));
  unsetenv("DEPOT_TEST_BAD");
}

TEST_CASE("a service missing a required setting is left unmounted, the others serve", "[config]") {
  unsetenv("DEPOT_TEST_REQUIRED");
  depot::testing::TestServer server({
      {"needy",
       "local service = ...\nlocal value = "
       "require('config').of(service).string('DEPOT_TEST_REQUIRED')\n"
       "service:get('/needy', function() return value end)",
       {"/needy"}},
      {"fine", "local service = ...\nservice:get('/fine', function() return 'fine' end)"},
  });
  CHECK(depot::testing::http_request(server.port(), "GET", "/fine").body == "fine");
  CHECK(depot::testing::http_request(server.port(), "GET", "/needy/needy").status == 404);
}
