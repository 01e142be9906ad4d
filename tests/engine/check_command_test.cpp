// `depot check` over the real binary: what it reports (unknown config keys by their JSON path,
// load errors of every script, route conflicts, services a missing setting leaves unmounted,
// settings no script reads), its exit status, and that `depot serve` refuses the same unknown
// keys with the same message.
#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>

#include "tests/support/depot_process.hpp"
#include "tests/support/test_server.hpp"

using depot::testing::run_depot;
using nlohmann::json;

namespace {

// A directory with scripts/<name>/init.lua for each script and config.json.
struct Workspace {
  std::filesystem::path root = depot::testing::make_temp_dir("depot-check-");
  ~Workspace() { std::filesystem::remove_all(root); }
  void script(const std::string& name, const std::string& source) {
    std::filesystem::create_directories(root / "scripts" / name);
    std::ofstream(root / "scripts" / name / "init.lua") << source;
  }
  void config(const json& document) { std::ofstream(root / "config.json") << document.dump(2); }
  depot::testing::CommandOutcome check() {
    return run_depot(root, {"check", "--config", "config.json"});
  }
};

const char* const kHello =
    "local service = ...\nservice:get('/hello', function() return 'hi' end)\n";

}  // namespace

TEST_CASE("depot check: the default config is ok; the image cache's missing account is a warning",
          "[check]") {
  unsetenv("KT_AUTH_EMAIL");
  unsetenv("KT_AUTH_TOKEN");
  Workspace workspace;
  auto outcome =
      run_depot(DEPOT_SOURCE_DIR, {"check", "--data-dir", (workspace.root / "data").string()});
  INFO(outcome.out << outcome.err);
  CHECK(outcome.status == 0);
  CHECK_THAT(
      outcome.out,
      Catch::Contains("warning: service image_cache will not be mounted: config: image_cache: "
                      "set KT_AUTH_EMAIL and KT_AUTH_TOKEN"));
  CHECK_THAT(outcome.out,
             Catch::EndsWith("depot check: config/depot.json: ok (5 services, 1 warning)\n"));
  // Checking never writes to the data dir it would serve.
  CHECK_FALSE(std::filesystem::exists(workspace.root / "data"));
}

TEST_CASE("depot check and depot serve name unknown config keys by their path", "[check]") {
  Workspace workspace;
  workspace.script("hello", kHello);
  workspace.config({{"port", 0},
                    {"limts", {{"max_body_bytes", 10}}},
                    {"limits", {{"max_body_byte", 10}}},
                    {"services",
                     {{{"name", "hello"}, {"mount", "/"}},
                      {{"name", "hello2"}, {"script", "hello"}, {"mout", "/x"}}}}});
  auto outcome = workspace.check();
  const std::string message =
      "config file config.json: unknown config keys: limits.max_body_byte, limts, "
      "services[1].mout (the keys are listed in README.md#configuration)";
  CHECK(outcome.status == 1);
  CHECK(outcome.out ==
        "error: " + message + "\ndepot check: config.json: 1 error; depot serve would refuse it\n");

  depot::testing::DepotProcess server(workspace.root,
                                      {"--config", "config.json", "--log-format", "json"});
  CHECK(server.wait_exit() == 2);
  std::ifstream log(server.log);
  std::string line;
  REQUIRE(std::getline(log, line));
  json entry = json::parse(line);
  CHECK(entry["msg"] == "configuration error");
  CHECK(entry["error"] == message);
}

TEST_CASE("depot check names every script that fails to load", "[check]") {
  Workspace workspace;
  workspace.script("hello", kHello);
  workspace.script("broken", "local service = ...\nservice:get('/x', function() return 1 end\n");
  workspace.script("throws", "local service = ...\nerror('no database configured')\n");
  workspace.config(
      {{"services", {{{"name", "broken"}}, {{"name", "hello"}}, {{"name", "throws"}}}}});
  auto outcome = workspace.check();
  INFO(outcome.out);
  CHECK(outcome.status == 1);
  CHECK_THAT(outcome.out, Catch::Contains("error: service broken: ") &&
                              Catch::Contains("scripts/broken/init.lua:3:"));
  CHECK_THAT(outcome.out, Catch::Contains("error: service throws: ") &&
                              Catch::Contains("no database configured"));
  CHECK_THAT(outcome.out,
             Catch::EndsWith("depot check: config.json: 2 errors; depot serve would refuse it\n"));
  CHECK_THAT(outcome.out, !Catch::Contains("service hello"));
}

TEST_CASE("depot check reports route conflicts between services", "[check]") {
  Workspace workspace;
  workspace.script("hello", kHello);
  workspace.config({{"services",
                     {{{"name", "a"}, {"script", "hello"}, {"mount", "/v1"}},
                      {{"name", "b"}, {"script", "hello"}, {"mount", "/v1/"}}}}});
  auto outcome = workspace.check();
  CHECK(outcome.status == 1);
  CHECK(outcome.out ==
        "error: route b: GET /v1/hello conflicts with a: GET /v1/hello\n"
        "depot check: config.json: 1 error; depot serve would refuse it\n");
}

TEST_CASE("depot check warns about settings no script reads and services left unmounted",
          "[check]") {
  unsetenv("DEPOT_CHECK_TOKEN");
  Workspace workspace;
  workspace.script("reader",
                   "local service = ...\nlocal config = require('config').of(service)\n"
                   "local url = config.string('UPSTREAM_URL', 'http://localhost')\n"
                   "local token = config.string('DEPOT_CHECK_TOKEN')\n"
                   "service:get('/r', function() return url end)\n");
  workspace.script("settings",
                   "local service = ...\nlocal config = require('config').of(service)\n"
                   "local retries = config.integer('RETRIES', 3)\n"
                   "service:get('/s', function() return tostring(retries) end)\n");
  workspace.config(
      {{"services",
        {{{"name", "reader"}, {"config", {{"upstream_url", "http://x"}}}},
         {{"name", "settings"}, {"config", {{"RETRIES", 2}, {"RETRYS", 5}, {"timeout", 1}}}}}}});
  auto outcome = workspace.check();
  CHECK(outcome.status == 0);
  CHECK(outcome.out ==
        "warning: service reader will not be mounted: config: reader: DEPOT_CHECK_TOKEN is "
        "required (set the "
        "environment variable DEPOT_CHECK_TOKEN or services[].config.DEPOT_CHECK_TOKEN)\n"
        "warning: services[1].config.RETRYS: the settings service never reads this setting "
        "(misspelt?)\n"
        "warning: services[1].config.timeout: the settings service never reads this setting "
        "(misspelt?)\n"
        "depot check: config.json: ok (2 services, 3 warnings)\n");
}

TEST_CASE("depot check: an unreadable or malformed config file is an error", "[check]") {
  Workspace workspace;
  std::ofstream(workspace.root / "config.json") << "{ \"port\": 80,, }";
  auto outcome = workspace.check();
  CHECK(outcome.status == 1);
  CHECK_THAT(outcome.out,
             Catch::StartsWith("error: config file config.json: [json.exception.parse_error"));
  outcome = run_depot(workspace.root, {"check", "--config", "missing.json"});
  CHECK(outcome.status == 1);
  CHECK(outcome.out ==
        "error: cannot read config file missing.json\n"
        "depot check: missing.json: 1 error; depot serve would refuse it\n");
}

TEST_CASE("depot check accepts storage.kv, and refuses a kv URL that is not PostgreSQL's",
          "[check]") {
  Workspace workspace;
  workspace.script("hello", kHello);
  workspace.config({{"storage", {{"kv", "postgresql://depot:secret@127.0.0.1:1/depot"}}},
                    {"services", {{{"name", "hello"}, {"mount", "/"}}}}});
  auto accepted = workspace.check();
  INFO(accepted.out << accepted.err);
  CHECK(accepted.status == 0);
  CHECK_THAT(accepted.out, !Catch::Contains("unknown config key"));

  workspace.config({{"storage", {{"kv", "mysql://depot:secret@db/depot"}}},
                    {"services", {{{"name", "hello"}, {"mount", "/"}}}}});
  auto refused = workspace.check();
  INFO(refused.out << refused.err);
  CHECK(refused.status != 0);
  CHECK_THAT(
      refused.out + refused.err,
      Catch::Contains("storage.kv (or DEPOT_KV_URL) must be a postgres:// or postgresql:// URL"));
  CHECK_THAT(refused.out + refused.err, !Catch::Contains("secret"));
}
