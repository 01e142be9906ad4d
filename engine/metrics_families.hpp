// The metric families scripts register with the `metrics` module (bindings/metrics.cpp). They
// belong to the server, not to a Lua state, so they survive a hot reload: registering a name again
// with the same type, labels and buckets returns the family already there (its counts go on);
// registering it with another type, labels or buckets is refused, and so the reload is too.
//
// Counters and histograms count per worker (WorkerMetrics::script_series) and are added up at
// scrape time. Gauges are one value for the whole server, whichever worker sets it, so their
// series live here; setting one is an atomic store, adding to one a compare-and-swap loop.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/metrics_cells.hpp"

namespace depot::metrics {

struct MetricError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

// Prometheus' rules: metric names [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]*
// and not starting with "__".
bool valid_metric_name(std::string_view name);
bool valid_label_name(std::string_view name);

enum class Type { counter, gauge, histogram };
const char* type_name(Type type);

struct GaugeSeries {
  explicit GaugeSeries(std::vector<std::string> labels) : labels(std::move(labels)) {}
  std::vector<std::string> labels;
  std::atomic<double> value{0};
  void set(double v) { value.store(v, std::memory_order_relaxed); }
  void add(double delta);
};

// Label sets a family may have on one worker (or, for a gauge, in the server): a script that
// labels by user id or path must not grow the server's memory without bound.
constexpr size_t kMaxSeriesPerFamily = 1000;

struct Family {
  Family(std::string name, std::string help, Type type, std::vector<std::string> labels,
         std::vector<double> buckets)
      : name(std::move(name)),
        help(std::move(help)),
        type(type),
        labels(std::move(labels)),
        buckets(std::move(buckets)) {}
  const std::string name;
  const std::string help;  // the first registration's
  const Type type;
  const std::vector<std::string> labels;
  const std::vector<double> buckets;  // histograms: sorted upper bounds

  // A gauge's series for one label set, created on first use; any thread. Throws MetricError
  // past kMaxSeriesPerFamily.
  GaugeSeries& gauge(const std::vector<std::string>& values, const std::string& key);
  const SeriesList<GaugeSeries>& gauges() const { return gauges_; }

 private:
  std::mutex mutex_;
  std::unordered_map<std::string, GaugeSeries*> gauge_index_;
  SeriesList<GaugeSeries> gauges_;
};

class Families {
 public:
  // The family `name`, created by its first registration. Throws MetricError for an invalid name,
  // label or bucket list, a name Depot reserves ("depot_…"), or a name registered differently.
  Family& define(const std::string& name, const std::string& help, Type type,
                 std::vector<std::string> labels, std::vector<double> buckets);
  const SeriesList<Family>& all() const { return families_; }

 private:
  std::mutex mutex_;
  std::unordered_map<std::string, Family*> by_name_;
  SeriesList<Family> families_;
};

// Checks what define() checks, without registering (the offline runtime of `depot admin`).
void check_definition(const std::string& name, Type type, const std::vector<std::string>& labels,
                      const std::vector<double>& buckets);

// The lookup key of a family's label set: unambiguous whatever bytes the values hold.
std::string series_key(const Family& family, const std::vector<std::string>& values);

}  // namespace depot::metrics
