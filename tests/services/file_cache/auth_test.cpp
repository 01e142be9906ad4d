// The file cache's use of KBase auth: the header forwarded as it came, answers cached for their
// `cachefor` (refused tokens briefly), concurrent lookups of one token shared, and the 500 for an
// auth service that is down or answers nonsense.
#include <catch2/catch.hpp>
#include <thread>

#include "tests/services/file_cache/file_cache_fixture.hpp"

using namespace depot::testing::file_cache;
using depot::testing::http_request;

TEST_CASE("file cache auth: a token is looked up once per worker while its answer is fresh",
          "[file_cache]") {
  FileCache cache;  // two workers
  for (int i = 0; i < 10; ++i) new_cache_id(cache.port(), kToken, "sequential");
  CHECK(cache.auth_calls() <= 2);

  // 64 requests at once with a new token: each worker sends one lookup, the others wait for it.
  std::vector<std::thread> clients;
  std::atomic<int> ok{0};
  for (int i = 0; i < 64; ++i) {
    clients.emplace_back([&] {
      if (post_cache_id(cache.port(), unique_body("parallel"), kToken2).status == 200) ++ok;
    });
  }
  for (auto& client : clients) client.join();
  CHECK(ok == 64);
  CHECK(cache.auth_calls() <= 4);
}

TEST_CASE("file cache auth: refused tokens are cached briefly, missing headers never reach auth",
          "[file_cache]") {
  FileCache cache;
  for (int i = 0; i < 6; ++i) {
    auto response =
        post_cache_id(cache.port(), unique_body("refused"), "Authorization: invalid_token");
    check_error(response, 403, "10020 Invalid token");
  }
  CHECK(cache.auth_calls() <= 2);
  // The mock of the original rig answered every other token as if none had been sent.
  auto unknown =
      post_cache_id(cache.port(), unique_body("unknown"), "Authorization: Bearer non_admin_token");
  check_error(unknown, 403, "10010 No authentication token: No user token provided");
  int before = cache.auth_calls();
  CHECK(http_request(cache.port(), "POST", "/v1/cache_id", "{}", kJson).status == 400);
  CHECK(cache.auth_calls() == before);
}

TEST_CASE("file cache auth: the token_id is the configured URL verbatim", "[file_cache]") {
  // A trailing slash is part of KBASE_AUTH_URL, hence of every cache id (as in the original).
  FileCache plain;
  FileCache slash(
      json{{"KBASE_AUTH_URL", "http://127.0.0.1:" + std::to_string(plain.port()) + "/auth/"}});
  std::string body = R"({"xyz": 123})";
  auto with_slash = json::parse(post_cache_id(slash.port(), body).body);
  CHECK(with_slash["metadata"]["token_id"] == plain.auth_url() + "/:username");
  CHECK(with_slash["cache_id"] == blake2b_hex(plain.auth_url() + "/:username\n" + body));
  CHECK(json::parse(post_cache_id(plain.port(), body).body)["cache_id"] ==
        blake2b_hex(plain.auth_url() + ":username\n" + body));
}

TEST_CASE("file cache auth: an auth service that is down or makes no sense is a 500",
          "[file_cache]") {
  FileCache down(json{{"KBASE_AUTH_URL", "http://127.0.0.1:1"}});
  auto refused = post_cache_id(down.port(), unique_body("down"));
  CHECK(refused.status == 500);
  CHECK(json::parse(refused.body) ==
        json({{"status", "error"}, {"error", "Unexpected server error"}}));

  FileCache cache;
  cache.add_script("odd_auth", R"LUA(
    local service = ...
    service:get("/html/api/V2/token", function() return 502, "<html>bad gateway</html>" end)
    service:get("/no_user/api/V2/token", function() return { name = "token_name" } end)
    service:get("/no_message/api/V2/token", function() return 401, { error = "no" } end)
  )LUA",
                   "/odd");
  for (const char* kind : {"html", "no_user", "no_message"}) {
    FileCache odd(json{
        {"KBASE_AUTH_URL", "http://127.0.0.1:" + std::to_string(cache.port()) + "/odd/" + kind}});
    auto response = post_cache_id(odd.port(), unique_body(kind));
    INFO(kind);
    check_error(response, 500, "Unexpected server error");
  }
}
