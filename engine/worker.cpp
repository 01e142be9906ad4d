// A reactor thread's event dispatch, timers, inbox, listener and runtime generations (worker.hpp).
#include "engine/worker.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string_view>

#include "engine/access_log.hpp"
#include "engine/connection.hpp"
#include "engine/heap_trim.hpp"
#include "engine/log.hpp"
#include "engine/metrics.hpp"
#include "engine/runtime.hpp"
#include "engine/server_core.hpp"
#include "engine/task.hpp"
#include "engine/unique_fd.hpp"
#include "engine/worker_inbox.hpp"

namespace depot {

using Pistache::Polling::NotifyOn;

namespace {
Pistache::Flags<NotifyOn> to_flags(Interest interest) {
  switch (interest) {
    case Interest::read:
      return Pistache::Flags<NotifyOn>(NotifyOn::Read);
    case Interest::write:
      return Pistache::Flags<NotifyOn>(NotifyOn::Write);
    case Interest::read_write:
      return Pistache::Flags<NotifyOn>(NotifyOn::Read | NotifyOn::Write);
    case Interest::none:
      break;
  }
  return Pistache::Flags<NotifyOn>(NotifyOn::None);
}
Pistache::Polling::Tag tag_of(EventSource* source) {
  return Pistache::Polling::Tag(reinterpret_cast<uint64_t>(source));
}
constexpr int kMaxAcceptsPerWakeup = 64;
constexpr auto kAcceptBackoff = std::chrono::milliseconds(100);
constexpr auto kSweepInterval = std::chrono::seconds(1);
}  // namespace

// Accepts connections from this worker's SO_REUSEPORT socket.
class Worker::Listener final : public EventSource {
 public:
  Listener(Worker& worker, UniqueFd fd) : worker_(worker), fd_(std::move(fd)) {}

  void start() { worker_.watch(fd_.get(), this, Interest::read); }
  // Closing removes it from epoll: the fd is never duplicated.
  void stop() { fd_.reset(); }

  void on_ready(Readiness) override {
    for (int i = 0; i < kMaxAcceptsPerWakeup && fd_.valid(); ++i) {
      sockaddr_storage address;
      socklen_t length = sizeof address;
      UniqueFd client(::accept4(fd_.get(), reinterpret_cast<sockaddr*>(&address), &length,
                                SOCK_NONBLOCK | SOCK_CLOEXEC));
      if (!client.valid()) {
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
          pause_after_exhaustion();
        }
        return;  // EAGAIN, or a connection that died in the backlog
      }
      if (!worker_.make_room_for_connection()) {
        refuse(std::move(client));
        continue;
      }
      int one = 1;
      ::setsockopt(client.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      worker_.add_connection(new Connection(worker_, std::move(client), address));
    }
  }

 private:
  // At max_connections with no idle connection to close: a quick answer rather than a client
  // left in the backlog until it gives up, and the listener keeps draining its queue.
  void refuse(UniqueFd client) {
    static constexpr std::string_view kBusy =
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: "
        "50\r\n"
        "Retry-After: 1\r\nConnection: close\r\n\r\n{\"error\":\"too many open "
        "connections\",\"status\":503}";
    [[maybe_unused]] ssize_t n =
        ::send(client.get(), kBusy.data(), kBusy.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (!refusing_)
      log::warn("refusing connections: max_connections reached", {{"worker", worker_.index()}});
    refusing_ = true;
  }

  // A level-triggered listener would spin while the process is out of descriptors.
  void pause_after_exhaustion() {
    log::warn("accept paused: out of file descriptors", {{"worker", worker_.index()}});
    worker_.rewatch(fd_.get(), this, Interest::none);
    worker_.add_timer(kAcceptBackoff, [this] {
      if (fd_.valid()) worker_.rewatch(fd_.get(), this, Interest::read);
    });
  }

  Worker& worker_;
  UniqueFd fd_;
  bool refusing_ = false;  // logged once per worker, not once per refused connection
};

// The timerfd, armed to the earliest TimerQueue deadline.
class Worker::Ticker final : public EventSource {
 public:
  explicit Ticker(Worker& worker)
      : worker_(worker), fd_(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)) {
    if (!fd_.valid()) throw std::runtime_error(std::string("timerfd_create: ") + strerror(errno));
  }
  int fd() const { return fd_.get(); }

  void arm(Clock::time_point deadline) {
    itimerspec spec{};
    auto since_epoch = deadline.time_since_epoch();
    auto seconds = std::chrono::duration_cast<std::chrono::seconds>(since_epoch);
    spec.it_value.tv_sec = seconds.count();
    spec.it_value.tv_nsec =
        std::chrono::duration_cast<std::chrono::nanoseconds>(since_epoch - seconds).count();
    if (spec.it_value.tv_sec == 0 && spec.it_value.tv_nsec == 0) spec.it_value.tv_nsec = 1;
    ::timerfd_settime(fd_.get(), TFD_TIMER_ABSTIME, &spec, nullptr);
  }

  void on_ready(Readiness) override {
    uint64_t expirations;
    while (::read(fd_.get(), &expirations, sizeof expirations) > 0) {
    }
    worker_.on_tick();
  }

 private:
  Worker& worker_;
  UniqueFd fd_;
};

Worker::Worker(ServerCore& core, size_t index)
    : core_(core),
      index_(index),
      metrics_(core.metrics().worker(index)),
      now_(Clock::now()),
      preemption_(core.watchdog().slot(index)) {}

Worker::~Worker() {
  // Runs on the thread destroying the reactor, after the worker thread has been joined. First of
  // all: completions still on their way (a TaskHandle's) are dropped from now on.
  if (inbox_) inbox_->close();
  for (Connection* connection : connections_) delete connection;
  for (Connection* connection : graveyard_) delete connection;
  extensions_.clear();
  tasks_.clear();
  staged_.reset();
  retired_.clear();
  active_.reset();
}

std::shared_ptr<Pistache::Aio::Handler> Worker::clone() const {
  return std::make_shared<Worker>(core_, core_.next_worker_index());
}

void Worker::registerPoller(Pistache::Polling::Epoll& poller) {
  poller_ = &poller;
  read_buffer_.resize(64 * 1024);
  ticker_ = std::make_unique<Ticker>(*this);
  inbox_ = std::make_shared<WorkerInbox>();
  poller.addFd(ticker_->fd(), Pistache::Flags<NotifyOn>(NotifyOn::Read), tag_of(ticker_.get()));
  poller.addFd(inbox_->fd(), Pistache::Flags<NotifyOn>(NotifyOn::Read), tag_of(inbox_.get()));
  listener_ = std::make_unique<Listener>(*this, core_.take_listen_fd(index_));
  sweep_timer_ = add_timer(kSweepInterval, [this] { sweep(); });
  core_.register_worker(index_, this);
}

void Worker::post(std::function<void()> work) {
  inbox_->push(std::move(work));
}

void Worker::start_accepting() {
  if (!draining_) listener_->start();
}

void Worker::watch(int fd, EventSource* source, Interest interest) {
  poller_->addFd(fd, to_flags(interest), tag_of(source));
}

void Worker::rewatch(int fd, EventSource* source, Interest interest) {
  poller_->rearmFd(fd, to_flags(interest), tag_of(source));
}

void Worker::unwatch(int fd) {
  poller_->removeFd(fd);
}

TimerQueue::Id Worker::add_timer(Clock::duration delay, TimerQueue::Callback callback) {
  return timers_.add(Clock::now() + delay, std::move(callback));
}

void Worker::cancel_timer(TimerQueue::Id id) {
  timers_.cancel(id);
}

void Worker::arm_timerfd() {
  if (timers_.empty()) return;
  Clock::time_point next = timers_.next_deadline();
  if (next == armed_for_) return;
  armed_for_ = next;
  ticker_->arm(next);
}

void Worker::on_tick() {
  now_ = Clock::now();
  armed_for_ = Clock::time_point::max();
  timers_.run_due(now_);
}

// Once a second: idle and stalled connections time out, and requests waiting without progress
// past their deadline are answered 503 (checked here rather than with a timer per request).
void Worker::sweep() {
  std::vector<Connection*> open(connections_.begin(), connections_.end());
  for (Connection* connection : open) connection->check_timeouts(now_);
  std::vector<uint64_t> overdue;
  for (auto& [id, task] : tasks_) {
    if (task->overdue(now_) && task->suspended()) overdue.push_back(id);
  }
  for (uint64_t id : overdue) {
    // Timer and job tasks have a deadline only when their script set one (depot.deadline).
    if (Task* task = find_task(id))
      task->abort(503, task->is_request() ? "request deadline exceeded" : "deadline exceeded");
  }
  publish_lua_memory();
  heap::trim_after_spike(core_.pool());
  sweep_timer_ = add_timer(kSweepInterval, [this] { sweep(); });
}

void Worker::publish_lua_memory() {
  size_t bytes = active_ ? active_->memory().used() : 0;
  if (staged_) bytes += staged_->memory().used();
  for (const auto& runtime : retired_) bytes += runtime->memory().used();
  metrics_.set_lua_memory(bytes);
}

void Worker::run_deferred() {
  while (!deferred_.empty()) {
    std::vector<std::function<void()>> batch;
    batch.swap(deferred_);
    for (auto& work : batch) {
      try {
        work();
      } catch (const std::exception& e) {
        log::error("deferred work failed", {{"worker", index_}, {"error", e.what()}});
      }
    }
  }
}

void Worker::onReady(const Pistache::Aio::FdSet& fds) {
  now_ = Clock::now();
  for (const auto& entry : fds) {
    auto* source = reinterpret_cast<EventSource*>(entry.getTag().value());
    Readiness readiness;
    readiness.readable = entry.isReadable();
    readiness.writable = entry.isWritable();
    readiness.failed = entry.isHangup() || (!readiness.readable && !readiness.writable);
    try {
      source->on_ready(readiness);
    } catch (const std::exception& e) {
      log::error("event handler failed", {{"worker", index_}, {"error", e.what()}});
    }
  }
  run_deferred();
  access_log::flush();
  for (Connection* connection : graveyard_) delete connection;
  graveyard_.clear();
  if (!retired_.empty()) collect_retired_runtimes();
  if (draining_) check_drained();
  arm_timerfd();
}

void Worker::add_connection(Connection* connection) {
  connections_.insert(connection);
  core_.open_connections().fetch_add(1, std::memory_order_relaxed);
  if (draining_) connection->begin_drain();
}

void Worker::retire_connection(Connection* connection) {
  if (connections_.erase(connection) == 0) return;
  core_.open_connections().fetch_sub(1, std::memory_order_relaxed);
  graveyard_.push_back(connection);
}

bool Worker::make_room_for_connection() {
  if (core_.open_connections().load(std::memory_order_relaxed) < core_.max_connections())
    return true;
  // Only this worker's idle connections can be closed from here; SO_REUSEPORT spreads clients
  // evenly, so each worker holds its share of them.
  if (idle_connections_.empty()) return false;
  idle_connections_.front()->close();
  return true;
}

RequestHandler* Worker::request_handler() {
  if (request_handler_ != nullptr) return request_handler_;
  return active_.get();
}

void Worker::add_idle(Connection* connection) {
  connection->idle_position = idle_connections_.insert(idle_connections_.end(), connection);
}

void Worker::remove_idle(Connection* connection) {
  idle_connections_.erase(connection->idle_position);
}

std::string Worker::stage_generation(const std::shared_ptr<const Generation>& generation) {
  try {
    staged_ = std::make_unique<Runtime>(this, generation);
    return "";
  } catch (const std::exception& e) {
    staged_.reset();
    return e.what();
  }
}

void Worker::activate_staged() {
  if (!staged_) return;
  if (active_) {
    active_->retire();
    retired_.push_back(std::move(active_));
  }
  active_ = std::move(staged_);
  active_->activate();
  collect_retired_runtimes();
  publish_lua_memory();
}

void Worker::discard_staged() {
  staged_.reset();
}

void Worker::collect_retired_runtimes() {
  for (auto it = retired_.begin(); it != retired_.end();) {
    if ((*it)->task_count() == 0) {
      it = retired_.erase(it);
    } else {
      ++it;
    }
  }
}

Task* Worker::find_task(uint64_t id) {
  auto it = tasks_.find(id);
  return it == tasks_.end() ? nullptr : it->second.get();
}

void Worker::add_task(std::unique_ptr<Task> task) {
  uint64_t id = task->id();
  tasks_.emplace(id, std::move(task));
}

void Worker::remove_task(uint64_t id) {
  auto it = tasks_.find(id);
  if (it == tasks_.end()) return;
  // The task may be removing itself from inside its own method: free it after this batch.
  std::unique_ptr<Task> task = std::move(it->second);
  tasks_.erase(it);
  Task* raw = task.release();
  defer([raw] { delete raw; });
}

void Worker::begin_drain(std::function<void()> done) {
  draining_ = true;
  drained_ = std::move(done);
  if (listener_) listener_->stop();
  if (active_) active_->retire();  // cancels timers and background work: no new tasks start
  std::vector<Connection*> open(connections_.begin(), connections_.end());
  for (Connection* connection : open) connection->begin_drain();
  check_drained();
}

void Worker::check_drained() {
  if (!drained_ || !connections_.empty()) return;
  for (auto& [id, task] : tasks_) {
    if (task->is_request()) return;
  }
  auto done = std::move(drained_);
  drained_ = nullptr;
  done();
}

void Worker::close_all() {
  std::vector<Connection*> open(connections_.begin(), connections_.end());
  for (Connection* connection : open) connection->close();
}

}  // namespace depot
