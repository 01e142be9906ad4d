// A scrape: every worker's counts added up and written in Prometheus' text exposition format,
// version 0.0.4 (https://prometheus.io/docs/instrumenting/exposition_formats/). Runs on any
// thread (a worker answering /metrics, or the admin listener's thread), without a lock on the
// workers' counts; cost linear in the number of series. Reads the kv store's statistics in a
// read transaction, as kv reads do.
#pragma once

#include <string>

namespace depot {
class ServerCore;
}

namespace depot::metrics {

constexpr const char* kContentType = "text/plain; version=0.0.4; charset=utf-8";
// Where the engine serves the scrape, on the main listener or the admin one.
constexpr const char* kPath = "/metrics";

std::string render(ServerCore& core);

}  // namespace depot::metrics
