// `depot test`: busted specs run inside Depot's runtime. A passing spec (one that starts a server
// with depot.spec and calls it over HTTP) exits 0; a failing one exits 1 and says which test
// failed and why; the servers and scratch dirs a spec made are gone afterwards, failed or not.
#include <catch2/catch.hpp>
#include <fstream>

#include "tests/support/depot_process.hpp"
#include "tests/support/test_server.hpp"

using depot::testing::run_depot;

namespace {

// scripts/echo: a service, and specs next to it.
struct Workspace {
  std::filesystem::path root = depot::testing::make_temp_dir("depot-test-command-");
  std::filesystem::path scripts = root / "scripts";
  Workspace() {
    std::filesystem::create_directories(scripts / "echo" / "spec");
    std::ofstream(scripts / "echo" / "init.lua") << R"LUA(
local service = ...
service:post("/echo", function(req) return { said = req:body() } end)
)LUA";
  }
  ~Workspace() { std::filesystem::remove_all(root); }
  void write_spec(const std::string& name, const std::string& source) {
    std::ofstream(scripts / "echo" / "spec" / name) << source;
  }
  depot::testing::CommandOutcome run(const std::vector<std::string>& arguments) {
    std::vector<std::string> all = {"test", "--scripts", scripts.string()};
    all.insert(all.end(), arguments.begin(), arguments.end());
    return run_depot(root, all);
  }
};

const char* const kPassing = R"LUA(
local spec = require "depot.spec"
local json = require "json"  -- a route script's module, in the spec's own state
describe("echo", function()
  it("answers over HTTP", function()
    local server = spec.start({ services = { "echo" } })
    local res = server:post("/echo", { body = "hi" })
    assert.equals(200, res.status)
    assert.same({ said = "hi" }, res:json())
    assert.equals('{"a":1}', json.encode({ a = 1 }))
  end)
end)
)LUA";

}  // namespace

TEST_CASE("depot test: passing specs exit 0, a failing one exits 1 naming the test and why",
          "[operator][specs]") {
  Workspace workspace;
  workspace.write_spec("echo_spec.lua", kPassing);
  auto passed = workspace.run({workspace.scripts.string()});
  INFO(passed.out << passed.err);
  CHECK(passed.status == 0);
  CHECK_THAT(passed.out, Catch::Contains("1 success / 0 failures / 0 errors"));

  workspace.write_spec("broken_spec.lua", R"LUA(
describe("echo", function()
  it("is expected to fail", function()
    assert.equals("expected text", "actual text")
  end)
end)
)LUA");
  auto failed = workspace.run({workspace.scripts.string()});
  INFO(failed.out << failed.err);
  CHECK(failed.status == 1);
  CHECK_THAT(failed.out, Catch::Contains("1 success / 1 failure"));
  CHECK_THAT(failed.out, Catch::Contains("echo is expected to fail"));
  CHECK_THAT(failed.out, Catch::Contains("broken_spec.lua"));
  CHECK_THAT(failed.out, Catch::Contains("actual text"));

  // A single file, and busted's own options (here its TAP output) passed through.
  auto tap = workspace.run(
      {"-o", "TAP", (workspace.scripts / "echo" / "spec" / "echo_spec.lua").string()});
  INFO(tap.out << tap.err);
  CHECK(tap.status == 0);
  CHECK_THAT(tap.out, Catch::Contains("ok 1 - echo answers over HTTP"));
}

TEST_CASE("depot test: a spec that fails or errors leaves no server and no scratch dir behind",
          "[operator][specs]") {
  Workspace workspace;
  std::filesystem::path made = workspace.root / "made.txt";
  workspace.write_spec("leaky_spec.lua", R"LUA(
local spec = require "depot.spec"
describe("a spec that never cleans up", function()
  it("fails with a server running", function()
    local server = spec.start({ services = { "echo" } })
    local dir = spec.temp_dir()
    local out = assert(io.open(")LUA" + made.string() +
                                             R"LUA(", "w"))
    out:write(server.data_dir, "\n", dir, "\n", server.port, "\n")
    out:close()
    error("the spec broke")
  end)
end)
)LUA");
  auto outcome = workspace.run({});
  INFO(outcome.out << outcome.err);
  CHECK(outcome.status == 1);
  CHECK_THAT(outcome.out, Catch::Contains("the spec broke"));
  std::ifstream in(made);
  std::string data_dir, temp_dir;
  int port = 0;
  REQUIRE(in >> data_dir >> temp_dir >> port);
  CHECK_FALSE(std::filesystem::exists(data_dir));
  CHECK_FALSE(std::filesystem::exists(temp_dir));
  CHECK(port > 0);
}

TEST_CASE("depot test: a spec file that does not load is an error, exit 1", "[operator][specs]") {
  Workspace workspace;
  workspace.write_spec("syntax_spec.lua", "describe('x', function() it('y', function() end\n");
  auto outcome = workspace.run({});
  INFO(outcome.out << outcome.err);
  CHECK(outcome.status == 1);
  CHECK_THAT(outcome.out + outcome.err, Catch::Contains("syntax_spec.lua"));
}
