// examples/demo/run.sh: the four services with the stand-in upstreams, one command, offline —
// and the requests of examples/demo/README.md answered by each service through its stand-in.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <thread>

#include "tests/support/http_client.hpp"
#include "tests/support/test_server.hpp"

using depot::testing::http_request;
using nlohmann::json;

namespace {

const std::string kJson = "Content-Type: application/json";

// examples/demo/run.sh on a free port with its data in a scratch dir; stopped at the end.
struct Demo {
  std::filesystem::path data = depot::testing::make_temp_dir("depot-demo-");
  uint16_t port = depot::testing::free_port();
  pid_t pid = -1;
  Demo() {
    std::string port_text = std::to_string(port);
    std::string data_text = data.string();
    pid = fork();
    if (pid == 0) {
      setenv("PORT", port_text.c_str(), 1);
      setenv("DEPOT_BINARY", DEPOT_BINARY, 1);
      dup2(open((data_text + "/demo.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644), 2);
      close_range(3, ~0U, 0);
      execl("/bin/bash", "bash", DEPOT_SOURCE_DIR "/examples/demo/run.sh", "--data-dir", data_text.c_str(),
            "--log-format", "json", static_cast<char*>(nullptr));
      _exit(127);
    }
    // Refused until the demo listens: a throw here would orphan it (no destructor runs for a
    // constructor that throws), and CTest would wait on its inherited stdout until the timeout.
    for (int i = 0; i < 200; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      try {
        if (http_request(port, "GET", "/hello").status == 200) return;
      } catch (const std::exception&) {
      }
    }
  }
  ~Demo() {
    kill(pid, SIGTERM);
    waitpid(pid, nullptr, 0);
    std::filesystem::remove_all(data);
  }
  json get(const std::string& path, const std::string& headers = "") {
    return json::parse(http_request(port, "GET", path, "", headers).body, nullptr, false);
  }
  json post(const std::string& path, const json& body, const std::string& headers = "") {
    return json::parse(http_request(port, "POST", path, body.dump(), kJson + headers).body, nullptr, false);
  }
};

}  // namespace

TEST_CASE("the demo serves all four services against its stand-in upstreams", "[demo]") {
  Demo demo;
  REQUIRE(http_request(demo.port, "GET", "/hello").status == 200);

  // Image cache → the Kentik stand-in.
  json request = demo.post("/requests", {{"api_query", {{"imageType", "png"}, {"queries", {{{"query", {{"metric", "bytes"}}}}}}}}, {"ttl", 60}});
  REQUIRE(request.contains("id"));
  auto image = http_request(demo.port, "GET", "/image/" + request["id"].get<std::string>());
  CHECK(image.status == 200);
  CHECK(image.body == "png-image-bytes-default");

  // File cache → the KBase auth stand-in.
  json cache = demo.post("/v1/cache_id", {{"demo", true}}, "\r\nAuthorization: non_admin_token");
  REQUIRE(cache["status"] == "ok");
  std::string boundary = "demoBoundary";
  auto uploaded = http_request(demo.port, "POST", "/v1/cache/" + cache["cache_id"].get<std::string>(),
                               "--" + boundary + "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\r\n"
                               "cached\r\n--" + boundary + "--\r\n",
                               "Authorization: non_admin_token\r\nContent-Type: multipart/form-data; boundary=" + boundary);
  CHECK(uploaded.status == 200);
  CHECK(http_request(demo.port, "GET", "/v1/cache/" + cache["cache_id"].get<std::string>(), "",
                     "Authorization: non_admin_token").body == "cached");

  // Staging → the JupyterHub stand-in's running user.
  CHECK(demo.post("/staging/create-file/", {{"filename", "a.txt"}, {"content", "hi"}})["status"] == "success");
  json staged = demo.post("/staging/stage-data/?method=jupyter_copy&username=alice",
                          {{"data", {{"local_path_on_storage", "a.txt"}, {"relative_path", "from-depot/a.txt"}}}});
  CHECK(staged["message"] == "Data staged for user alice with method jupyter_copy");

  // Users → the Slack and Mailgun sink.
  json signup = demo.post("/servicex/registration", {{"full_name", "Bo"}, {"email", "bo@example.org"},
                                                     {"password", "pw"}, {"confirm_password", "pw"}});
  CHECK(signup["message"] == "User bo@example.org added to pending user list");
  json admin = demo.post("/servicex/login", {{"email", "admin@example.org"}, {"password", "demo-admin"}});
  REQUIRE(admin.contains("access_token"));
  json accepted = demo.post("/servicex/accept", {{"email", "bo@example.org"}},
                            "\r\nAuthorization: Bearer " + admin["access_token"].get<std::string>());
  CHECK(accepted.dump().find("bo@example.org") != std::string::npos);
  json notified;
  for (int i = 0; i < 100; ++i) {  // the webhook and the mail go out from background tasks
    notified = demo.get("/stubs/notify/out/signup")["requests"];
    json mailed = demo.get("/stubs/notify/out/mailgun/demo.example/messages")["requests"];
    if (notified.size() == 1 && mailed.size() == 1) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  CHECK(notified.size() == 1);
  CHECK(demo.get("/stubs/notify/out/mailgun/demo.example/messages")["requests"].size() == 1);
}
