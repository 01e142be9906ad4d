// The round-robin relay (see round_robin.hpp).
#include "tests/support/round_robin.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <stdexcept>
#include <unordered_map>

namespace depot::testing {
namespace {

constexpr size_t kBufferBytes = 64 * 1024;

sockaddr_in loopback(uint16_t port) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(port);
  return address;
}

// One direction of a relayed connection: what was read from `from` and not yet written to `to`.
struct Direction {
  Direction(int source, int destination) : from(source), to(destination) {}
  int from;
  int to;
  char buffer[kBufferBytes];
  size_t start = 0;
  size_t end = 0;
  bool source_ended = false;
  bool done = false;  // the source ended and everything reached `to`, whose write side is shut

  // Moves what it can without waiting; false on an error that ends the whole connection.
  bool pump(bool& progressed) {
    while (!done) {
      if (start < end) {
        ssize_t sent = send(to, buffer + start, end - start, MSG_NOSIGNAL);
        if (sent < 0) return errno == EAGAIN || errno == EINTR;
        start += static_cast<size_t>(sent);
        progressed = true;
        continue;
      }
      start = end = 0;
      if (source_ended) {
        shutdown(to, SHUT_WR);
        done = true;
        progressed = true;
        break;
      }
      ssize_t got = recv(from, buffer, sizeof buffer, 0);
      if (got < 0) return errno == EAGAIN || errno == EINTR;
      if (got == 0) source_ended = true;
      end = static_cast<size_t>(got);
      progressed = true;
    }
    return true;
  }
};

struct Link {
  int client;
  int backend;
  Direction up{client, backend};
  Direction down{backend, client};

  Link(int client_fd, int backend_fd) : client(client_fd), backend(backend_fd) {}
  ~Link() {
    close(client);
    close(backend);
  }
  // False once the connection is over (both directions done, or an error).
  bool pump() {
    for (bool progressed = true; progressed;) {
      progressed = false;
      if (!up.pump(progressed) || !down.pump(progressed)) return false;
    }
    return !(up.done && down.done);
  }
};

void set_nonblocking(int fd) {
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

}  // namespace

RoundRobin::RoundRobin(std::vector<uint16_t> backends)
    : backends_(std::move(backends)), connections_(backends_.size()) {
  listener_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  sockaddr_in address = loopback(0);
  socklen_t length = sizeof address;
  if (bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      listen(listener_, 512) != 0 ||
      getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    close(listener_);
    throw std::runtime_error("round robin: cannot listen on 127.0.0.1");
  }
  port_ = ntohs(address.sin_port);
  stop_ = eventfd(0, EFD_CLOEXEC);
  relay_ = std::thread([this] { run(); });
}

RoundRobin::~RoundRobin() {
  uint64_t one = 1;
  if (write(stop_, &one, sizeof one) != sizeof one) std::terminate();
  relay_.join();
  close(stop_);
  close(listener_);
}

std::vector<uint64_t> RoundRobin::connections() const {
  std::vector<uint64_t> counts;
  for (const auto& count : connections_) counts.push_back(count.load());
  return counts;
}

void RoundRobin::run() {
  int epoll = epoll_create1(EPOLL_CLOEXEC);
  // Tags for the two descriptors that are not links.
  static char listener_tag, stop_tag;
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.ptr = &listener_tag;
  epoll_ctl(epoll, EPOLL_CTL_ADD, listener_, &event);
  event.data.ptr = &stop_tag;
  epoll_ctl(epoll, EPOLL_CTL_ADD, stop_, &event);
  std::unordered_map<Link*, std::unique_ptr<Link>> links;
  size_t next_backend = 0;
  for (bool stopping = false; !stopping;) {
    epoll_event events[64];
    int count = epoll_wait(epoll, events, 64, -1);
    for (int i = 0; i < count; ++i) {
      void* tag = events[i].data.ptr;
      if (tag == &stop_tag) {
        stopping = true;
      } else if (tag == &listener_tag) {
        for (int client;
             (client = accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0;) {
          size_t chosen = next_backend++ % backends_.size();
          int backend = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
          sockaddr_in address = loopback(backends_[chosen]);
          // Connecting on the loopback completes or fails at once; a dead backend drops the client.
          if (connect(backend, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
            close(backend);
            close(client);
            continue;
          }
          ++connections_[chosen];
          set_nonblocking(backend);
          auto link = std::make_unique<Link>(client, backend);
          // Edge-triggered on both sides: every pump runs each direction until it would wait, so
          // any change of readiness on either side is a new edge that pumps again.
          epoll_event link_event{};
          link_event.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
          link_event.data.ptr = link.get();
          epoll_ctl(epoll, EPOLL_CTL_ADD, client, &link_event);
          epoll_ctl(epoll, EPOLL_CTL_ADD, backend, &link_event);
          Link* key = link.get();
          links.emplace(key, std::move(link));
          if (!key->pump()) links.erase(key);
        }
      } else {
        auto* link = static_cast<Link*>(tag);
        // An earlier event of this batch may have ended it.
        if (links.count(link) != 0 && !link->pump()) links.erase(link);
      }
    }
  }
  links.clear();
  close(epoll);
}

}  // namespace depot::testing
