// LISTEN/NOTIFY for named events across replicas (see postgres_events.hpp).
#include "bindings/postgres_events.hpp"

#include <libpq-fe.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>

#include "engine/log.hpp"

namespace depot {
namespace {

const char* const kChannel = "depot_events";
constexpr size_t kMaxPayload = 7999;  // PostgreSQL's limit is 8000 bytes
constexpr int kReconnectMilliseconds = 1000;

class PostgresEventsRelay final : public NamedEventsRelay {
 public:
  PostgresEventsRelay(std::string url, NamedEvents& events)
      : url_(std::move(url)), events_(events), wakeup_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
    thread_ = std::thread([this] { run(); });
  }

  ~PostgresEventsRelay() override {
    stopping_ = true;
    signal();
    thread_.join();
    close(wakeup_);
  }

  void publish(const std::string& name) override {
    if (name.size() > kMaxPayload) return;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      outgoing_.push_back(name);
    }
    signal();
  }

 private:
  void signal() {
    uint64_t one = 1;
    ssize_t ignored = write(wakeup_, &one, sizeof one);
    (void)ignored;  // the counter only saturates, and then the thread is awake anyway
  }

  // Waits up to `milliseconds` for the wake-up fd (and the connection's socket, if any).
  void wait(PGconn* connection, int milliseconds) {
    pollfd fds[2] = {{wakeup_, POLLIN, 0}, {connection ? PQsocket(connection) : -1, POLLIN, 0}};
    poll(fds, connection ? 2 : 1, milliseconds);
    uint64_t count;
    ssize_t ignored = read(wakeup_, &count, sizeof count);
    (void)ignored;
  }

  // Connects and listens; null (after a log line) if it cannot.
  PGconn* listen() {
    PGconn* connection = PQconnectdb(url_.c_str());
    if (PQstatus(connection) == CONNECTION_OK) {
      PQsetNoticeProcessor(
          connection, [](void*, const char*) {}, nullptr);
      PGresult* result = PQexec(connection, (std::string("LISTEN ") + kChannel).c_str());
      bool listening = PQresultStatus(result) == PGRES_COMMAND_OK;
      PQclear(result);
      if (listening) return connection;
    }
    if (!warned_) {
      log::warn("depot.wait/notify stay within this process: no LISTEN on the kv store",
                {{"error", PQerrorMessage(connection)}});
      warned_ = true;
    }
    PQfinish(connection);
    return nullptr;
  }

  void send_outgoing(PGconn* connection) {
    std::deque<std::string> names;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      names.swap(outgoing_);
    }
    for (const std::string& name : names) {
      const char* values[] = {kChannel, name.c_str()};
      int lengths[] = {static_cast<int>(std::strlen(kChannel)), static_cast<int>(name.size())};
      int formats[] = {0, 0};
      PQclear(PQexecParams(connection, "SELECT pg_notify($1, $2)", 2, nullptr, values, lengths,
                           formats, 0));
    }
  }

  void deliver_incoming(PGconn* connection) {
    int self = PQbackendPID(connection);
    while (PGnotify* notification = PQnotifies(connection)) {
      if (notification->be_pid != self) events_.wake_local(notification->extra);
      PQfreemem(notification);
    }
  }

  void run() {
    PGconn* connection = nullptr;
    while (!stopping_) {
      if (connection == nullptr && (connection = listen()) == nullptr) {
        wait(nullptr, kReconnectMilliseconds);
        std::lock_guard<std::mutex> lock(mutex_);
        outgoing_.clear();  // nobody hears them meanwhile
        continue;
      }
      send_outgoing(connection);
      if (PQconsumeInput(connection) == 0 || PQstatus(connection) == CONNECTION_BAD) {
        log::warn("depot.wait/notify: the kv store's connection dropped; listening again",
                  {{"error", PQerrorMessage(connection)}});
        PQfinish(connection);
        connection = nullptr;
        continue;
      }
      deliver_incoming(connection);
      wait(connection, -1);
    }
    if (connection) PQfinish(connection);
  }

  std::string url_;
  NamedEvents& events_;
  int wakeup_;
  std::atomic<bool> stopping_{false};
  bool warned_ = false;
  std::mutex mutex_;
  std::deque<std::string> outgoing_;
  std::thread thread_;
};

}  // namespace

std::unique_ptr<NamedEventsRelay> postgres_events_relay(const std::string& url,
                                                        NamedEvents& events) {
  return std::make_unique<PostgresEventsRelay>(url, events);
}

}  // namespace depot
