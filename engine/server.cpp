// Server lifecycle: sockets, reactor threads, script generations, hot reload, graceful stop.
#include "engine/server.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pistache/reactor.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <condition_variable>
#include <cstring>
#include <future>
#include <mutex>

#include "bindings/fs_atomic_file.hpp"
#include "engine/generation.hpp"
#include "engine/listen_socket.hpp"
#include "engine/log.hpp"
#include "engine/metrics_listener.hpp"
#include "engine/metrics_text.hpp"
#include "engine/reload_watcher.hpp"
#include "engine/server_core.hpp"
#include "engine/unique_fd.hpp"
#include "engine/worker.hpp"

namespace depot {
namespace {

// Runs `work` on every worker and waits for all of them.
template <typename Result>
std::vector<Result> on_every_worker(ServerCore& core, std::function<Result(Worker&)> work) {
  std::vector<std::future<Result>> futures;
  for (Worker* worker : core.workers()) {
    auto promise = std::make_shared<std::promise<Result>>();
    futures.push_back(promise->get_future());
    worker->post([worker, promise, work] { promise->set_value(work(*worker)); });
  }
  std::vector<Result> results;
  for (auto& future : futures) results.push_back(future.get());
  return results;
}

// sendfile has no MSG_NOSIGNAL: a client that goes away mid-download raises SIGPIPE in the thread
// that writes, and its default action kills the whole process. `depot serve` ignores SIGPIPE, but
// an embedding program (a test harness) must not have to know. Threads started while this lives
// inherit a mask that blocks it, so their writes fail with EPIPE instead; the caller's own mask
// and the process's dispositions are left as they were.
class SigpipeBlockedInNewThreads {
 public:
  SigpipeBlockedInNewThreads() {
    sigset_t pipe;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, &previous_);
  }
  ~SigpipeBlockedInNewThreads() { pthread_sigmask(SIG_SETMASK, &previous_, nullptr); }
  SigpipeBlockedInNewThreads(const SigpipeBlockedInNewThreads&) = delete;
  SigpipeBlockedInNewThreads& operator=(const SigpipeBlockedInNewThreads&) = delete;

 private:
  sigset_t previous_;
};

}  // namespace

class Server::Impl {
 public:
  explicit Impl(Options options) : options_(std::move(options)) {}

  void start() {
    if (core_) throw std::logic_error("Server::start: already running");
    SigpipeBlockedInNewThreads sigpipe_blocked;
    if (options_.threads == 0) options_.threads = 1;
    std::filesystem::create_directories(options_.data_dir);
    std::vector<UniqueFd> fds;
    fds.push_back(bind_listener(options_.host, options_.port));
    port_ = bound_port(fds.front().get());
    for (size_t i = 1; i < options_.threads; ++i)
      fds.push_back(bind_listener(options_.host, port_));
    core_ = std::make_unique<ServerCore>(options_, std::move(fds));
    if (options_.metrics.enabled && !options_.metrics.listen.empty()) {
      try {
        ServerCore* core = core_.get();
        metrics_listener_ = std::make_unique<MetricsListener>(
            options_.metrics.listen, [core] { return metrics::render(*core); });
      } catch (...) {
        core_.reset();
        throw;
      }
    }
    reactor_ = Pistache::Aio::Reactor::create();
    reactor_->init(Pistache::Aio::AsyncContext(options_.threads, "depot-worker"));
    reactor_->addHandler(
        std::make_shared<Worker>(*core_, 0));  // a prototype: each thread runs a clone
    reactor_->run();
    auto cleanup = remove_abandoned_temporaries_on_pool();
    std::string error = reload();
    if (!error.empty()) {
      shutdown_reactor();
      throw std::runtime_error("scripts failed to load: " + error);
    }
    cleanup.wait();
    // Only now: a request accepted before every worker has its scripts would get a 503. Clients
    // that connected meanwhile wait in the backlog (the sockets listen since bind_listener).
    on_every_worker<bool>(*core_, [](Worker& worker) {
      worker.start_accepting();
      return true;
    });
    if (options_.watch_scripts) {
      std::vector<std::filesystem::path> roots = {options_.scripts_dir};
      for (const ServiceSpec& spec : options_.services) {
        if (spec.script.is_absolute()) roots.push_back(spec.script);
      }
      watcher_ = std::make_unique<ReloadWatcher>(roots, [this] { reload(); });
    }
    log::info("listening", {{"host", options_.host},
                            {"port", port_},
                            {"threads", options_.threads},
                            {"generation", generation_}});
  }

  // Temporary files of writers that died with an earlier process (kill -9 during uploads) would
  // otherwise stay until a service's own sweeper, holding disk space. Runs on the pool while the
  // scripts load; Server::start waits for it before accepting.
  std::future<void> remove_abandoned_temporaries_on_pool() {
    auto done = std::make_shared<std::promise<void>>();
    std::string root = options_.data_dir.string();
    bool queued = core_->pool().submit([done, root] {
      try {
        auto started = Clock::now();
        disk::AbandonedTemporaries removed = disk::remove_abandoned_temporaries(root);
        double ms = std::chrono::duration<double, std::milli>(Clock::now() - started).count();
        log::info(
            "abandoned temporary files removed",
            {{"data_dir", root}, {"files", removed.files}, {"bytes", removed.bytes}, {"ms", ms}});
      } catch (const std::exception& e) {
        log::warn("abandoned temporary files not removed",
                  {{"data_dir", root}, {"error", e.what()}});
      }
      done->set_value();
    });
    if (!queued) done->set_value();
    return done->get_future();
  }

  std::string reload() {
    std::lock_guard<std::mutex> lock(reload_mutex_);
    if (!core_) return "the server is not running";
    auto generation = make_generation(options_, generation_ + 1);
    auto started = Clock::now();
    std::shared_ptr<const Generation> shared = generation;
    auto errors = on_every_worker<std::string>(
        *core_, [shared](Worker& worker) { return worker.stage_generation(shared); });
    for (const std::string& error : errors) {
      if (error.empty()) continue;
      on_every_worker<bool>(*core_, [](Worker& worker) {
        worker.discard_staged();
        return true;
      });
      core_->metrics().reload_finished(false, generation->number);
      log::error("scripts refused; the previous generation keeps serving",
                 {{"generation", generation->number}, {"error", error}});
      return error;
    }
    on_every_worker<bool>(*core_, [](Worker& worker) {
      worker.activate_staged();
      return true;
    });
    generation_ = generation->number;
    core_->metrics().reload_finished(true, generation_);
    double ms = std::chrono::duration<double, std::milli>(Clock::now() - started).count();
    log::info("scripts loaded",
              {{"generation", generation_}, {"services", options_.services.size()}, {"ms", ms}});
    return "";
  }

  std::string add_service(ServiceSpec service) {
    {
      std::lock_guard<std::mutex> lock(reload_mutex_);
      options_.services.push_back(std::move(service));
    }
    if (!core_) return "";
    std::string error = reload();
    if (!error.empty()) {
      std::lock_guard<std::mutex> lock(reload_mutex_);
      options_.services.pop_back();
    }
    return error;
  }

  void stop() {
    if (!core_) return;
    watcher_.reset();
    std::unique_lock<std::mutex> lock(reload_mutex_);
    auto drained = std::make_shared<std::promise<void>>();
    auto remaining = std::make_shared<std::atomic<size_t>>(core_->workers().size());
    for (Worker* worker : core_->workers()) {
      worker->post([worker, drained, remaining] {
        worker->begin_drain([drained, remaining] {
          if (--*remaining == 0) drained->set_value();
        });
      });
    }
    auto result = drained->get_future().wait_for(options_.drain_timeout);
    if (result != std::future_status::ready) {
      log::warn("drain deadline passed; closing the remaining connections",
                {{"timeout_ms", options_.drain_timeout.count()}});
      on_every_worker<bool>(*core_, [](Worker& worker) {
        worker.close_all();
        return true;
      });
    }
    shutdown_reactor();
    log::info("stopped", {{"port", port_}});
  }

  size_t runtime_count() {
    if (!core_) return 0;
    auto counts = on_every_worker<size_t>(*core_, [](Worker& worker) {
      worker.collect_retired_runtimes();
      return worker.runtime_count();
    });
    size_t total = 0;
    for (size_t count : counts) total += count;
    return total;
  }

  void shutdown_reactor() {
    metrics_listener_.reset();  // it reads the workers' counts
    reactor_->shutdown();
    // Blocking work still running posts its results to workers: let it finish while they exist.
    core_->pool().stop();
    reactor_.reset();  // joins the worker threads, then destroys the workers here
    core_.reset();
  }

  Options options_;
  uint16_t port_ = 0;
  uint64_t generation_ = 0;
  std::mutex reload_mutex_;
  std::unique_ptr<ServerCore> core_;
  std::shared_ptr<Pistache::Aio::Reactor> reactor_;
  std::unique_ptr<ReloadWatcher> watcher_;
  std::unique_ptr<MetricsListener> metrics_listener_;
};

Server::Server(Options options) : impl_(std::make_unique<Impl>(std::move(options))) {}
Server::~Server() {
  stop();
}
void Server::start() {
  impl_->start();
}
uint16_t Server::port() const {
  return impl_->port_;
}
uint16_t Server::metrics_port() const {
  return impl_->metrics_listener_ ? impl_->metrics_listener_->port() : 0;
}
std::string Server::reload() {
  return impl_->reload();
}
std::string Server::add_service(ServiceSpec service) {
  return impl_->add_service(std::move(service));
}
void Server::stop() {
  impl_->stop();
}
bool Server::running() const {
  return impl_->core_ != nullptr;
}
uint64_t Server::generation() const {
  return impl_->generation_;
}
size_t Server::runtime_count() {
  return impl_->runtime_count();
}

}  // namespace depot
