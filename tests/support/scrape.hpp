// Reading /metrics in tests: one scrape, and the value of one series in it.
#pragma once

#include <cstdint>
#include <string>

namespace depot::testing {

// GET /metrics on 127.0.0.1:`port`; the body (throws unless the answer is a 200).
std::string scrape(uint16_t port);
// The value of the series written exactly as `series` (name and labels, as Depot writes them:
// `depot_http_requests_total{service="app",route="GET /x",code="2xx"}`), or -1 if absent.
double sample(const std::string& text, const std::string& series);
// `promtool check metrics` on `text`: "" when it passes, else what promtool said. Throws if
// promtool is not installed.
std::string promtool_check(const std::string& text);

}  // namespace depot::testing
