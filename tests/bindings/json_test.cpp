// Lua module `json`: the Python renderings against vectors computed by Python itself
// (tests/bindings/vectors/make_json_vectors.py), the specs' examples, and decode/encode behaviour.
#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "tests/support/lua_fixture.hpp"

namespace {

struct Result {
  std::optional<std::string> text;  // nullopt when the function returned nil
  std::string message;              // its second result then
};

// Calls json.<function>(argument) in the fixture's state.
Result call_json(depot::testing::LuaFixture& lua, const char* function,
                 const std::string& argument) {
  lua_State* L = lua.state();
  lua_settop(L, 0);
  lua_getglobal(L, "require");
  lua_pushstring(L, "json");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, function);
  lua_pushlstring(L, argument.data(), argument.size());
  lua_call(L, 1, 2);
  Result result;
  size_t length;
  if (const char* text = lua_tolstring(L, -2, &length)) result.text = std::string(text, length);
  if (const char* message = lua_tostring(L, -1)) result.message = message;
  lua_settop(L, 0);
  return result;
}

nlohmann::json load_vectors() {
  std::ifstream file(DEPOT_SOURCE_DIR "/tests/bindings/vectors/json_vectors.json");
  REQUIRE(file.good());
  return nlohmann::json::parse(file);
}

}  // namespace

TEST_CASE("json.python_json and json.python_repr match Python on every vector", "[json]") {
  depot::testing::LuaFixture lua;
  nlohmann::json vectors = load_vectors();
  REQUIRE(vectors.size() >= 150);
  for (const auto& vector : vectors) {
    std::string input = vector["input"];
    INFO("input: " << input);
    Result canonical = call_json(lua, "python_json", input);
    Result repr = call_json(lua, "python_repr", input);
    if (vector["python_json"].is_null()) {
      CHECK_FALSE(canonical.text);
      CHECK_THAT(canonical.message, Catch::Contains("json.python_json: syntax error at line"));
      CHECK_FALSE(repr.text);
      CHECK_THAT(repr.message, Catch::Contains("json.python_repr: syntax error at line"));
    } else {
      CHECK(canonical.text == vector["python_json"].get<std::string>());
      CHECK(repr.text == vector["python_repr"].get<std::string>());
    }
  }
}

TEST_CASE("json: the specs' examples", "[json]") {
  depot::testing::LuaFixture lua;
  // file-cache.md §1.2
  CHECK(call_json(lua, "python_json", R"({"xyz":123,"abc":[1,2.0,{"b":1,"a":"é"}]})").text ==
        R"({"abc": [1, 2.0, {"a": "\u00e9", "b": 1}], "xyz": 123})");
  CHECK(call_json(lua, "python_json", R"({"xyz": 123})").text == R"({"xyz": 123})");
  CHECK(call_json(lua, "python_json", "[1e5, 2.5, 1e-7, 1e16, 1.0]").text ==
        "[100000.0, 2.5, 1e-07, 1e+16, 1.0]");
  CHECK(call_json(lua, "python_json", "[NaN, Infinity, -Infinity]").text ==
        "[NaN, Infinity, -Infinity]");
  CHECK(call_json(lua, "python_json", R"({"a": 1, "a": 2})").text == R"({"a": 2})");
  // image-cache.md §2.2
  CHECK(call_json(lua, "python_repr",
                  R"({"queries": [{"bucket": "Left +Y Axis", "isOverlay": false, "query": )"
                  R"({"topx": 8, "starting_time": null, "x": 1.0}}], "imageType": "png"})")
            .text ==
        "{'queries': [{'bucket': 'Left +Y Axis', 'isOverlay': False, 'query': "
        "{'topx': 8, 'starting_time': None, 'x': 1.0}}], 'imageType': 'png'}");
  CHECK(call_json(lua, "python_repr", R"({"a": 1})").text == "{'a': 1}");
  CHECK(call_json(lua, "python_repr", R"({"a":"it's","b":"say \"hi\"","c":1e5})").text ==
        R"({'a': "it's", 'b': 'say "hi"', 'c': 100000.0})");
  CHECK(call_json(lua, "python_repr", "[-0.0, 1e-7, 1e16, Infinity, NaN]").text ==
        "[-0.0, 1e-07, 1e+16, inf, nan]");
}

TEST_CASE("json.member_text: a member's text as written", "[json]") {
  depot::testing::LuaFixture lua;
  CHECK(lua.run(R"LUA(
    local json = require "json"
    local doc = ' { "ttl" : 60 , "q" : {"b": [1, "}", 1.50E1], "a": "\\"x\\" \\u00e9"} , "z": null } '
    assert(json.member_text(doc, "q") == [[{"b": [1, "}", 1.50E1], "a": "\"x\" \u00e9"}]], json.member_text(doc, "q"))
    assert(json.member_text(doc, "ttl") == "60" and json.member_text(doc, "z") == "null")
    -- the last of repeated names, as Python's json.loads keeps it
    assert(json.member_text('{"q": 1, "q": {"b": [1, "}"]}}', "q") == '{"b": [1, "}"]}')
    assert(json.member_text('{"q": 1}', "missing") == nil)
    assert(json.member_text('[1, 2]', "q") == nil and json.member_text('"q"', "q") == nil)
    local none, message = json.member_text('{"q": [1,}', "q")
    assert(none == nil and message:find("^json.member_text: syntax error at line 1 column 10"), message)
    assert(not pcall(json.member_text, '{}', 5))
    assert(select(2, pcall(json.member_text, 5, "q")):find("json.member_text: text must be a string"))
  )LUA") == "");
}

TEST_CASE("json: integers keep their digits in the Python renderings only", "[json]") {
  depot::testing::LuaFixture lua;
  const std::string big = "123456789012345678901234567890";
  CHECK(call_json(lua, "python_json", "[" + big + "]").text == "[" + big + "]");
  CHECK(call_json(lua, "python_repr", "{\"n\": -" + big + "}").text == "{'n': -" + big + "}");
  CHECK(lua.run(R"(
    local json = require "json"
    assert(json.decode("123456789012345678901234567890") == 1.2345678901234568e29)
    assert(json.decode("9007199254740993") == 9007199254740992)
  )") == "");
}

TEST_CASE("json.decode: values, json.null and marker metatables", "[json]") {
  depot::testing::LuaFixture lua;
  CHECK(lua.run(R"(
    local json = require "json"
    local value = json.decode('{"a": [1, null, true, "x\\u00e9"], "b": {}, "c": [], "d": 2.5}')
    assert(value.a[1] == 1 and value.a[2] == json.null and value.a[3] == true)
    assert(value.a[4] == "x\195\169" and value.d == 2.5)
    assert(getmetatable(value) == json.object_mt and getmetatable(value.a) == json.array_mt)
    assert(getmetatable(value.b) == json.object_mt and getmetatable(value.c) == json.array_mt)
    assert(type(json.null) == "userdata" and json.decode("null") == json.null)
    assert(json.decode('{"a": 1, "a": 2}').a == 2)
    assert(json.decode('{"1": true}')["1"] == true)
    local nan = json.decode("NaN")
    assert(nan ~= nan and json.decode("-Infinity") == -math.huge)
    assert(json.decode('"\\ud83d\\ude00"') == "\240\159\152\128")
  )") == "");
}

TEST_CASE("json.encode: arrays, objects, numbers and round trips", "[json]") {
  depot::testing::LuaFixture lua;
  CHECK(lua.run(R"(
    local json = require "json"
    assert(json.encode({1, 2, 3}) == "[1,2,3]")
    assert(json.encode({}) == "{}")
    assert(json.encode(setmetatable({}, json.array_mt)) == "[]")
    assert(json.encode({b = 1, a = {x = true}}) == '{"a":{"x":true},"b":1}')
    assert(json.encode({[1] = "a", [3] = "c"}) == '{"1":"a","3":"c"}')
    assert(json.encode({[1.5] = 1}) == '{"1.5":1}')
    assert(json.encode(nil) == "null" and json.encode(json.null) == "null")
    assert(json.encode({json.null, false}) == "[null,false]")
    assert(json.encode(3) == "3" and json.encode(-0.5) == "-0.5" and json.encode(1e300) == "1e+300")
    assert(json.encode(2^53) == "9.007199254740992e+15" and json.encode(2^53 - 1) == "9007199254740991")
    assert(json.encode(-0.0) == "-0.0")
    assert(json.encode("é\n\"") == '"é\\n\\""')
    for _, text in ipairs({'[]', '{}', '{"a":[]}', '[{}]', '{"a":[1,{"b":null}],"c":"d"}',
                           '[0.1,-2,1e-07,"\\u0000"]', '[[[]],{"x":{}}]'}) do
      assert(json.encode(json.decode(text)) == text, text)
    end
  )") == "");
}

// json.encode writes its text itself; nlohmann::json's dump(), which it replaced, is the reference.
TEST_CASE("json.encode writes what nlohmann::json's dump() writes for the same value", "[json]") {
  depot::testing::LuaFixture lua;
  std::string controls;  // every control character as a \u escape
  for (int c = 0; c < 0x20; ++c) {
    controls += "\\u00";
    controls += "01"[c >> 4];
    controls += "0123456789abcdef"[c & 15];
  }
  const std::vector<std::string> texts = {
      "[\"" + controls + "\"]",
      R"({"z":1,"a":[true,false,null],"é":"\u007f/\\\"x","\u00e9t\u00e9":{"b":"\ud83d\ude00"}})",
      R"([0.1,-2.5,1e-07,123.456,-2.5e-300,1.7976931348623157e308,9007199254740991,-42])",
      R"({"Z":"","a":"日本語","aa":{},"b":[[],[{}]],"~":"~","\u0080":"\u07ff\u0800\uffff"})",
  };
  lua_State* L = lua.state();
  for (const std::string& text : texts) {
    INFO(text);
    lua_pushlstring(L, text.data(), text.size());
    lua_setglobal(L, "text");
    REQUIRE(lua.run("local json = require 'json'; encoded = json.encode(json.decode(text))") == "");
    lua_getglobal(L, "encoded");
    std::string encoded = lua_tostring(L, -1);
    lua_pop(L, 1);
    CHECK(encoded == nlohmann::json::parse(text).dump());
  }
  CHECK(lua.run(R"(
    local json = require "json"
    -- A key written twice (a number and a string) is written once, as dump() did.
    local text = json.encode({[1] = "a", ["1"] = "b", x = 1})
    assert(text == '{"1":"a","x":1}' or text == '{"1":"b","x":1}', text)
    -- dump() read the whole value before it checked UTF-8: other errors come first.
    local ok, message = pcall(json.encode, {"\255", print})
    assert(not ok and message:find("cannot encode a function", 1, true), message)
    ok, message = pcall(json.encode, {a = "ok", b = {"\237\160\128"}})  -- a lone surrogate
    assert(not ok and message:find("strings must be valid UTF-8", 1, true), message)
    ok, message = pcall(json.encode, {["\192\128"] = 1})  -- an overlong key
    assert(not ok and message:find("strings must be valid UTF-8", 1, true), message)
  )") == "");
}

TEST_CASE("json.encode: errors name the function", "[json]") {
  depot::testing::LuaFixture lua;
  CHECK(lua.run(R"(
    local json = require "json"
    local function fails(value, expected)
      local ok, message = pcall(json.encode, value)
      assert(not ok and message:find(expected, 1, true), tostring(message))
    end
    local cycle = {}
    cycle.self = cycle
    fails(cycle, "json.encode: cycle")
    local indirect = {list = {}}
    indirect.list[1] = indirect
    fails(indirect, "json.encode: cycle")
    fails(0 / 0, "json.encode: cannot encode NaN or inf")
    fails({math.huge}, "json.encode: cannot encode NaN or inf")
    fails({print}, "json.encode: cannot encode a function")
    fails({[true] = 1}, "json.encode: object keys must be strings or numbers, got boolean")
    fails("\255", "json.encode: strings must be valid UTF-8")
    local deep = {}
    for _ = 1, 2000 do deep = {deep} end
    fails(deep, "json.encode: nesting deeper than 1000 levels")
    local shared = {1}
    assert(json.encode({shared, shared}) == "[[1],[1]]")  -- seen twice is not a cycle
  )") == "");
}

TEST_CASE("json: bad input returns nil and a positioned message", "[json]") {
  depot::testing::LuaFixture lua;
  Result result = call_json(lua, "decode", "[1, 2,]");
  CHECK_FALSE(result.text);
  CHECK(result.message == "json.decode: syntax error at line 1 column 7 (char 6): Expecting value");
  CHECK(call_json(lua, "decode", "{\n  \"a\": tru\n}").message ==
        "json.decode: syntax error at line 2 column 8 (char 9): Expecting value");
  CHECK(call_json(lua, "decode", "\"é\" x").message ==
        "json.decode: syntax error at line 1 column 5 (char 4): Extra data");
  CHECK(call_json(lua, "python_json", "\"abc").message ==
        "json.python_json: syntax error at line 1 column 1 (char 0): Unterminated string");
  CHECK(call_json(lua, "python_repr", "[\"\\q\"]").message ==
        "json.python_repr: syntax error at line 1 column 3 (char 2): Invalid \\escape");
  CHECK_THAT(call_json(lua, "decode", "\"\xff\"").message, Catch::Contains("Invalid UTF-8"));
  CHECK_THAT(call_json(lua, "decode", "\"\xed\xa0\x80\"").message,
             Catch::Contains("Invalid UTF-8"));
  CHECK_THAT(call_json(lua, "decode", "\"\xc0\xaf\"").message, Catch::Contains("Invalid UTF-8"));
  CHECK_THAT(call_json(lua, "decode", std::string(1001, '[') + std::string(1001, ']')).message,
             Catch::Contains("Nesting deeper than 1000 levels"));
  CHECK(call_json(lua, "decode", std::string(1000, '[') + std::string(1000, ']')).message.empty());
  CHECK(lua.run(R"(
    local json = require "json"
    local ok, message = pcall(json.decode, {})
    assert(not ok and message:find("json.decode: text must be a string, got table", 1, true))
  )") == "");
}
