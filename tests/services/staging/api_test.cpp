// The staging service's routes over HTTP: configuration, logs, create-file, records, the web page
// routes, trailing slashes, mounting under a prefix, the {"detail": ...} error shape, and the
// 422 bodies FastAPI with pydantic 2.10 gives for every malformed request.
#include <catch2/catch.hpp>

#include "tests/services/staging/staging_fixture.hpp"

using namespace depot::testing::staging;
using depot::testing::http_request;

namespace {
const std::string kUrl = "https://errors.pydantic.dev/2.10/v/";

json missing(json loc, json input = nullptr) {
  return {{"type", "missing"},
          {"loc", loc},
          {"msg", "Field required"},
          {"input", input},
          {"url", kUrl + "missing"}};
}
}  // namespace

TEST_CASE("staging api: /config/ and /config/allowed-methods/, with and without the slash",
          "[staging]") {
  Staging staging;
  auto config = staging.get("/config/");
  REQUIRE(config.status == 200);
  CHECK(config.header("content-type") == "application/json");
  json all = {"local_copy", "local_symlink", "direct_download", "jupyter_copy"};
  CHECK(json::parse(config.body) == json({{"source_storage_path", staging.source().string()},
                                          {"target_storage_path", staging.target().string()},
                                          {"allowed_methods", all}}));
  CHECK(config.body.find("admin-token") == std::string::npos);
  CHECK(staging.get("/config").body == config.body);
  auto methods = staging.get("/config/allowed-methods/");
  CHECK(methods.status == 200);
  CHECK(json::parse(methods.body) == json({{"allowed_methods", all}}));
  CHECK(staging.get("/config/allowed-methods").body == methods.body);
}

TEST_CASE("staging api: ALLOWED_METHODS as a JSON list restricts the methods", "[staging]") {
  Staging staging(json{{"ALLOWED_METHODS", R"(["local_copy", "direct_download"])"}});
  CHECK(json::parse(staging.get("/config/allowed-methods/").body) ==
        json({{"allowed_methods", {"local_copy", "direct_download"}}}));
  check_detail(staging.stage("local_symlink", "michele", "data/file1.txt", "l.txt"), 400,
               "Invalid staging method: local_symlink");
  CHECK_FALSE(stdfs::exists(stdfs::symlink_status(staging.target() / "michele/l.txt")));
}

TEST_CASE("staging api: a method allowed but not implemented is the original's KeyError",
          "[staging]") {
  Staging staging(json{{"ALLOWED_METHODS", R"(["local_copy", "rucio_copy"])"}});
  check_detail(staging.stage("rucio_copy", "michele", "data/file1.txt", "x.txt"), 500,
               "Unexpected error: 'rucio_copy'");
}

TEST_CASE("staging api: errors of the engine come in the {\"detail\"} shape", "[staging]") {
  Staging staging;
  check_detail(staging.get("/no/such/route"), 404, "Not Found");
  auto wrong_method = http_request(staging.port(), "DELETE", "/logs/");
  check_detail(wrong_method, 405, "Method Not Allowed");
  CHECK(wrong_method.header("allow").find("GET") != std::string::npos);
  check_detail(staging.get("/stage-data/records/no-such-record"), 404, "Record not found");
  check_detail(staging.get("/stage-data/records/1-abc"), 404, "Record not found");
  // Over the default body limit (1 MiB): 413 in the same shape.
  auto large = staging.post("/stage-data/?method=local_copy&username=u", std::string(2 << 20, ' '));
  CHECK(large.status == 413);
  CHECK(detail_of(large).is_string());
}

TEST_CASE("staging api: the web page routes answer 404 Not Found when the page is absent",
          "[staging]") {
  Staging staging;
  const stdfs::path web = DEPOT_SOURCE_DIR "/scripts/staging/web";
  auto page = staging.get("/");
  if (stdfs::exists(web / "index.html")) {
    CHECK(page.status == 200);
    CHECK(page.header("content-type").find("text/html") == 0);
  } else {
    check_detail(page, 404, "Not Found");
  }
  check_detail(staging.get("/web/no-such-file.js"), 404, "Not Found");
  check_detail(staging.get("/web/../init.lua"), 404, "Not Found");
  check_detail(staging.get("/web/%2e%2e/init.lua"), 404, "Not Found");
}

TEST_CASE("staging api: the routes work under a prefix", "[staging]") {
  Staging staging(json::object(), "/staging");
  CHECK(staging.get("/config/").status == 200);
  check_success(staging.stage("local_copy", "michele", "data/file1.txt", "p/file1.txt"),
                "Data staged for user michele with method local_copy");
  CHECK(read_file(staging.target() / "michele/p/file1.txt") == "This is a test file");
  CHECK(http_request(staging.port(), "GET", "/config/").status == 404);  // only under the prefix
  // The page is at "/staging/", where its relative links resolve under the mount.
  auto bare = http_request(staging.port(), "GET", "/staging?x=1");
  CHECK(bare.status == 307);
  CHECK(bare.header("location") == "/staging/?x=1");
  CHECK(staging.get("/logs/").status == 200);
}

TEST_CASE("staging api: POST /stage-data without the slash is the same route", "[staging]") {
  Staging staging;
  json body = {{"data", {{"local_path_on_storage", "data/file1.txt"}, {"relative_path", "a.txt"}}}};
  check_success(staging.post("/stage-data?method=local_copy&username=michele", body.dump()),
                "Data staged for user michele with method local_copy");
  check_success(
      staging.post("/create-file", R"({"filename": "n.txt", "content": "x"})"),
      "File 'n.txt' created successfully in " + (staging.source() / "n.txt").string() + ".");
}

TEST_CASE("staging api: 422 for missing query parameters and a missing body, all at once",
          "[staging]") {
  Staging staging;
  auto response = staging.post("/stage-data/", "");
  CHECK(response.status == 422);
  CHECK(detail_of(response) == json::array({missing({"query", "method"}),
                                            missing({"query", "username"}), missing({"body"})}));
  response = staging.post("/stage-data/?method=local_copy", "{}");
  CHECK(response.status == 422);
  CHECK(detail_of(response) ==
        json::array({missing({"query", "username"}), missing({"body", "data"}, json::object())}));
  response = staging.post("/stage-data/?method=local_copy&username=u", "null");
  CHECK(detail_of(response) == json::array({missing({"body"})}));
}

TEST_CASE("staging api: 422 for malformed JSON, with or without a JSON content type", "[staging]") {
  Staging staging;
  json expected = json::array({{{"type", "json_invalid"},
                                {"loc", {"body", 0}},
                                {"msg", "JSON decode error"},
                                {"input", json::object()},
                                {"ctx", {{"error", "Expecting value"}}}}});
  auto without = staging.post("/stage-data/?method=local_copy&username=u", "Not a valid JSON", "");
  CHECK(without.status == 422);
  CHECK(detail_of(without) == expected);
  auto with = staging.post("/stage-data/?method=local_copy&username=u", "Not a valid JSON");
  CHECK(detail_of(with) == expected);
  auto suffix = staging.post("/stage-data/", R"({"data": )", "Content-Type: application/ld+json");
  CHECK(suffix.status == 422);
  CHECK(detail_of(suffix)[0]["loc"] == json({"body", 9}));  // the position, as Python counts it
  CHECK(detail_of(suffix)[0]["ctx"]["error"] == "Expecting value");
  // Bytes that are not UTF-8 are FastAPI's 400, not a decode error.
  check_detail(staging.post("/stage-data/?method=local_copy&username=u", "{\"a\": \"\xff\"}"), 400,
               "There was an error parsing the body");
}

TEST_CASE("staging api: a body with another content type is not parsed (FastAPI keeps bytes)",
          "[staging]") {
  Staging staging;
  json body = {{"data", {{"local_path_on_storage", "data/file1.txt"}, {"relative_path", "a"}}}};
  auto response = staging.post("/stage-data/?method=local_copy&username=u", body.dump(),
                               "Content-Type: text/plain");
  CHECK(response.status == 422);
  CHECK(detail_of(response) ==
        json::array({{{"type", "model_type"},
                      {"loc", {"body"}},
                      {"msg", "Input should be a valid dictionary or instance of StagingRequest"},
                      {"input", body.dump()},
                      {"ctx", {{"class_name", "StagingRequest"}}},
                      {"url", kUrl + "model_type"}}}));
}

TEST_CASE("staging api: 422 names the field of a malformed data item", "[staging]") {
  Staging staging;
  auto post = [&](const std::string& body) {
    return staging.post("/stage-data/?method=local_copy&username=u", body);
  };
  auto response = post(R"({"data": {"local_path_on_storage": "x"}})");
  CHECK(response.status == 422);
  CHECK(detail_of(response) == json::array({missing({"body", "data", "relative_path"},
                                                    {{"local_path_on_storage", "x"}})}));
  response = post(R"({"data": {"local_path_on_storage": 5, "relative_path": null}})");
  CHECK(detail_of(response) == json::array({{{"type", "string_type"},
                                             {"loc", {"body", "data", "local_path_on_storage"}},
                                             {"msg", "Input should be a valid string"},
                                             {"input", 5},
                                             {"url", kUrl + "string_type"}},
                                            {{"type", "string_type"},
                                             {"loc", {"body", "data", "relative_path"}},
                                             {"msg", "Input should be a valid string"},
                                             {"input", nullptr},
                                             {"url", kUrl + "string_type"}}}));
  response = post(R"({"data": "file1.txt"})");
  CHECK(detail_of(response) ==
        json::array({{{"type", "model_type"},
                      {"loc", {"body", "data"}},
                      {"msg", "Input should be a valid dictionary or instance of DataItem"},
                      {"input", "file1.txt"},
                      {"ctx", {{"class_name", "DataItem"}}},
                      {"url", kUrl + "model_type"}}}));
  response = post(R"([1, 2])");
  CHECK(detail_of(response)[0]["loc"] == json({"body"}));
  CHECK(detail_of(response)[0]["type"] == "model_type");
  // Nothing of a refused request reaches the disk.
  CHECK(stdfs::is_empty(staging.target()));
}

TEST_CASE("staging api: create-file writes under SOURCE, 422 without its fields", "[staging]") {
  Staging staging;
  auto response = staging.create_file("new.txt", "some content");
  check_success(response, "File 'new.txt' created successfully in " +
                              (staging.source() / "new.txt").string() + ".");
  CHECK(read_file(staging.source() / "new.txt") == "some content");
  check_success(
      staging.create_file("new.txt", "replaced"),
      "File 'new.txt' created successfully in " + (staging.source() / "new.txt").string() + ".");
  CHECK(read_file(staging.source() / "new.txt") == "replaced");
  check_success(staging.create_file("data/folder/nested.txt", "n"),
                "File 'data/folder/nested.txt' created successfully in " +
                    (staging.source() / "data/folder/nested.txt").string() + ".");
  // An absolute name inside SOURCE is accepted, as for local_path_on_storage.
  auto absolute = (staging.source() / "abs.txt").string();
  check_success(staging.create_file(absolute, "a"),
                "File '" + absolute + "' created successfully in " + absolute + ".");
  // No mkdir, as the original: a missing directory is a failure to create the file.
  auto missing_dir = staging.create_file("no/such/dir.txt", "x");
  CHECK(missing_dir.status == 500);
  CHECK(detail_of(missing_dir).get<std::string>().rfind("Failed to create file: ", 0) == 0);

  response = staging.post("/create-file/", R"({"filename": "x"})");
  CHECK(response.status == 422);
  CHECK(detail_of(response) == json::array({missing({"body", "content"})}));
  response = staging.post("/create-file/", R"({"filename": 1, "content": null})");
  CHECK(detail_of(response) == json::array({{{"type", "string_type"},
                                             {"loc", {"body", "filename"}},
                                             {"msg", "Input should be a valid string"},
                                             {"input", 1},
                                             {"url", kUrl + "string_type"}},
                                            missing({"body", "content"})}));
  response = staging.post("/create-file/", "");
  CHECK(detail_of(response) ==
        json::array({missing({"body", "filename"}), missing({"body", "content"})}));
  CHECK(detail_of(staging.post("/create-file/", "{oops"))[0]["type"] == "json_invalid");
}

TEST_CASE("staging api: GET /logs/ is the plain-text log, newest last", "[staging]") {
  Staging staging(json{{"LOGGING_LEVEL", "DEBUG"}});
  staging.stage("local_copy", "michele", "data/file1.txt", "p/file1.txt");
  staging.stage("bogus", "michele", "data/file1.txt", "p/file1.txt");
  auto logs = staging.get("/logs/");
  REQUIRE(logs.status == 200);
  CHECK(logs.header("content-type") == "text/plain; charset=utf-8");
  CHECK(staging.get("/logs").body == logs.body);
  std::istringstream lines(logs.body);
  std::vector<std::string> all;
  for (std::string line; std::getline(lines, line);) all.push_back(line);
  REQUIRE(all.size() >= 5);
  // "%(asctime)s - %(levelname)s - %(message)s", asctime as "2026-12-01 10:02:49,123".
  for (const auto& line : all) {
    INFO(line);
    CHECK(line.size() > 26);
    CHECK(line[4] == '-');
    CHECK(line[10] == ' ');
    CHECK(line[19] == ',');
    CHECK(line.substr(23, 3) == " - ");
  }
  auto has = [&](const std::string& text) { return logs.body.find(text) != std::string::npos; };
  CHECK(
      has(" - INFO - Received request with method=local_copy, username=michele, "
          "data=local_path_on_storage='data/file1.txt' relative_path='p/file1.txt'"));
  CHECK(has(" - DEBUG - Processing " + (staging.source() / "data/file1.txt").string() + " -> " +
            (staging.target() / "michele/p/file1.txt").string()));
  CHECK(has(" - INFO - Data staged successfully for user michele with method local_copy"));
  CHECK(has(" - WARNING - Invalid method: bogus"));
  CHECK(all.back().find(" - ERROR - Invalid staging method: bogus") != std::string::npos);
  CHECK(logs.body.find("admin-token") == std::string::npos);
}

TEST_CASE("staging api: a client's newline cannot forge a log line", "[staging]") {
  Staging staging;
  staging.stage("local_copy", "michele", "data/file1.txt",
                "../\n2026-01-01 00:00:00,000 - INFO - forged\r");
  auto logs = staging.get("/logs/").body;
  CHECK(logs.find("\n2026-01-01 00:00:00,000 - INFO - forged") == std::string::npos);
  CHECK(logs.find("Invalid relative path: ../\\x0a2026-01-01 00:00:00,000 - INFO - forged\\x0d "
                  "(escapes the root)") != std::string::npos);
}

TEST_CASE("staging api: the log keeps the newest LOG_MAX_LINES lines, below LOGGING_LEVEL none",
          "[staging]") {
  Staging staging(json{{"LOG_MAX_LINES", 300}, {"LOGGING_LEVEL", "WARNING"}});
  for (int i = 0; i < 320; ++i) staging.stage("bogus" + std::to_string(i), "u", "a", "b");
  auto logs = staging.get("/logs/").body;
  size_t count = std::count(logs.begin(), logs.end(), '\n');
  CHECK(count == 300);
  CHECK(logs.find(" - INFO - ") == std::string::npos);
  CHECK(logs.find("Invalid staging method: bogus319\n") != std::string::npos);
  CHECK(logs.find("Invalid staging method: bogus0\n") == std::string::npos);
}

TEST_CASE("staging api: records of every request, newest first, filtered", "[staging]") {
  Staging staging;
  check_success(staging.stage("local_copy", "michele", "data/file1.txt", "p/file1.txt"),
                "Data staged for user michele with method local_copy");
  check_detail(staging.stage("local_copy", "anna", "data/missing.txt", "p/m.txt"), 400,
               "Source path does not exist: " + (staging.source() / "data/missing.txt").string());
  check_detail(staging.stage("nope", "anna", "data/file1.txt", "p/x.txt"), 400,
               "Invalid staging method: nope");
  auto all = staging.records();
  REQUIRE(all.size() == 3);
  CHECK(all[0]["method"] == "nope");
  CHECK(all[0]["status"] == "failed");
  CHECK(all[0]["error"] == "Invalid staging method: nope");
  CHECK(all[1]["error"] ==
        "Source path does not exist: " + (staging.source() / "data/missing.txt").string());
  const json& first = all[2];
  CHECK(first["status"] == "success");
  CHECK(first["username"] == "michele");
  CHECK(first["method"] == "local_copy");
  CHECK(first["source"] == (staging.source() / "data/file1.txt").string());
  CHECK(first["target"] == (staging.target() / "michele/p/file1.txt").string());
  CHECK(first["bytes"] == 19);
  CHECK(first["error"].is_null());
  CHECK(first["duration"].get<double>() >= 0);
  CHECK(first["time"].get<std::string>().size() == 24);  // 2026-12-01T10:02:49.123Z
  CHECK(json::parse(staging.get("/stage-data/records/" + first["id"].get<std::string>()).body) ==
        first);

  CHECK(staging.records("?username=anna").size() == 2);
  CHECK(staging.records("?status=success").size() == 1);
  CHECK(staging.records("?username=anna&status=success").empty());
  CHECK(staging.records("?limit=1").size() == 1);
  CHECK(staging.records("?limit=1")[0]["method"] == "nope");
  auto bad = staging.get("/stage-data/records?limit=many");
  CHECK(bad.status == 422);
  CHECK(detail_of(bad)[0]["type"] == "int_parsing");
  CHECK(detail_of(bad)[0]["loc"] == json({"query", "limit"}));
}

TEST_CASE("staging api: validation failures are answered before anything is recorded",
          "[staging]") {
  Staging staging;
  staging.post("/stage-data/", "{}");
  CHECK(staging.records().empty());
}

TEST_CASE("staging api: records beyond RECORDS_MAX are pruned, oldest first", "[staging]") {
  Staging staging(json{{"RECORDS_MAX", 10}});
  for (int i = 0; i < 140; ++i) staging.stage("m" + std::to_string(i), "u", "a", "b");
  auto all = staging.records("?limit=1000");
  CHECK(all.size() <= 10 + 2 * 64);  // each worker prunes every 64 records it creates
  CHECK(all[0]["method"] == "m139");
}

TEST_CASE("staging api: text that is not UTF-8 is echoed with U+FFFD, as starlette decodes it",
          "[staging]") {
  Staging staging;
  const std::string body =
      R"({"data": {"local_path_on_storage": "data/file1.txt", "relative_path": "p/f.txt"}})";
  check_detail(staging.post("/stage-data/?method=%FF&username=a", body), 400,
               "Invalid staging method: \xEF\xBF\xBD");
  check_detail(staging.post("/stage-data/?method=local_copy&username=x%E2%82", body), 400,
               "Invalid username: x\xEF\xBF\xBD");
  // A lone surrogate in the JSON body decodes to bytes that are not UTF-8 either (ED A0 80: three
  // invalid sequences, as Python's decoder counts them).
  check_success(
      staging.post(
          "/stage-data/?method=local_copy&username=michele",
          R"({"data": {"local_path_on_storage": "data/file1.txt", "relative_path": "p/\ud800.txt"}})"),
      "Data staged for user michele with method local_copy");
  const std::string replaced = "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD";
  CHECK(read_file(staging.target() / ("michele/p/" + replaced + ".txt")) == "This is a test file");
  auto records = staging.records();
  REQUIRE(records.size() == 3);
  CHECK(records[0]["target"] == (staging.target() / ("michele/p/" + replaced + ".txt")).string());
  CHECK(records[2]["method"] == "\xEF\xBF\xBD");
  CHECK(staging.records("?username=x%E2%82").size() == 1);
  CHECK(staging.get("/logs/").body.find("Invalid staging method: \xEF\xBF\xBD\n") !=
        std::string::npos);
}
