// The storage every metric is made of: values one thread writes and any thread reads, without a
// lock and without a read-modify-write (see engine/metrics.hpp for who writes what).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

namespace depot::metrics {

// A count one thread writes and any thread reads.
class Count {
 public:
  void add(uint64_t n) {
    value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  uint64_t get() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

// A real number one thread writes and any thread reads (a script's counter, a histogram's sum).
class Amount {
 public:
  void add(double n) {
    value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  double get() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// Buckets of one writer. `bounds` (sorted upper bounds, +Inf implied) must outlive it.
class Histogram {
 public:
  explicit Histogram(const std::vector<double>& bounds)
      : bounds_(bounds), buckets_(std::make_unique<Count[]>(bounds.size() + 1)) {}
  void observe(double value) {
    size_t i = 0;
    while (i < bounds_.size() && value > bounds_[i]) ++i;  // a dozen bounds: a scan beats a search
    buckets_[i].add(1);
    sum_.add(value);
  }
  const std::vector<double>& bounds() const { return bounds_; }
  // Observations in bucket i alone (i == bounds().size(): above the last bound).
  uint64_t bucket(size_t i) const { return buckets_[i].get(); }
  double sum() const { return sum_.get(); }

 private:
  const std::vector<double>& bounds_;
  std::unique_ptr<Count[]> buckets_;
  Amount sum_;
};

// An append-only list: one thread at a time appends, any thread walks it while it grows.
template <typename T>
class SeriesList {
 public:
  SeriesList() = default;
  SeriesList(const SeriesList&) = delete;
  SeriesList& operator=(const SeriesList&) = delete;
  ~SeriesList() {
    for (Node* node = head_.load(); node != nullptr;) delete std::exchange(node, node->next.load());
  }

  template <typename... Arguments>
  T& append(Arguments&&... arguments) {
    Node* node = new Node(std::forward<Arguments>(arguments)...);
    std::atomic<Node*>& link = tail_ == nullptr ? head_ : tail_->next;
    link.store(node, std::memory_order_release);  // readers see the node only once it is built
    tail_ = node;
    return node->value;
  }
  template <typename Visit>
  void for_each(Visit visit) const {
    for (Node* node = head_.load(std::memory_order_acquire); node != nullptr;
         node = node->next.load(std::memory_order_acquire)) {
      visit(node->value);
    }
  }

 private:
  struct Node {
    template <typename... Arguments>
    explicit Node(Arguments&&... arguments) : value(std::forward<Arguments>(arguments)...) {}
    T value;
    std::atomic<Node*> next{nullptr};
  };
  std::atomic<Node*> head_{nullptr};
  Node* tail_ = nullptr;  // the appending thread's alone
};

}  // namespace depot::metrics
