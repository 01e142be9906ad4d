// The text exposition format of a scrape (see metrics_text.hpp).
#include "engine/metrics_text.hpp"

#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>

#include "bindings/kv_stats.hpp"
#include "engine/metrics.hpp"
#include "engine/server_core.hpp"

namespace depot::metrics {
namespace {

using Labels = std::vector<std::pair<std::string_view, std::string_view>>;

struct HistogramTotals {
  std::vector<uint64_t> buckets;  // per bucket, not cumulative
  double sum = 0;
  void add(const Histogram& histogram) {
    buckets.resize(histogram.bounds().size() + 1);
    for (size_t i = 0; i < buckets.size(); ++i) buckets[i] += histogram.bucket(i);
    sum += histogram.sum();
  }
};

class Text {
 public:
  void family(std::string_view name, std::string_view help, const char* type) {
    out_.append("# HELP ").append(name).push_back(' ');
    for (char c : help) {
      if (c == '\\')
        out_.append("\\\\");
      else if (c == '\n')
        out_.append("\\n");
      else
        out_.push_back(c);
    }
    out_.append("\n# TYPE ").append(name).push_back(' ');
    out_.append(type).push_back('\n');
  }

  void sample(std::string_view name, const Labels& labels, double value) {
    out_.append(name);
    write_labels(labels);
    out_.push_back(' ');
    write_number(value);
    out_.push_back('\n');
  }

  void histogram(std::string_view name, Labels labels, const std::vector<double>& bounds,
                 const HistogramTotals& totals) {
    std::string bucket_name = std::string(name) + "_bucket";
    uint64_t cumulative = 0;
    labels.emplace_back("le", "");
    for (size_t i = 0; i <= bounds.size(); ++i) {
      cumulative += i < totals.buckets.size() ? totals.buckets[i] : 0;
      std::string bound = i < bounds.size() ? number(bounds[i]) : "+Inf";
      labels.back().second = bound;
      sample(bucket_name, labels, static_cast<double>(cumulative));
    }
    labels.pop_back();
    sample(std::string(name) + "_sum", labels, totals.sum);
    sample(std::string(name) + "_count", labels, static_cast<double>(cumulative));
  }

  std::string take() { return std::move(out_); }

 private:
  static std::string number(double value) {
    if (std::isnan(value)) return "NaN";
    if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
    char text[32];
    if (value == std::floor(value) && std::fabs(value) < 9007199254740992.0) {
      snprintf(text, sizeof text, "%.0f", value);
      return text;
    }
    // The shortest form that reads back as the same number: 0.1, not 0.10000000000000001.
    for (int digits = 15; digits <= 17; ++digits) {
      snprintf(text, sizeof text, "%.*g", digits, value);
      if (std::strtod(text, nullptr) == value) break;
    }
    return text;
  }

  void write_number(double value) { out_.append(number(value)); }

  void write_labels(const Labels& labels) {
    if (labels.empty()) return;
    out_.push_back('{');
    for (size_t i = 0; i < labels.size(); ++i) {
      if (i > 0) out_.push_back(',');
      out_.append(labels[i].first).append("=\"");
      for (char c : labels[i].second) {
        if (c == '\\')
          out_.append("\\\\");
        else if (c == '"')
          out_.append("\\\"");
        else if (c == '\n')
          out_.append("\\n");
        else
          out_.push_back(c);
      }
      out_.push_back('"');
    }
    out_.push_back('}');
  }

  std::string out_;
};

void render_requests(Text& text, const ServerMetrics& metrics) {
  struct RouteTotals {
    uint64_t answers[kStatusClasses] = {};
    HistogramTotals latency;
  };
  std::map<std::pair<std::string, std::string>, RouteTotals> routes;
  uint64_t in_flight = 0, received = 0, sent = 0;
  for (const auto& worker : metrics.workers()) {
    worker->routes().for_each([&](const RouteSeries& series) {
      RouteTotals& totals = routes[{series.service, series.route}];
      for (size_t i = 0; i < kStatusClasses; ++i) totals.answers[i] += series.answers[i].get();
      totals.latency.add(series.latency);
    });
    in_flight += worker->in_flight();
    received += worker->bytes_received();
    sent += worker->bytes_sent();
  }
  text.family("depot_http_requests_total",
              "Requests answered, by service, route pattern and status class (code none: the "
              "client left first).",
              "counter");
  for (const auto& [key, totals] : routes) {
    for (size_t i = 0; i < kStatusClasses; ++i) {
      if (totals.answers[i] == 0) continue;
      text.sample("depot_http_requests_total",
                  {{"service", key.first}, {"route", key.second}, {"code", kStatusClassLabels[i]}},
                  static_cast<double>(totals.answers[i]));
    }
  }
  text.family("depot_http_request_duration_seconds",
              "Time from a request's head to the end of its answer, by service and route pattern.",
              "histogram");
  for (const auto& [key, totals] : routes) {
    uint64_t count = 0;
    for (uint64_t answers : totals.answers) count += answers;
    if (count == 0) continue;
    text.histogram("depot_http_request_duration_seconds",
                   {{"service", key.first}, {"route", key.second}}, kLatencyBounds, totals.latency);
  }
  text.family("depot_http_requests_in_flight", "Requests routed and not answered yet.", "gauge");
  text.sample("depot_http_requests_in_flight", {}, static_cast<double>(in_flight));
  text.family("depot_http_received_bytes_total", "Bytes read from client connections.", "counter");
  text.sample("depot_http_received_bytes_total", {}, static_cast<double>(received));
  text.family("depot_http_sent_bytes_total", "Bytes written to client connections.", "counter");
  text.sample("depot_http_sent_bytes_total", {}, static_cast<double>(sent));
}

void render_upstreams(Text& text, const ServerMetrics& metrics) {
  std::map<std::string, std::array<uint64_t, kUpstreamOutcomeCount>> hosts;
  for (const auto& worker : metrics.workers()) {
    worker->upstreams().for_each([&](const UpstreamSeries& series) {
      auto& outcomes = hosts[series.host];
      for (size_t i = 0; i < kUpstreamOutcomeCount; ++i) outcomes[i] += series.outcomes[i].get();
    });
  }
  text.family("depot_upstream_requests_total",
              "Attempts of the http binding (retries each count), by host and outcome (status "
              "class or error kind).",
              "counter");
  for (const auto& [host, outcomes] : hosts) {
    for (size_t i = 0; i < kUpstreamOutcomeCount; ++i) {
      if (outcomes[i] == 0) continue;
      text.sample("depot_upstream_requests_total",
                  {{"host", host}, {"outcome", kUpstreamOutcomes[i]}},
                  static_cast<double>(outcomes[i]));
    }
  }
}

void render_server(Text& text, ServerCore& core) {
  const ServerMetrics& metrics = core.metrics();
  text.family("depot_http_connections_open", "Client connections open now.", "gauge");
  text.sample("depot_http_connections_open", {},
              static_cast<double>(core.open_connections().load(std::memory_order_relaxed)));
  text.family(
      "depot_lua_memory_bytes",
      "Memory of the Lua states of each worker (all live generations), refreshed every second.",
      "gauge");
  for (size_t i = 0; i < metrics.workers().size(); ++i) {
    std::string worker = std::to_string(i);
    text.sample("depot_lua_memory_bytes", {{"worker", worker}},
                static_cast<double>(metrics.workers()[i]->lua_memory()));
  }
  text.family("depot_reloads_total", "Script reloads (the start's load included), by result.",
              "counter");
  text.sample("depot_reloads_total", {{"result", "loaded"}},
              static_cast<double>(metrics.reloads_loaded()));
  text.sample("depot_reloads_total", {{"result", "refused"}},
              static_cast<double>(metrics.reloads_refused()));
  text.family("depot_generation", "The script generation serving new requests.", "gauge");
  text.sample("depot_generation", {}, static_cast<double>(metrics.generation()));

  std::optional<KvStats> kv = kv_stats(core.options().data_dir);
  if (!kv) return;  // no script opened kv
  text.family("depot_kv_map_size_bytes", "Size of the kv store's LMDB map (it grows when full).",
              "gauge");
  text.sample("depot_kv_map_size_bytes", {}, static_cast<double>(kv->map_size_bytes));
  text.family("depot_kv_used_pages", "Pages of the kv map in use, up to the last one written.",
              "gauge");
  text.sample("depot_kv_used_pages", {}, static_cast<double>(kv->used_pages));
  text.family("depot_kv_page_size_bytes", "Size of a kv page.", "gauge");
  text.sample("depot_kv_page_size_bytes", {}, static_cast<double>(kv->page_size_bytes));
  text.family("depot_queue_pending_jobs",
              "Jobs of a durable queue not done yet (due, waiting or running).", "gauge");
  for (const QueueStats& queue : kv->queues) {
    text.sample("depot_queue_pending_jobs", {{"queue", queue.name}},
                static_cast<double>(queue.pending));
  }
  text.family("depot_queue_dead_jobs",
              "Jobs of a durable queue that failed every attempt (its dead letters).", "gauge");
  for (const QueueStats& queue : kv->queues) {
    text.sample("depot_queue_dead_jobs", {{"queue", queue.name}}, static_cast<double>(queue.dead));
  }
}

Labels labels_of(const Family& family, const std::vector<std::string>& values) {
  Labels labels;
  for (size_t i = 0; i < family.labels.size(); ++i)
    labels.emplace_back(family.labels[i], values[i]);
  return labels;
}

void render_scripts(Text& text, const ServerMetrics& metrics) {
  struct Totals {
    double value = 0;
    HistogramTotals histogram;
  };
  std::map<const Family*, std::map<std::vector<std::string>, Totals>> counted;
  for (const auto& worker : metrics.workers()) {
    worker->scripts().for_each([&](const ScriptSeries& series) {
      Totals& totals = counted[&series.family][series.labels];
      totals.value += series.value.get();
      if (series.histogram) totals.histogram.add(*series.histogram);
    });
  }
  metrics.families().all().for_each([&](const Family& family) {
    text.family(family.name, family.help, type_name(family.type));
    std::map<std::vector<std::string>, Totals>& series = counted[&family];
    if (family.type == Type::gauge) {
      bool any = false;
      family.gauges().for_each([&](const GaugeSeries& gauge) {
        any = true;
        text.sample(family.name, labels_of(family, gauge.labels),
                    gauge.value.load(std::memory_order_relaxed));
      });
      if (family.labels.empty() && !any) text.sample(family.name, {}, 0);  // reads 0 until set
      return;
    }
    if (family.labels.empty() && series.empty())
      series[{}];  // an unlabeled metric reads 0 from the start
    for (const auto& [values, totals] : series) {
      if (family.type == Type::histogram) {
        text.histogram(family.name, labels_of(family, values), family.buckets, totals.histogram);
      } else {
        text.sample(family.name, labels_of(family, values), totals.value);
      }
    }
  });
}

}  // namespace

std::string render(ServerCore& core) {
  Text text;
  render_requests(text, core.metrics());
  render_upstreams(text, core.metrics());
  render_server(text, core);
  render_scripts(text, core.metrics());
  return text.take();
}

}  // namespace depot::metrics
