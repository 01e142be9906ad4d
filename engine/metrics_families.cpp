// Script-registered metric families and their validation (see metrics_families.hpp).
#include "engine/metrics_families.hpp"

#include <algorithm>
#include <cmath>

namespace depot::metrics {
namespace {
bool name_character(char c, bool first, bool colon_allowed) {
  bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
  return letter || (!first && c >= '0' && c <= '9') || (colon_allowed && c == ':');
}

bool valid_name(std::string_view name, bool colon_allowed) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    if (!name_character(name[i], i == 0, colon_allowed)) return false;
  }
  return true;
}

std::string describe(Type type, const std::vector<std::string>& labels) {
  std::string text = std::string(type_name(type)) + " with labels {";
  for (size_t i = 0; i < labels.size(); ++i) text += (i ? "," : "") + labels[i];
  return text + "}";
}
}  // namespace

bool valid_metric_name(std::string_view name) {
  return valid_name(name, true);
}

bool valid_label_name(std::string_view name) {
  return valid_name(name, false) && name.rfind("__", 0) != 0;
}

const char* type_name(Type type) {
  switch (type) {
    case Type::counter:
      return "counter";
    case Type::gauge:
      return "gauge";
    case Type::histogram:
      return "histogram";
  }
  return "untyped";
}

void GaugeSeries::add(double delta) {
  double current = value.load(std::memory_order_relaxed);
  while (!value.compare_exchange_weak(current, current + delta, std::memory_order_relaxed)) {
  }
}

GaugeSeries& Family::gauge(const std::vector<std::string>& values, const std::string& key) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto found = gauge_index_.find(key);
  if (found != gauge_index_.end()) return *found->second;
  if (gauge_index_.size() >= kMaxSeriesPerFamily) {
    throw MetricError(name + " has " + std::to_string(kMaxSeriesPerFamily) +
                      " label sets already (label by something bounded)");
  }
  GaugeSeries& series = gauges_.append(values);
  gauge_index_.emplace(key, &series);
  return series;
}

void check_definition(const std::string& name, Type type, const std::vector<std::string>& labels,
                      const std::vector<double>& buckets) {
  if (!valid_metric_name(name)) {
    throw MetricError("name '" + name +
                      "' is not a Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)");
  }
  if (name.rfind("depot_", 0) == 0)
    throw MetricError("names starting with depot_ are Depot's own: " + name);
  for (size_t i = 0; i < labels.size(); ++i) {
    if (!valid_label_name(labels[i])) {
      throw MetricError("label '" + labels[i] +
                        "' is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, not __…)");
    }
    if (type == Type::histogram && labels[i] == "le")
      throw MetricError("a histogram cannot have a label 'le'");
    if (std::find(labels.begin(), labels.begin() + static_cast<long>(i), labels[i]) !=
        labels.begin() + static_cast<long>(i)) {
      throw MetricError("label '" + labels[i] + "' is given twice");
    }
  }
  if (type != Type::histogram) return;
  if (buckets.empty()) throw MetricError("a histogram needs at least one bucket");
  for (size_t i = 0; i < buckets.size(); ++i) {
    if (!std::isfinite(buckets[i]) || (i > 0 && buckets[i] <= buckets[i - 1])) {
      throw MetricError("buckets must be finite numbers in increasing order");
    }
  }
}

Family& Families::define(const std::string& name, const std::string& help, Type type,
                         std::vector<std::string> labels, std::vector<double> buckets) {
  check_definition(name, type, labels, buckets);
  std::lock_guard<std::mutex> lock(mutex_);
  auto found = by_name_.find(name);
  if (found != by_name_.end()) {
    Family& existing = *found->second;
    if (existing.type != type || existing.labels != labels || existing.buckets != buckets) {
      throw MetricError(
          name + " is registered already as a " + describe(existing.type, existing.labels) +
          (existing.type == Type::histogram && existing.buckets != buckets ? " and other buckets"
                                                                           : "") +
          "; a changed definition takes a restart");
    }
    return existing;
  }
  Family& family = families_.append(name, help, type, std::move(labels), std::move(buckets));
  by_name_.emplace(name, &family);
  return family;
}

std::string series_key(const Family& family, const std::vector<std::string>& values) {
  const Family* address = &family;
  std::string key(reinterpret_cast<const char*>(&address), sizeof address);
  for (const std::string& value : values) {
    uint32_t length = static_cast<uint32_t>(value.size());
    key.append(reinterpret_cast<const char*>(&length), sizeof length);
    key.append(value);
  }
  return key;
}

}  // namespace depot::metrics
