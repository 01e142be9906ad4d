// The file cache's pure parts in a plain Lua state: cache ids byte-identical to the original
// (spec §1.2 vectors; upstream test_hash.py and test_generate_cache_id.py), its JSON error
// messages, and werkzeug's secure_filename.
#include <catch2/catch.hpp>

#include "tests/support/lua_fixture.hpp"

namespace {
// Runs `code` with scripts/ on package.path; "" when it ran without error.
std::string run_with_scripts(const std::string& code) {
  depot::testing::LuaFixture lua;
  return lua.run("package.path = '" DEPOT_SOURCE_DIR "/scripts/?.lua;' .. package.path\n" + code);
}
}  // namespace

TEST_CASE("file cache ids: the vectors of the original service", "[file_cache]") {
  CHECK(run_with_scripts(R"LUA(
    local crypto = require "crypto"
    local json = require "json"
    local cache_id = require "file_cache.cache_id"
    -- test_hash.py
    assert(crypto.hex(crypto.blake2b("1234567890")) ==
      "68d6ef20266276f163541b9db63db73bc5e6351755b741dbf59c3dcdf6678951a65e0844e238d6d25ae7e4293fcf29f913d02cd68ba1925615865d1aaa50fe8e")
    assert(crypto.hex(crypto.blake2b(string.rep("abcdefghij", 1000))) ==
      "acbe8b86215c2d5a6bdcc9ccd98ccac597a9b43021dff12e3f805edf68cf2f379a53602b42fe79a6a5da1247a9ff979c90ff56f15b442c2dca5145ce5676a72b")
    -- spec §1.2, through the same function the route uses
    assert(cache_id.from_body("http://auth:5000:username", '{"xyz": 123}') ==
      "4b573346e9f80b83f4045e7586df5a49d28175247af57be3d92aa3518a9cdaf6e48e31ca78dbfb250cc8b1cb47abe9e92baba070fcdda728ec4f607372de2708")
    assert(cache_id.from_body("https://kbase.us/services/auth:username",
      '{"params": {"contig_length": 123}, "method_name": "mymethod"}') ==
      "685cefc594e029ea84c359b388aeff8ea24d2d659fbd8a323443ddfe3cb5c161d33ddc1c715322456f6054975d354451b86c8eeb7018a310d529ab4144584c0c")
    assert(json.python_json('{"xyz":123,"abc":[1,2.0,{"b":1,"a":"é"}]}') ==
      '{"abc": [1, 2.0, {"a": "\\u00e9", "b": 1}], "xyz": 123}')
    -- The hashed text is token_id, a newline and the canonical JSON: nothing else.
    assert(cache_id.from_body("t:u", '{"b": [1e5, NaN], "a": "\\u00e9"}') ==
      crypto.hex(crypto.blake2b('t:u\n{"a": "\\u00e9", "b": [100000.0, NaN]}')))
  )LUA") == "");
}

TEST_CASE(
    "file cache ids: deterministic, 128 hex digits, scoped by token_id (test_generate_cache_id)",
    "[file_cache]") {
  CHECK(run_with_scripts(R"LUA(
    local cache_id = require "file_cache.cache_id"
    local id = cache_id.from_body("http://auth:5000:username", '{"xyz": 123}')
    assert(#id == 128 and id:find("^[0-9a-f]+$"))
    assert(cache_id.from_body("http://auth:5000:username", '{ "xyz" :123 }') == id, "same data, other spacing")
    assert(cache_id.from_body("http://auth:5000:username2", '{"xyz": 123}') ~= id, "other user")
    assert(cache_id.from_body("http://auth:5000/:username", '{"xyz": 123}') ~= id, "other auth URL")
    assert(cache_id.from_body("http://auth:5000:username", '{"xyz": 124}') ~= id, "other data")
    -- duplicate keys: the last value wins, as in Python
    assert(cache_id.from_body("t:u", '{"a": 1, "a": 2}') == cache_id.from_body("t:u", '{"a": 2}'))
    -- a UTF-8 byte-order mark is no part of the data (Python's json.loads of bytes skips it)
    assert(cache_id.from_body("t:u", '\239\187\191{"a": 2}') == cache_id.from_body("t:u", '{"a": 2}'))
  )LUA") == "");
}

TEST_CASE("file cache ids: what is not a non-empty JSON object, with the original's messages",
          "[file_cache]") {
  CHECK(run_with_scripts(R"LUA(
    local cache_id = require "file_cache.cache_id"
    local function problem(text) return select(2, cache_id.from_body("t:u", text)) end
    for _, text in ipairs({ "{}", "[]", '"x"', "1", "null", "[1, 2]", "true" }) do
      assert(problem(text) == "Must provide non-empty JSON data for the cache identifier", text)
    end
    -- Python's JSONDecodeError text, which the original put after "JSON parsing error: "
    assert(problem("") == "JSON parsing error: Expecting value: line 1 column 1 (char 0)", problem(""))
    assert(problem("{{{{((((") ==
      "JSON parsing error: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)", problem("{{{{(((("))
    assert(problem('{"a": 1} x') == "JSON parsing error: Extra data: line 1 column 10 (char 9)", problem('{"a": 1} x'))
    assert(problem('{"a":\n  }') == "JSON parsing error: Expecting value: line 2 column 3 (char 8)", problem('{"a":\n  }'))
  )LUA") == "");
}

TEST_CASE("file cache: secure_filename follows werkzeug", "[file_cache]") {
  // Expected values printed by werkzeug 1.0's rules under Python 3.11 (see the spec, §1.4).
  CHECK(run_with_scripts(R"LUA(
    local secure = require("file_cache.secure_filename").secure_filename
    local cases = {
      { "My cool movie.mov", "My_cool_movie.mov" },
      { "../../../etc/passwd", "etc_passwd" },
      { "i contain cool \195\188ml\195\164uts.txt", "i_contain_cool_umlauts.txt" },
      { "test.json", "test.json" },
      { "a\194\160b.txt", "a_b.txt" },                      -- no-break space: NFKD makes it a space
      { "\239\172\129le.txt", "file.txt" },                  -- the ligature fi
      { "\239\188\161\239\189\130\239\189\131.txt", "Abc.txt" }, -- fullwidth letters
      { "\194\189.txt", "12.txt" },                          -- one half: 1, fraction slash, 2
      { "na\195\175ve caf\195\169.pdf", "naive_cafe.pdf" },
      { "Stra\195\159e.txt", "Strae.txt" },                  -- sharp s has no ASCII part
      { "\226\132\128.txt", "a_c.txt" },                     -- account of: "a/c", then "/" is a space
      { "e\204\129.txt", "e.txt" },                          -- a combining accent
      { "C:\\Users\\me\\report final.txt", "report_final.txt" },
      { "\\\\server\\share\\x.txt", "x.txt" },
      { "tab\there.txt", "tab_here.txt" },
      { "\28x\29y", "x_y" },                                 -- Python splits on \x1c..\x1f too
      { "a..b..", "a..b" },
      { "__init__.py", "init__.py" },
      { "-dash-.txt", "-dash-.txt" },
      { 'we"ird;na<me>.txt', "weirdname.txt" },
      -- Depot's fix: an empty result is "file", not a 500
      { "\230\151\165\230\156\172", "file" },
      { "...", "file" },
      { "\255\254", "file" },                                -- not UTF-8
      { "\192\175etc", "etc" },                              -- an overlong "/" is no "/"
    }
    for _, case in ipairs(cases) do
      local got = secure(case[1])
      assert(got == case[2], string.format("%q gave %q, expected %q", case[1], got, case[2]))
    end
  )LUA") == "");
}
