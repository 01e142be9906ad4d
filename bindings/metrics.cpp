// Lua module `metrics`: a service's own Prometheus metrics, served with the engine's at /metrics.
//
//   local hits = metrics.counter(name, help [, label_names])            hits:inc([n [, values]])
//   local size = metrics.gauge(name, help [, label_names])      size:set(v [, values]) :inc :dec
//   local time = metrics.histogram(name, help [, label_names [, buckets]])  time:observe(v [,
//   values])
//
// `values` lists the label values in the order of `label_names`. Families belong to the server
// (engine/metrics_families.hpp): registering the same name, type, labels and buckets again (a hot
// reload, another worker, another service) is idempotent and the counts go on. In the offline
// runtime (`depot admin`) definitions are checked and the updates do nothing.
#include "engine/metrics.hpp"

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "bindings/binding.hpp"
#include "engine/server_core.hpp"
#include "engine/worker.hpp"

namespace depot {
namespace {

const char* const kMetricType = "depot.metrics.metric";
// Prometheus' client libraries' default buckets, in seconds.
const std::vector<double> kDefaultBuckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                             0.5,   1,    2.5,   5,    10};

struct Metric {
  metrics::Family* family = nullptr;                // the server's, or `offline`'s
  std::unique_ptr<metrics::Family> offline;         // no server: checked, never counted
  metrics::WorkerMetrics* worker = nullptr;         // null offline
  metrics::ScriptSeries* unlabeled = nullptr;       // the series without labels, once used
  metrics::GaugeSeries* unlabeled_gauge = nullptr;  // likewise for a gauge
};

Metric& check_metric(lua_State* L, const char* method) {
  auto* metric = static_cast<Metric*>(luaL_testudata(L, 1, kMetricType));
  if (metric == nullptr)
    luaL_error(L, "metrics: %s must be called on a metric (metric:%s(...))", method, method);
  return *metric;
}

std::vector<std::string> string_list(lua_State* L, int index, const char* function,
                                     const char* argument) {
  std::vector<std::string> list;
  if (lua_isnoneornil(L, index)) return list;
  if (!lua_istable(L, index)) luaL_error(L, "%s: %s must be a list of strings", function, argument);
  size_t count = lua_objlen(L, index);
  for (size_t i = 1; i <= count; ++i) {
    lua_rawgeti(L, index, static_cast<int>(i));
    if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER) {
      luaL_error(L, "%s: %s[%d] must be a string", function, argument, static_cast<int>(i));
    }
    list.emplace_back(lua_tostring(L, -1));
    lua_pop(L, 1);
  }
  return list;
}

std::vector<double> bucket_list(lua_State* L, int index) {
  if (lua_isnoneornil(L, index)) return kDefaultBuckets;
  if (!lua_istable(L, index)) luaL_error(L, "metrics.histogram: buckets must be a list of numbers");
  std::vector<double> buckets;
  size_t count = lua_objlen(L, index);
  for (size_t i = 1; i <= count; ++i) {
    lua_rawgeti(L, index, static_cast<int>(i));
    if (lua_type(L, -1) != LUA_TNUMBER)
      luaL_error(L, "metrics.histogram: buckets[%d] must be a number", static_cast<int>(i));
    buckets.push_back(lua_tonumber(L, -1));
    lua_pop(L, 1);
  }
  return buckets;
}

template <metrics::Type type>
int define(lua_State* L) {
  static const std::string function = std::string("metrics.") + metrics::type_name(type);
  std::string name = check_string(L, 1, function.c_str(), "name");
  std::string help = check_string(L, 2, function.c_str(), "help");
  std::vector<std::string> labels = string_list(L, 3, function.c_str(), "labels");
  std::vector<double> buckets =
      type == metrics::Type::histogram ? bucket_list(L, 4) : std::vector<double>{};
  auto* metric = new (lua_newuserdata(L, sizeof(Metric))) Metric{};
  luaL_getmetatable(L, kMetricType);
  lua_setmetatable(L, -2);
  std::string error;
  try {
    if (serving(L)) {
      Worker& worker = *binding_context(L).worker;
      metric->family = &worker.core().metrics().families().define(
          name, help, type, std::move(labels), std::move(buckets));
      metric->worker = &worker.metrics();
    } else {
      metrics::check_definition(name, type, labels, buckets);
      metric->offline = std::make_unique<metrics::Family>(name, help, type, std::move(labels),
                                                          std::move(buckets));
      metric->family = metric->offline.get();
    }
  } catch (const metrics::MetricError& e) {
    error = e.what();
  }
  if (!error.empty()) luaL_error(L, "%s: %s", function.c_str(), error.c_str());
  return 1;
}

// The label values at `index`, checked against the family's label names.
std::vector<std::string> label_values(lua_State* L, int index, const metrics::Family& family,
                                      const char* method) {
  std::string where = family.name + ":" + method;
  std::vector<std::string> values = string_list(L, index, where.c_str(), "label values");
  if (values.size() != family.labels.size()) {
    std::string names;
    for (const std::string& label : family.labels) names += (names.empty() ? "" : ", ") + label;
    luaL_error(L, "%s: expects %d label values (%s), got %d", where.c_str(),
               static_cast<int>(family.labels.size()), names.c_str(),
               static_cast<int>(values.size()));
  }
  return values;
}

double check_amount(lua_State* L, int index, const Metric& metric, const char* method,
                    double fallback) {
  if (lua_isnoneornil(L, index) && !std::isnan(fallback)) return fallback;
  double value = lua_type(L, index) == LUA_TNUMBER ? lua_tonumber(L, index) : NAN;
  if (!std::isfinite(value))
    luaL_error(L, "%s:%s: value must be a finite number", metric.family->name.c_str(), method);
  return value;
}

void require_type(lua_State* L, const Metric& metric, metrics::Type type, const char* method) {
  if (metric.family->type == type) return;
  luaL_error(L, "%s:%s: %s is a %s", metric.family->name.c_str(), method,
             metric.family->name.c_str(), metrics::type_name(metric.family->type));
}

// The series for the label values at `index` (null offline): `find` looks it up or creates it,
// and the one without labels is kept in `unlabeled`, so an unlabeled update costs no lookup.
template <typename Series, typename Find>
Series* series_for(lua_State* L, Metric& metric, Series*& unlabeled, int index, const char* method,
                   Find find) {
  const metrics::Family& family = *metric.family;
  if (family.labels.empty() && lua_isnoneornil(L, index) && unlabeled) return unlabeled;
  std::vector<std::string> values = label_values(L, index, family, method);
  if (metric.worker == nullptr) return nullptr;
  std::string error;
  Series* series = nullptr;
  try {
    series = &find(values, metrics::series_key(family, values));
  } catch (const metrics::MetricError& e) {
    error = e.what();
  }
  if (series == nullptr) luaL_error(L, "%s:%s: %s", family.name.c_str(), method, error.c_str());
  if (family.labels.empty()) unlabeled = series;
  return series;
}

// Counters and histograms count per worker.
metrics::ScriptSeries* worker_series(lua_State* L, Metric& metric, int index, const char* method) {
  return series_for(
      L, metric, metric.unlabeled, index,
      method, [&](const auto& values, const std::string& key) -> auto& {
        return metric.worker->script_series(*metric.family, values, key);
      });
}

// A gauge is one value for the server.
metrics::GaugeSeries* gauge_series(lua_State* L, Metric& metric, int index, const char* method) {
  return series_for(
      L, metric, metric.unlabeled_gauge, index,
      method, [&](const auto& values, const std::string& key) -> auto& {
        return metric.family->gauge(values, key);
      });
}

int metric_inc(lua_State* L) {
  Metric& metric = check_metric(L, "inc");
  double amount = check_amount(L, 2, metric, "inc", 1);
  switch (metric.family->type) {
    case metrics::Type::counter:
      if (amount < 0)
        luaL_error(L, "%s:inc: a counter only goes up (got %f)", metric.family->name.c_str(),
                   amount);
      if (metrics::ScriptSeries* series = worker_series(L, metric, 3, "inc"))
        series->value.add(amount);
      return 0;
    case metrics::Type::gauge:
      if (metrics::GaugeSeries* series = gauge_series(L, metric, 3, "inc")) series->add(amount);
      return 0;
    case metrics::Type::histogram:
      break;
  }
  return luaL_error(L, "%s:inc: a histogram takes observe(value)", metric.family->name.c_str());
}

int metric_dec(lua_State* L) {
  Metric& metric = check_metric(L, "dec");
  require_type(L, metric, metrics::Type::gauge, "dec");
  double amount = check_amount(L, 2, metric, "dec", 1);
  if (metrics::GaugeSeries* series = gauge_series(L, metric, 3, "dec")) series->add(-amount);
  return 0;
}

int metric_set(lua_State* L) {
  Metric& metric = check_metric(L, "set");
  require_type(L, metric, metrics::Type::gauge, "set");
  double value = check_amount(L, 2, metric, "set", NAN);
  if (metrics::GaugeSeries* series = gauge_series(L, metric, 3, "set")) series->set(value);
  return 0;
}

int metric_observe(lua_State* L) {
  Metric& metric = check_metric(L, "observe");
  require_type(L, metric, metrics::Type::histogram, "observe");
  double value = check_amount(L, 2, metric, "observe", NAN);
  if (metrics::ScriptSeries* series = worker_series(L, metric, 3, "observe"))
    series->histogram->observe(value);
  return 0;
}

int metric_tostring(lua_State* L) {
  Metric& metric = check_metric(L, "tostring");
  lua_pushfstring(L, "metrics.%s: %s", metrics::type_name(metric.family->type),
                  metric.family->name.c_str());
  return 1;
}

int metric_gc(lua_State* L) {
  static_cast<Metric*>(lua_touserdata(L, 1))->~Metric();
  return 0;
}

}  // namespace

int open_metrics(lua_State* L) {
  static const luaL_Reg methods[] = {{"inc", metric_inc},
                                     {"dec", metric_dec},
                                     {"set", metric_set},
                                     {"observe", metric_observe},
                                     {nullptr, nullptr}};
  define_metatable(L, kMetricType, methods, metric_gc, metric_tostring);
  static const luaL_Reg functions[] = {{"counter", define<metrics::Type::counter>},
                                       {"gauge", define<metrics::Type::gauge>},
                                       {"histogram", define<metrics::Type::histogram>},
                                       {nullptr, nullptr}};
  lua_newtable(L);
  luaL_register(L, nullptr, functions);
  return 1;
}

}  // namespace depot
