// Lua module `blob_driver`: the C++ half of the `blob` module (bindings/blob.lua), what Lua cannot
// know by itself — `data_dir` (absolute: the default root of file stores), `settings`, where the
// bytes live, from the config document's `storage` section and the environment (the environment
// wins, as for every server setting), and `mime_type(name)`, and `content_disposition(name)`, what
// res:file would send for that download name (so a relayed S3 object gets the same headers as a
// file). Settings are checked here, once, Checked here, once, so that a bad setting fails the
// service's load — and `depot check` — with a message naming it, instead of the first upload:
//
//   blobs                  "" (default: files under the data dir) or "s3://bucket[/prefix]"
//                          (DEPOT_BLOB_URL)
//   s3_endpoint            "http(s)://host[:port]" (AWS_ENDPOINT_URL); default: AWS's regional
//                          endpoint
//   s3_addressing          "path" or "virtual" (host-style); default: path with an endpoint,
//                          virtual on AWS
//   blob_downloads         "stream" (default: the server relays the bytes) or "redirect" (a
//                          presigned URL)
//   blob_redirect_seconds  how long a presigned URL works (default 300)
//
// Credentials are not here: the blob module reads AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY when it
// signs, so they never sit in a Lua table a script could print.
#include <cstdlib>
#include <filesystem>
#include <string>

#include "bindings/binding.hpp"
#include "engine/http_util.hpp"
#include "engine/static_file.hpp"

namespace depot {
namespace {

std::string setting(const nlohmann::json& storage, const char* key, const char* variable) {
  const char* value = variable != nullptr ? std::getenv(variable) : nullptr;
  if (value != nullptr && *value != '\0') return value;
  if (storage.is_object() && storage.contains(key) && storage[key].is_string())
    return storage[key].get<std::string>();
  return "";
}

// blob_driver.mime_type(name) → "text/plain; charset=utf-8", ...
int lua_mime_type(lua_State* L) {
  std::string_view name = check_string_view(L, 1, "blob_driver.mime_type", "name");
  std::string_view type = http::mime_type_for(name);
  lua_pushlstring(L, type.data(), type.size());
  return 1;
}

// blob_driver.content_disposition(download_name) → 'attachment; filename="..."', as res:file sends
int lua_content_disposition(lua_State* L) {
  std::string_view name = check_string_view(L, 1, "blob_driver.content_disposition", "name");
  std::string value = static_file::content_disposition(name);
  lua_pushlstring(L, value.data(), value.size());
  return 1;
}

struct Settings {
  std::string url, endpoint, addressing, downloads;
  double redirect_seconds = 300;
};

// The settings from `config` and the environment; "" or what is wrong with them.
std::string read_settings(const nlohmann::json& config, Settings& settings) {
  nlohmann::json storage =
      config.is_object() && config.contains("storage") ? config["storage"] : nlohmann::json();
  if (!storage.is_null() && !storage.is_object()) return "config: storage must be an object";
  settings.url = setting(storage, "blobs", "DEPOT_BLOB_URL");
  settings.endpoint = setting(storage, "s3_endpoint", "AWS_ENDPOINT_URL");
  settings.addressing = setting(storage, "s3_addressing", nullptr);
  settings.downloads = setting(storage, "blob_downloads", nullptr);
  if (storage.is_object() && storage.contains("blob_redirect_seconds")) {
    const nlohmann::json& value = storage["blob_redirect_seconds"];
    if (!value.is_number() || value.get<double>() < 1 || value.get<double>() > 604800)
      return "config: storage.blob_redirect_seconds must be a number 1..604800";
    settings.redirect_seconds = value.get<double>();
  }
  const std::string& url = settings.url;
  if (!url.empty() && url.rfind("s3://", 0) != 0)
    return "config: storage.blobs must be \"s3://bucket[/prefix]\" (or unset: files), got \"" +
           url + "\"";
  if (url.size() == 5 || (url.size() > 5 && url[5] == '/'))
    return "config: storage.blobs: the bucket is missing in \"" + url + "\"";
  const std::string& endpoint = settings.endpoint;
  if (!endpoint.empty() && endpoint.rfind("http://", 0) != 0 && endpoint.rfind("https://", 0) != 0)
    return "config: storage.s3_endpoint must start with http:// or https://, got \"" + endpoint +
           "\"";
  if (settings.addressing.empty()) settings.addressing = endpoint.empty() ? "virtual" : "path";
  if (settings.addressing != "path" && settings.addressing != "virtual")
    return "config: storage.s3_addressing must be \"path\" or \"virtual\", got \"" +
           settings.addressing + "\"";
  if (settings.downloads.empty()) settings.downloads = "stream";
  if (settings.downloads != "stream" && settings.downloads != "redirect")
    return "config: storage.blob_downloads must be \"stream\" or \"redirect\", got \"" +
           settings.downloads + "\"";
  return "";
}

void push_settings(lua_State* L, const Settings& settings) {
  lua_createtable(L, 0, 5);
  lua_pushstring(L, settings.url.c_str());
  lua_setfield(L, -2, "url");
  lua_pushstring(L, settings.endpoint.c_str());
  lua_setfield(L, -2, "endpoint");
  lua_pushstring(L, settings.addressing.c_str());
  lua_setfield(L, -2, "addressing");
  lua_pushstring(L, settings.downloads.c_str());
  lua_setfield(L, -2, "downloads");
  lua_pushnumber(L, settings.redirect_seconds);
  lua_setfield(L, -2, "redirect_seconds");
}

}  // namespace

int open_blob_driver(lua_State* L) {
  {
    Settings settings;
    std::string error = read_settings(binding_context(L).config, settings);
    if (error.empty()) {
      lua_newtable(L);
      push_settings(L, settings);
    } else {
      lua_pushlstring(L, error.data(), error.size());
    }
  }
  // Raised outside the block: a Lua error must not skip the strings' destructors.
  if (lua_type(L, -1) == LUA_TSTRING) return lua_error(L);
  lua_setfield(L, -2, "settings");
  lua_pushstring(L, std::filesystem::absolute(binding_context(L).data_dir).c_str());
  lua_setfield(L, -2, "data_dir");
  lua_pushcfunction(L, lua_mime_type);
  lua_setfield(L, -2, "mime_type");
  lua_pushcfunction(L, lua_content_disposition);
  lua_setfield(L, -2, "content_disposition");
  return 1;
}

}  // namespace depot
