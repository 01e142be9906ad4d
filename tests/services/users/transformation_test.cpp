// The transformation request API over real HTTP (specs/users.md §4.9, §4.10): the submit cases of
// the original's test_submit.py against a Docker Hub stub served by Depot (tests/stubs/docker_hub),
// ownership (a user sees and cancels only their own requests, an admin all), object-store keys
// never answered, listing past one page, and the worker protocol: token, leases, reports, and a
// worker process killed mid-request, whose lease runs out and whose request another worker
// finishes.
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <regex>

#include "tests/services/users/users_fixture.hpp"
#include "tests/support/stub_server.hpp"

using namespace depot::testing::users;
using depot::testing::http_request;
using depot::testing::HttpResponse;
using depot::testing::TestServer;

namespace {

const std::string kWorkerToken = "worker-token-for-tests";
const std::string kDefaultImage = "sslhep/servicex_func_adl_xaod_transformer:develop";
const std::string kCodeGenImage = "sslhep/servicex_code_gen_func_adl_xaod:develop";
const std::string kMinioSecret = "leftfoot1";
const std::string kMinioAccess = "miniouser";

// Docker Hub's tag API, knowing two images.
class DockerHub {
 public:
  DockerHub()
      : server_(depot::testing::serve_stubs(
            {{"docker_hub", "/", {{"images", {kDefaultImage, "ssl-hep/func_adl:latest"}}}}},
            [](depot::Options& options) { options.threads = 1; })) {}
  std::string url() const { return depot::testing::url_on(*server_, ""); }
  int lookups() { return body_of(http_request(server_->port(), "GET", "/lookups"))["count"]; }

 private:
  std::unique_ptr<TestServer> server_;
};

// The users service with the transformation settings of the original's test configuration.
json transformation_settings(const DockerHub& hub, json extra = json::object()) {
  json settings = {{"TRANSFORMER_DEFAULT_IMAGE", kDefaultImage},
                   {"CODE_GEN_IMAGE", kCodeGenImage},
                   {"APP_VERSION", "3.14.15"},
                   {"VALID_DID_SCHEMES", "[\"rucio\", \"cernopendata\"]"},
                   {"DID_FINDER_DEFAULT_SCHEME", "rucio"},
                   {"TRANSFORMER_DOCKER_REPO_URL", hub.url()},
                   {"SERVICEX_WORKER_TOKEN", kWorkerToken}};
  settings.update(extra);
  return settings;
}

// test_submit.py's _generate_transformation_request.
json request_body(json changes = json::object()) {
  json body = {{"did", "rucio://123-45-678"},
               {"columns", "e.e, e.p"},
               {"result-destination", "object-store"},
               {"workers", 10}};
  for (auto& [key, value] : changes.items()) body[key] = value;
  return body;
}

json xaod_root_file_request() {
  return {{"did", "123-45-678"},
          {"selection", "test-string"},
          {"image", "ssl-hep/func_adl:latest"},
          {"result-destination", "object-store"},
          {"result-format", "root-file"},
          {"workers", 10}};
}

bool is_original_time(const json& value) {
  static const std::regex format(R"(^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$)");
  return value.is_string() && std::regex_match(value.get<std::string>(), format);
}

// A signed-in user of `users`: its id and its Authorization header.
struct Account {
  int id;
  std::string header;
};

Account account(Users& users, const std::string& email) {
  json login = users.approved_user(email);
  json claims = verify(login["access_token"]);
  json listed = body_of(users.get("/users", users.admin_header()));
  for (const auto& user : listed["users"]) {
    if (user["email"] == email) return {user["id"].get<int>(), bearer(login["access_token"])};
  }
  throw std::runtime_error("no user " + email);
}

std::string submitted(Users& users, const Account& who, const json& body) {
  auto response = users.post("/servicex/transformation", body, who.header);
  INFO(response.body);
  REQUIRE(response.status == 200);
  return body_of(response)["request_id"];
}

// An external transformer process, as far as the server can tell: a name and the worker token.
class Worker {
 public:
  Worker(Users& users, std::string name) : users_(users), name_(std::move(name)) {}
  HttpResponse lease() {
    return users_.post("/servicex/internal/lease", {{"worker", name_}}, auth());
  }
  HttpResponse call(const std::string& method, const std::string& id, const std::string& path,
                    const json& body = json::object()) {
    return http_request(users_.port(), method, "/servicex/internal/transformation/" + id + path,
                        body.dump(), kJson + "\r\n" + auth());
  }
  HttpResponse file_complete(const std::string& id, int file_id, const std::string& status) {
    return call("PUT", id, "/file-complete",
                {{"file-id", file_id},
                 {"file-path", "root://f" + std::to_string(file_id)},
                 {"status", status},
                 {"total-time", 3},
                 {"total-bytes", 100},
                 {"total-events", 10},
                 {"avg-rate", 2.5},
                 {"num-messages", 4}});
  }

 private:
  std::string auth() const { return bearer(kWorkerToken); }
  Users& users_;
  std::string name_;
};

// tests/services/users/transformer_worker.py as a child process, killed with SIGKILL.
class WorkerProcess {
 public:
  WorkerProcess(uint16_t port, const std::string& name, const std::vector<std::string>& files) {
    std::vector<std::string> arguments = {
        "/usr/bin/python3", DEPOT_SOURCE_DIR "/tests/services/users/transformer_worker.py",
        "http://127.0.0.1:" + std::to_string(port), kWorkerToken, name};
    arguments.insert(arguments.end(), files.begin(), files.end());
    std::vector<char*> argv;
    for (auto& argument : arguments) argv.push_back(argument.data());
    argv.push_back(nullptr);
    if (posix_spawn(&pid_, argv[0], nullptr, nullptr, argv.data(), environ) != 0) {
      throw std::runtime_error("could not start the worker process");
    }
  }
  void kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  ~WorkerProcess() { kill(); }
  WorkerProcess(const WorkerProcess&) = delete;
  WorkerProcess& operator=(const WorkerProcess&) = delete;

 private:
  pid_t pid_ = -1;
};

}  // namespace

TEST_CASE("transformation: submit checks as the original's test_submit.py",
          "[users][transformation]") {
  DockerHub hub;
  Users users(transformation_settings(hub));
  Account ann = account(users, "ann@example.org");
  auto post = [&](const json& body) {
    return users.post("/servicex/transformation", body, ann.header);
  };
  const std::string malformed = "The json request was malformed: 400 Bad Request: ";

  // test_submit_transformation_request_bad, _bad_result_dest, _bad_wrong_dest_for_format,
  // _bad_result_format: reqparse's failures, naming the argument.
  check_answer(
      post({{"timestamp", "20190101"}}), 400,
      {{"message",
        malformed + "result-destination: Missing required parameter in the JSON body or the post "
                    "body or the query string"}});
  check_answer(post(request_body({{"result-destination", "foo"}})), 400,
               {{"message", malformed + "result-destination: foo is not a valid choice"}});
  check_answer(
      post(request_body({{"result-format", "root-file"}, {"result-destination", "minio"}})), 400,
      {{"message", malformed + "result-destination: minio is not a valid choice"}});
  check_answer(post(request_body({{"result-format", "foo"}})), 400,
               {{"message", malformed + "result-format: foo is not a valid choice"}});
  check_answer(
      post(request_body({{"workers", "many"}})), 400,
      {{"message", malformed + "workers: invalid literal for int() with base 10: \"many\""}});
  check_answer(post(request_body({{"title", std::string(129, 't')}})), 400,
               {{"message", malformed + "title: at most 128 characters"}});
  // _bad_workflow
  check_answer(post(request_body({{"columns", nullptr}, {"selection", nullptr}})), 400,
               {{"message",
                 "Failed to submit transform request: Cannot determine workflow from argument - "
                 "selection or columns must be given, and not both"}});
  check_answer(post(request_body({{"selection", "(lambda e: e)"}})), 400,
               {{"message",
                 "Failed to submit transform request: Cannot determine workflow from argument - "
                 "selection or columns must be given, and not both"}});
  // _bad_did_scheme
  check_answer(post(request_body({{"did", "foobar://my-did"}})), 400,
               {{"message", "DID scheme is not supported: foobar"}});
  // _missing_dataset_source, _duplicate_dataset_source
  check_answer(post(request_body({{"did", nullptr}, {"file-list", json::array()}})), 400,
               {{"message", malformed + "Must provide did or file-list but not both"}});
  check_answer(
      post(request_body({{"did", "This did"}, {"file-list", {"file1.root", "file2.root"}}})), 400,
      {{"message", malformed + "Must provide did or file-list but not both"}});
  // _request_bad_image
  check_answer(
      post(request_body({{"image", "ssl-hep/foo:latest"}})), 400,
      {{"message", "Requested transformer docker image doesn't exist: ssl-hep/foo:latest"}});
  auto unparsable = http_request(users.port(), "POST", "/servicex/transformation", "{nope",
                                 kJson + "\r\n" + ann.header);
  CHECK(unparsable.status == 400);
  CHECK(body_of(unparsable)["message"].get<std::string>().rfind(
            malformed + "Failed to decode JSON object: ", 0) == 0);
  // auth_required guards it.
  check_answer(users.post("/servicex/transformation", request_body()), 401,
               {{"message", "Missing Authorization Header"}});

  SECTION("test_submit_transformation: the record, owned by the user") {
    std::string id = submitted(users, ann, request_body());
    CHECK(std::regex_match(
        id, std::regex("^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")));
    json record = body_of(users.get("/servicex/transformation/" + id, ann.header));
    CHECK(record["request_id"] == id);
    CHECK(record["did"] == "rucio://123-45-678");
    CHECK(record["finish-time"].is_null());
    CHECK(is_original_time(record["submit-time"]));
    CHECK(record["title"].is_null());
    CHECK(record["columns"] == "e.e, e.p");
    CHECK(record["selection"].is_null());
    CHECK(record["image"] == kDefaultImage);
    CHECK(record["workers"] == 10);
    CHECK(record["result-destination"] == "object-store");
    CHECK(record["result-format"] == "arrow");
    CHECK(record["workflow-name"] == "straight_transform");
    CHECK(record["app-version"] == "3.14.15");
    CHECK(record["code-gen-image"] == kCodeGenImage);
    CHECK(record["status"] == "Submitted");
    CHECK(record["submitted-by"] == ann.id);
    CHECK(record["files-processed"] == 0);
    CHECK(record["files-remaining"].is_null());  // the DID is not looked up yet
    // The int id finds it too.
    CHECK(body_of(users.get("/servicex/transformation/" + std::to_string(record["id"].get<int>()),
                            ann.header)) == record);
  }
  SECTION("test_submit_transformation_default_scheme") {
    std::string id = submitted(users, ann, request_body({{"did", "123-45-678"}}));
    CHECK(body_of(users.get("/servicex/transformation/" + id, ann.header))["did"] ==
          "rucio://123-45-678");
    std::string other = submitted(users, ann, request_body({{"did", "cernopendata://1507"}}));
    CHECK(body_of(users.get("/servicex/transformation/" + other, ann.header))["did"] ==
          "cernopendata://1507");
  }
  SECTION("test_submit_transformation_with_root_file") {
    std::string id = submitted(users, ann, xaod_root_file_request());
    json record = body_of(users.get("/servicex/transformation/" + id, ann.header));
    CHECK(record["did"] == "rucio://123-45-678");
    CHECK(record["columns"].is_null());
    CHECK(record["selection"] == "test-string");
    CHECK(record["image"] == "ssl-hep/func_adl:latest");
    CHECK(record["result-format"] == "root-file");
    CHECK(record["workflow-name"] == "selection_codegen");
  }
  SECTION("test_submit_transformation_file_list") {
    std::string id =
        submitted(users, ann, request_body({{"did", nullptr}, {"file-list", {"file1", "file2"}}}));
    json record = body_of(users.get("/servicex/transformation/" + id, ann.header));
    CHECK(record["did"] == "File List Provided in Request");
    CHECK(record["files-remaining"] == 2);
  }
  SECTION("test_submit_transformation_with_title") {
    std::string id = submitted(users, ann, request_body({{"title", "Things Fall Apart"}}));
    CHECK(body_of(users.get("/servicex/transformation/" + id, ann.header))["title"] ==
          "Things Fall Apart");
  }
}

TEST_CASE("transformation: TRANSFORMER_VALIDATE_DOCKER_IMAGE off asks no registry",
          "[users][transformation]") {
  DockerHub hub;
  Users users(transformation_settings(hub, {{"TRANSFORMER_VALIDATE_DOCKER_IMAGE", "false"}}));
  Account ann = account(users, "ann@example.org");
  submitted(users, ann, request_body({{"image", "ssl-hep/foo:latest"}}));
  CHECK(hub.lookups() == 0);
}

TEST_CASE("transformation: a full dispatch queue is the original's 503",
          "[users][transformation]") {
  DockerHub hub;
  Users users(transformation_settings(hub, {{"SERVICEX_MAX_PENDING_REQUESTS", 1}}));
  Account ann = account(users, "ann@example.org");
  submitted(users, ann, request_body());
  check_answer(users.post("/servicex/transformation", request_body(), ann.header), 503,
               {{"message", "Error setting up transformer queues"}});
}

TEST_CASE("transformation: object-store requests never answer the object store's keys",
          "[users][transformation]") {
  DockerHub hub;
  Users users(transformation_settings(hub, {{"OBJECT_STORE_ENABLED", "true"},
                                            {"MINIO_URL", "localhost:9000"},
                                            {"MINIO_ACCESS_KEY", kMinioAccess},
                                            {"MINIO_SECRET_KEY", kMinioSecret}}));
  Account ann = account(users, "ann@example.org");
  // test_submit_transformation_with_object_store
  std::string id = submitted(
      users, ann,
      request_body({{"result-destination", "object-store"}, {"result-format", "parquet"}}));
  json record = body_of(users.get("/servicex/transformation/" + id, ann.header));
  CHECK(record["result-format"] == "parquet");
  CHECK(record["minio-endpoint"] == "localhost:9000");
  CHECK(record["minio-secured"] == false);
  CHECK_FALSE(record.contains("minio-secret-key"));
  CHECK_FALSE(record.contains("minio-access-key"));
  Worker worker(users, "w1");
  std::vector<HttpResponse> answers = {
      users.get("/servicex/transformation/" + id, ann.header),
      users.get("/servicex/transformation", ann.header),
      users.get("/servicex/transformation", users.admin_header()),
      users.get("/servicex/transformation/" + id + "/status?details=true", ann.header),
      worker.lease()};
  for (const auto& answer : answers) {
    INFO(answer.body);
    CHECK(answer.status == 200);
    CHECK(answer.body.find(kMinioSecret) == std::string::npos);
    CHECK(answer.body.find(kMinioAccess) == std::string::npos);
  }
}

TEST_CASE("transformation: a user sees and cancels only their own requests, an admin all",
          "[users][transformation]") {
  DockerHub hub;
  Users users(transformation_settings(hub));
  Account ann = account(users, "ann@example.org");
  Account bob = account(users, "bob@example.org");
  std::string ann_first = submitted(users, ann, request_body());
  std::string ann_second = submitted(users, ann, request_body({{"title", "second"}}));
  std::string bobs = submitted(users, bob, request_body());
  auto ids = [](const HttpResponse& response) {
    INFO(response.body);
    REQUIRE(response.status == 200);
    std::vector<std::string> list;
    json body = body_of(response);
    for (const auto& record : body["requests"]) list.push_back(record["request_id"]);
    return list;
  };
  using List = std::vector<std::string>;
  CHECK(ids(users.get("/servicex/transformation", ann.header)) == List{ann_first, ann_second});
  CHECK(ids(users.get("/servicex/transformation", bob.header)) == List{bobs});
  CHECK(
      ids(users.get("/servicex/transformation?submitted_by=" + std::to_string(bob.id), ann.header))
          .empty());
  CHECK(ids(users.get("/servicex/transformation?submitted_by=" + std::to_string(ann.id),
                      ann.header)) == List{ann_first, ann_second});
  CHECK(ids(users.get("/servicex/transformation", users.admin_header())) ==
        List{ann_first, ann_second, bobs});
  CHECK(ids(users.get("/servicex/transformation?submitted_by=" + std::to_string(bob.id),
                      users.admin_header())) == List{bobs});
  check_answer(users.get("/servicex/transformation?submitted_by=bob", ann.header), 400,
               {{"message", {{"submitted_by", "invalid literal for int() with base 10: 'bob'"}}}});

  // Another user's request does not exist for Ann, whatever she asks of it.
  json not_found = {{"message", "Transformation request not found with id: " + bobs}};
  for (const std::string path : {"", "/status", "/errors", "/cancel"}) {
    check_answer(users.get("/servicex/transformation/" + bobs + path, ann.header), 404, not_found);
  }
  CHECK(body_of(users.get("/servicex/transformation/" + bobs, bob.header))["status"] ==
        "Submitted");
  CHECK(users.get("/servicex/transformation/" + bobs, users.admin_header()).status == 200);
  check_answer(users.get("/servicex/transformation/no-such-id", users.admin_header()), 404,
               {{"message", "Transformation request not found with id: no-such-id"}});
  // Ids longer than any request's (and than a kv key may be), or numbers beyond any int id.
  for (const std::string& reference : {std::string(600, 'a'), std::string(20, '9')}) {
    for (const char* path : {"", "/status", "/errors", "/cancel"}) {
      check_answer(users.get("/servicex/transformation/" + reference + path, users.admin_header()),
                   404, {{"message", "Transformation request not found with id: " + reference}});
    }
  }

  // The owner cancels; a second cancel finds it no longer in progress; an admin may cancel any.
  check_answer(users.get("/servicex/transformation/" + bobs + "/cancel", bob.header), 200,
               {{"message", "Canceled transformation request " + bobs}});
  check_answer(users.get("/servicex/transformation/" + bobs + "/cancel", bob.header), 400,
               {{"message", "Transform request with id " + bobs + " is not in progress."}});
  json status = body_of(users.get("/servicex/transformation/" + bobs + "/status", bob.header));
  CHECK(status["status"] == "Canceled");
  CHECK(status["request-id"] == bobs);
  CHECK(is_original_time(status["finish-time"]));
  check_answer(users.get("/servicex/transformation/" + ann_first + "/cancel", users.admin_header()),
               200, {{"message", "Canceled transformation request " + ann_first}});
  CHECK(body_of(users.get("/servicex/transformation/" + ann_second, ann.header))["status"] ==
        "Submitted");
}

TEST_CASE("transformation: the list goes past one page, in submission order",
          "[users][transformation]") {
  DockerHub hub;
  Users users(transformation_settings(hub, {{"TRANSFORMER_VALIDATE_DOCKER_IMAGE", "false"}}));
  Account ann = account(users, "ann@example.org");
  std::vector<std::string> expected;
  for (int i = 0; i < 450; ++i) expected.push_back(submitted(users, ann, request_body()));
  auto response = users.get("/servicex/transformation", ann.header);
  REQUIRE(response.status == 200);
  CHECK(response.header("transfer-encoding") == "chunked");
  std::vector<std::string> listed;
  json body = body_of(response);
  for (const auto& record : body["requests"]) listed.push_back(record["request_id"]);
  CHECK(listed == expected);
}

TEST_CASE("transformation: the worker API needs SERVICEX_WORKER_TOKEN and the token",
          "[users][transformation]") {
  DockerHub hub;
  {
    Users users(transformation_settings(hub, {{"SERVICEX_WORKER_TOKEN", ""}}));
    check_answer(Worker(users, "w1").lease(), 403,
                 {{"message", "The worker API is disabled: SERVICEX_WORKER_TOKEN is not set"}});
  }
  Users users(transformation_settings(hub));
  check_answer(users.post("/servicex/internal/lease", {{"worker", "w1"}}), 401,
               {{"message", "Missing Authorization Header"}});
  check_answer(
      users.post("/servicex/internal/lease", {{"worker", "w1"}}, bearer(kWorkerToken + "x")), 401,
      {{"message", "Not Authorized: invalid worker token"}});
  check_answer(
      users.post("/servicex/internal/transformation/x/start", json::object(), bearer("nope")), 401,
      {{"message", "Not Authorized: invalid worker token"}});
  // A user's access token is no worker token.
  Account ann = account(users, "ann@example.org");
  CHECK(users.post("/servicex/internal/lease", {{"worker", "w1"}}, ann.header).status == 401);
  check_answer(users.post("/servicex/internal/lease", json::object(), bearer(kWorkerToken)), 400,
               {{"message", {{"worker", "This field cannot be blank"}}}});
  CHECK(Worker(users, "w1").lease().status == 204);
  check_answer(Worker(users, "w1").call("POST", "no-such-id", "/start"), 404,
               {{"message", "Request not found with id: 'no-such-id'"}});
  std::string too_long(600, 'a');
  check_answer(Worker(users, "w1").call("POST", too_long, "/start"), 404,
               {{"message", "Request not found with id: '" + too_long + "'"}});
  check_answer(
      users.get("/servicex/internal/transformation/" + too_long + "/files", bearer(kWorkerToken)),
      404, {{"message", "Request not found with id: '" + too_long + "'"}});
}

TEST_CASE(
    "transformation: a worker killed mid-request loses its lease and another finishes the request",
    "[users][transformation]") {
  DockerHub hub;
  Users users(transformation_settings(hub, {{"SERVICEX_WORKER_LEASE_SECONDS", 1}}));
  Account ann = account(users, "ann@example.org");
  std::string id = submitted(users, ann, request_body());
  auto status_of = [&] {
    return body_of(users.get("/servicex/transformation/" + id + "/status", ann.header));
  };
  Worker second(users, "second");

  // The first worker is a real process: it leases the request, finds three files, starts,
  // transforms the first, then reports that it is alive every 0.2 s.
  WorkerProcess first(users.port(), "first", {"root://f1", "root://f2", "root://f3"});
  json status;
  for (int attempt = 0; attempt < 100 && status["files-processed"] != 1; ++attempt) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    status = status_of();
  }
  INFO(status.dump());
  REQUIRE(status["files-processed"] == 1);
  CHECK(status["status"] == "Running");
  CHECK(status["files-remaining"] == 2);
  // While it reports, its lease is renewed past the 1 s it lasts: the second worker gets nothing.
  for (int i = 0; i < 6; ++i) {
    CHECK(second.lease().status == 204);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }

  // Killed: no more reports. Once its lease has run out the request goes to the second worker.
  first.kill();
  HttpResponse taken;
  for (int attempt = 0; attempt < 40 && taken.status != 200; ++attempt) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    taken = second.lease();
  }
  INFO(taken.body);
  REQUIRE(taken.status == 200);
  json again = body_of(taken);
  CHECK(again["request_id"] == id);
  CHECK(again["did"] == "123-45-678");
  CHECK(again["scheme"] == "rucio");
  CHECK(again["lease"] == 2);
  CHECK(again["fileset-complete"] == true);
  CHECK(again["service-endpoint"] == "http://127.0.0.1:" + std::to_string(users.port()) +
                                         "/servicex/internal/transformation/" + id);
  CHECK(again["request"]["status"] == "Running");
  CHECK(again["request"]["columns"] == "e.e, e.p");

  // It learns which files are left and finishes them; the first file, reported again, does not
  // count twice.
  json listed = body_of(second.call("GET", id, "/files"));
  REQUIRE(listed["files"].size() == 3);
  std::vector<int> files;
  for (const auto& file : listed["files"]) files.push_back(file["file-id"]);
  CHECK(listed["files"][0]["done"] == true);
  CHECK(listed["files"][1]["done"] == false);
  CHECK(listed["files"][2]["paths"] == "root://f3");
  CHECK(listed["next"].is_null());
  json page = body_of(second.call("GET", id, "/files?limit=2"));
  CHECK(page["files"].size() == 2);
  CHECK(page["next"] == files[1]);
  json rest = body_of(second.call("GET", id, "/files?after=" + std::to_string(files[1])));
  CHECK(rest["files"].size() == 1);
  CHECK(rest["files"][0]["file-id"] == files[2]);

  CHECK(second.call("POST", id, "/start").status == 200);
  CHECK(second.file_complete(id, files[0], "success").status == 200);
  CHECK(second.file_complete(id, files[1], "success").status == 200);
  CHECK(second
            .call("POST", id, "/" + std::to_string(files[2]) + "/status",
                  {{"timestamp", "2026-12-01T12:00:01.000000"},
                   {"status-code", "failure"},
                   {"pod-name", "second"},
                   {"info", "segfault"}})
            .status == 200);
  status = status_of();
  CHECK(status["status"] == "Running");
  CHECK(status["finish-time"].is_null());
  CHECK(second.file_complete(id, files[2], "failure").status == 200);

  status = status_of();
  CHECK(status["status"] == "Complete");
  CHECK(status["files-processed"] == 2);
  CHECK(status["files-skipped"] == 1);
  CHECK(status["files-remaining"] == 0);
  CHECK(is_original_time(status["submit-time"]));
  CHECK(is_original_time(status["finish-time"]));
  CHECK(status["stats"] == json{{"total-messages", 12},
                                {"min-time", 3},
                                {"max-time", 3},
                                {"avg-time", 3.0},
                                {"total-time", 9},
                                {"avg-rate", 2.5},
                                {"total-bytes", 300},
                                {"total-events", 30}});
  json detailed =
      body_of(users.get("/servicex/transformation/" + id + "/status?details=true", ann.header));
  REQUIRE(detailed["details"].size() == 3);
  CHECK(detailed["details"][2]["transform_status"] == "failure");
  CHECK(detailed["details"][2]["file-path"] == "root://f" + std::to_string(files[2]));
  detailed.erase("details");
  CHECK(detailed == status);
  check_answer(
      users.get("/servicex/transformation/" + id + "/errors", ann.header), 200,
      {{"errors",
        {{{"pod-name", "second"}, {"file", "root://f3"}, {"events", 10}, {"info", "segfault"}}}}});

  // Done means done: no worker gets it again, even after the lease would have run out.
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  CHECK(second.lease().status == 204);
  CHECK(Worker(users, "third").lease().status == 204);
  check_answer(users.get("/servicex/transformation/" + id + "/cancel", ann.header), 400,
               {{"message", "Transform request with id " + id + " is not in progress."}});
}

TEST_CASE("transformation: canceled, fatal and abandoned requests", "[users][transformation]") {
  DockerHub hub;
  Users users(transformation_settings(
      hub, {{"SERVICEX_WORKER_LEASE_SECONDS", 1}, {"SERVICEX_WORKER_MAX_LEASES", 1}}));
  Account ann = account(users, "ann@example.org");
  Worker worker(users, "w1");

  SECTION(
      "a request canceled before a lease is never handed out; one canceled later refuses start") {
    std::string early = submitted(users, ann, request_body());
    REQUIRE(users.get("/servicex/transformation/" + early + "/cancel", ann.header).status == 200);
    CHECK(worker.lease().status == 204);
    std::string late = submitted(
        users, ann, request_body({{"did", nullptr}, {"file-list", {"a.root", "b.root"}}}));
    auto leased = worker.lease();
    REQUIRE(leased.status == 200);
    CHECK(body_of(leased)["fileset-complete"] == true);
    REQUIRE(users.get("/servicex/transformation/" + late + "/cancel", ann.header).status == 200);
    check_answer(worker.call("POST", late, "/start"), 409,
                 {{"message", "Transformation request " + late + " is Canceled"}});
    std::this_thread::sleep_for(std::chrono::milliseconds(1200));
    CHECK(worker.lease().status == 204);
  }
  SECTION("a fatal report ends the request with its reason") {
    std::string id = submitted(users, ann, request_body());
    REQUIRE(worker.lease().status == 200);
    CHECK(worker
              .call("POST", id, "/status",
                    {{"timestamp", "2026-12-01T12:00:00.000000"},
                     {"severity", "fatal"},
                     {"source", "did-finder"},
                     {"info", "no such dataset"}})
              .status == 200);
    json record = body_of(users.get("/servicex/transformation/" + id, ann.header));
    CHECK(record["status"] == "Fatal");
    CHECK(record["failure-info"] == "no such dataset");
    CHECK(is_original_time(record["finish-time"]));
    check_answer(worker.call("POST", id, "/status", json::object()), 400,
                 {{"message", {{"timestamp", "This field cannot be blank"}}}});
  }
  SECTION("a request whose workers keep dying fails after SERVICEX_WORKER_MAX_LEASES leases") {
    std::string id = submitted(users, ann, request_body());
    REQUIRE(worker.lease().status == 200);
    std::this_thread::sleep_for(std::chrono::milliseconds(1200));
    CHECK(worker.lease().status == 204);
    json record = body_of(users.get("/servicex/transformation/" + id, ann.header));
    CHECK(record["status"] == "Fatal");
    CHECK(record["failure-info"] == "No worker finished the request within 1 lease(s)");
    CHECK(is_original_time(record["finish-time"]));
  }
}
