// Anything a worker watches in its epoll set: the listener, its timerfd and inbox, client
// connections, outbound HTTP sockets. The epoll tag is the EventSource pointer itself.
#pragma once

namespace depot {

struct Readiness {
  bool readable = false;
  bool writable = false;
  // Hang-up or an error condition (epoll reports EPOLLERR as an event with no flags).
  bool failed = false;
};

class EventSource {
 public:
  virtual ~EventSource() = default;
  virtual void on_ready(Readiness readiness) = 0;
};

}  // namespace depot
