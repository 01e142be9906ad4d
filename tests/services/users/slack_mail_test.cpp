// The users service's Slack and Mailgun hooks against a stub served by Depot
// (tests/stubs/notify_sink): the signup message, signed interactivity callbacks (Slack's
// published vector, the symmetric timestamp window, Approve and Reject), and the welcome mail
// sent in the background with retries, never failing the approval.
#include <thread>

#include "tests/services/users/users_fixture.hpp"
#include "tests/support/stub_server.hpp"

using namespace depot::testing::users;
using depot::testing::http_request;
using depot::testing::HttpResponse;

namespace {

const std::string kSlackSecret = "8f742231b10e8888abcd99yyyzzz85a5";

std::string hex(const std::string& bytes) {
  std::string out(bytes.size() * 2 + 1, '\0');
  sodium_bin2hex(out.data(), out.size(), reinterpret_cast<const unsigned char*>(bytes.data()),
                 bytes.size());
  out.pop_back();
  return out;
}

std::string form_value(const std::string& text) {
  std::string out;
  for (unsigned char c : text) {
    if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      char buffer[4];
      snprintf(buffer, sizeof buffer, "%%%02X", c);
      out += buffer;
    }
  }
  return out;
}

// A users service (auth on, the admin, SLACK_SIGNING_SECRET) with the sink mounted at /sink on
// the same server; "{sink}" in a setting becomes the sink's URL.
class Hooks {
 public:
  explicit Hooks(json config) {
    // The sink's port is known only once the server listens: the users service comes after.
    server_ = depot::testing::serve_stubs({{"notify_sink", "/sink"}});
    sink_ = depot::testing::url_on(*server_, "/sink/in");
    json settings = test_settings();
    settings.update({{"SLACK_SIGNING_SECRET", kSlackSecret},
                     {"SLACK_RESPONSE_URL_PREFIX", sink_ + "/slack/"},
                     {"MAIL_BACKOFF", 0.05}});
    settings = with_config(settings, config, sink_);
    depot::testing::add_service(*server_, {"users", "users", {"/"}, settings});
    admin_header();  // the start hook has made the admin (id 1)
  }

  uint16_t port() const { return server_->port(); }
  depot::testing::TestServer& server() { return *server_; }

  // The requests the sink recorded under `name`, waiting up to 5 s for at least `count`.
  json received(const std::string& name, size_t count = 1) {
    json requests;
    for (int attempt = 0; attempt < 100; ++attempt) {
      requests = json::parse(http_request(port(), "GET", "/sink/out/" + name).body)["requests"];
      if (requests.size() >= count) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return requests;
  }

  std::string admin_header() { return bearer(admin_login_when_ready(port())["access_token"]); }

  HttpResponse register_user(const std::string& email) {
    return http_request(
        port(), "POST", "/registration",
        json{{"full_name", "T"}, {"email", email}, {"password", "p"}, {"confirm_password", "p"}}
            .dump(),
        kJson);
  }

  // A signed interactivity callback for `action` on `email`, sent `skew` seconds off now, whose
  // messages go to the sink's "slack/<response_name>" (under SLACK_RESPONSE_URL_PREFIX).
  HttpResponse interact(const std::string& action, const std::string& email,
                        const std::string& response_name, long long skew = 0,
                        const std::string& secret = kSlackSecret) {
    return interact_at(action, email, sink_ + "/slack/" + response_name, skew, secret);
  }

  HttpResponse interact_at(const std::string& action, const std::string& email,
                           const std::string& response_url, long long skew = 0,
                           const std::string& secret = kSlackSecret) {
    json payload = {{"response_url", response_url},
                    {"actions", {{{"action_id", action}, {"value", email}}}},
                    {"user", {{"id", "U123"}}},
                    {"message", {{"blocks", json::parse(slack_blocks(email))}}}};
    std::string body = "payload=" + form_value(payload.dump());
    std::string timestamp = std::to_string(now_seconds() + skew);
    std::string signature = "v0=" + hex(hmac_sha256(secret, "v0:" + timestamp + ":" + body));
    return http_request(port(), "POST", "/slack", body,
                        kForm + "\r\nX-Slack-Request-Timestamp: " + timestamp +
                            "\r\nX-Slack-Signature: " + signature);
  }

  static std::string slack_blocks(const std::string& email) {
    return json::array({{{"type", "section"},
                         {"text", {{"type", "mrkdwn"}, {"text", "New signup from " + email}}}}})
        .dump();
  }

  const std::string& sink() const { return sink_; }

 private:
  std::unique_ptr<depot::testing::TestServer> server_;
  std::string sink_;
};

}  // namespace

TEST_CASE("users slack: Slack's published signature vector checks", "[users]") {
  const std::string body =
      "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id="
      "G8PSS9T3V&"
      "channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&"
      "response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%"
      "2F96rGlfmibIGlgcZRskXaIFfN&"
      "trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
  const std::string expected =
      "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
  Hooks hooks(json::object());
  hooks.server().write_script("vector", R"(
    local slack = require "users.slack"
    local service = ...
    service:post("/check", function(req)
      return { signed = slack.signed(req:header("X-Secret"), req:header("X-Ts"), req:body(), req:header("X-Sig")) }
    end))");
  REQUIRE(hooks.server()
              .server()
              .add_service({"vector", hooks.server().scripts_dir() / "vector", {"/vector"}})
              .empty());
  auto check = [&](const std::string& signature) {
    return json::parse(
        http_request(hooks.port(), "POST", "/vector/check", body,
                     "X-Secret: " + kSlackSecret + "\r\nX-Ts: 1531420618\r\nX-Sig: " + signature)
            .body)["signed"];
  };
  CHECK(check(expected) == true);
  CHECK(check("v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b504") == false);
  CHECK(check("v1=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503") == false);
  CHECK("v0=" + hex(hmac_sha256(kSlackSecret, "v0:1531420618:" + body)) == expected);
}

TEST_CASE(
    "users slack: a pending signup posts the Approve/Reject message, a failing hook is only logged",
    "[users]") {
  Hooks hooks(json{{"SIGNUP_WEBHOOK_URL", "{sink}/hook"}});
  check_answer(hooks.register_user("ann@example.org"), 200,
               {{"message", "User ann@example.org added to pending user list"}});
  json requests = hooks.received("hook");
  REQUIRE(requests.size() == 1);
  json message = json::parse(requests[0]["body"].get<std::string>());
  CHECK(message["text"] == "New signup from ann@example.org.");
  CHECK(message["blocks"][0]["text"]["text"] == "New signup from ann@example.org");
  CHECK(message["blocks"][1]["elements"][0]["action_id"] == "accept_user");
  CHECK(message["blocks"][1]["elements"][0]["value"] == "ann@example.org");
  CHECK(message["blocks"][1]["elements"][0]["style"] == "primary");
  CHECK(message["blocks"][1]["elements"][1]["action_id"] == "reject_user");
  CHECK(message["blocks"][1]["elements"][1]["style"] == "danger");

  Hooks failing(json{{"SIGNUP_WEBHOOK_URL", "{sink}/fail/hook"}});
  check_answer(failing.register_user("bob@example.org"), 200,
               {{"message", "User bob@example.org added to pending user list"}});
  CHECK(failing.received("fail/hook").size() == 1);  // a 500 is not retried
}

TEST_CASE("users slack: interactivity callbacks are verified, then approve or reject", "[users]") {
  Hooks hooks(json::object());
  REQUIRE(hooks.register_user("ann@example.org").status == 200);
  REQUIRE(hooks.register_user("bob@example.org").status == 200);
  // Too old, too far in the future, a wrong signature: refused, and told at the response_url.
  CHECK(hooks.interact("accept_user", "ann@example.org", "old", -301).status == 403);
  CHECK(hooks.interact("accept_user", "ann@example.org", "future", 301).status == 403);
  CHECK(hooks.interact("accept_user", "ann@example.org", "forged", 0, "wrong").status == 401);
  CHECK(json::parse(hooks.received("slack/old")[0]["body"].get<std::string>()) ==
        json{{"response_type", "ephemeral"},
             {"replace_original", false},
             {"text", "Sorry, this request has expired."}});
  CHECK(json::parse(hooks.received("slack/future")[0]["body"].get<std::string>())["text"] ==
        "Sorry, this request has expired.");
  CHECK(json::parse(hooks.received("slack/forged")[0]["body"].get<std::string>())["text"] ==
        "Slack Verification Failed: Signatures did not match.");
  // Missing headers are a client error, not the original's 500.
  CHECK(http_request(hooks.port(), "POST", "/slack", "payload=%7B%7D", kForm).status == 400);
  std::string admin = hooks.admin_header();
  CHECK(
      json::parse(http_request(hooks.port(), "GET", "/pending", "", admin).body)["users"].size() ==
      2);

  auto approved = hooks.interact("accept_user", "ann@example.org", "approved");
  CHECK(approved.status == 200);
  CHECK(approved.body.empty());
  json update = json::parse(hooks.received("slack/approved")[0]["body"].get<std::string>());
  CHECK(update["replace_original"] == true);
  CHECK(update["blocks"][0] == json::parse(Hooks::slack_blocks("ann@example.org"))[0]);
  CHECK(update["blocks"][1]["elements"][0]["text"] == "Approved by <@U123>");

  CHECK(hooks.interact("reject_user", "bob@example.org", "rejected").status == 200);
  CHECK(json::parse(hooks.received("slack/rejected")[0]["body"]
                        .get<std::string>())["blocks"][1]["elements"][0]["text"] ==
        "Rejected by <@U123>");
  CHECK(hooks.interact("accept_user", "zed@example.org", "unknown").status == 404);
  CHECK(json::parse(hooks.received("slack/unknown")[0]["body"].get<std::string>())["text"] ==
        "No user registered with email: zed@example.org");
  json users = json::parse(http_request(hooks.port(), "GET", "/users", "", admin).body)["users"];
  REQUIRE(users.size() == 2);
  CHECK(users[1]["email"] == "ann@example.org");
  CHECK(users[1]["pending"] == false);
}

TEST_CASE("users slack: a callback naming a response_url outside Slack gets nothing posted there",
          "[users]") {
  Hooks hooks(json::object());
  REQUIRE(hooks.register_user("ann@example.org").status == 200);
  std::string elsewhere = hooks.sink() + "/elsewhere";
  // Forged, expired, then properly signed: each message is posted before the answer, so the
  // sink would hold them by now.
  CHECK(hooks.interact_at("accept_user", "ann@example.org", elsewhere, 0, "wrong").status == 401);
  CHECK(hooks.interact_at("accept_user", "ann@example.org", elsewhere, -301).status == 403);
  CHECK(hooks.interact_at("accept_user", "ann@example.org", elsewhere).status == 200);
  json requests =
      json::parse(http_request(hooks.port(), "GET", "/sink/out/elsewhere").body)["requests"];
  CHECK(requests.empty());
  Hooks unconfigured(json{{"SLACK_SIGNING_SECRET", ""}});
  CHECK(
      unconfigured.interact_at("accept_user", "ann@example.org", unconfigured.sink() + "/elsewhere")
          .status == 403);
  CHECK(
      json::parse(http_request(unconfigured.port(), "GET", "/sink/out/elsewhere").body)["requests"]
          .empty());
}

TEST_CASE("users slack: without SLACK_SIGNING_SECRET callbacks are refused with 403", "[users]") {
  Hooks hooks(json{{"SLACK_SIGNING_SECRET", ""}});
  CHECK(hooks.interact("accept_user", "ann@example.org", "unconfigured").status == 403);
  CHECK(json::parse(hooks.received("slack/unconfigured")[0]["body"].get<std::string>())["text"] ==
        "ServiceX has no Slack app configured.");
}

TEST_CASE("users mail: approval queues the welcome mail, retried until Mailgun takes it",
          "[users]") {
  Hooks hooks(json{{"MAILGUN_API_URL", "{sink}/flaky"},
                   {"MAILGUN_DOMAIN", "mg.example.org"},
                   {"MAILGUN_API_KEY", "key-1"}});
  REQUIRE(hooks.register_user("ann@example.org").status == 200);
  check_answer(http_request(hooks.port(), "POST", "/accept", R"({"email": "ann@example.org"})",
                            kJson + "\r\n" + hooks.admin_header()),
               200, {{"message", "user ann@example.org now ready for access"}});
  json requests = hooks.received("flaky/mg.example.org/messages", 2);
  REQUIRE(requests.size() == 2);  // the stub failed the first
  CHECK(requests[1]["headers"]["authorization"] ==
        "Basic " + std::string("YXBpOmtleS0x"));  // api:key-1
  std::string body = requests[1]["body"];
  CHECK(body.find("from=ServiceX%20%3Cnoreply%40mg.example.org%3E") != std::string::npos);
  CHECK(body.find("to=ann%40example.org") != std::string::npos);
  CHECK(body.find("subject=Welcome%20to%20ServiceX%21") != std::string::npos);
  CHECK(body.find("html=") != std::string::npos);

  // A Mailgun that always fails: the approval stands.
  Hooks failing(json{{"MAILGUN_API_URL", "{sink}/fail"},
                     {"MAILGUN_DOMAIN", "mg.example.org"},
                     {"MAILGUN_API_KEY", "k"},
                     {"MAIL_ATTEMPTS", 2}});
  REQUIRE(failing.register_user("bob@example.org").status == 200);
  CHECK(http_request(failing.port(), "POST", "/accept", R"({"email": "bob@example.org"})",
                     kJson + "\r\n" + failing.admin_header())
            .status == 200);
  CHECK(failing.received("fail/mg.example.org/messages", 2).size() == 2);
  CHECK(http_request(failing.port(), "POST", "/login",
                     R"({"email": "bob@example.org", "password": "p"})", kJson)
            .status == 200);
}
