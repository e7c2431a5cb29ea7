// Turns a hang in a threaded ring test into a test failure.
//
// A ring that loses a wake-up leaves a thread blocked in push or pop for good, and the test
// would hang until the test runner kills it, without saying where. close_watchdog closes the
// ring once a time limit passes, and again every 10 ms after that, since each close() wakes
// every sleeper anew. The blocked threads return, the test joins them, and then it checks
// fired() and reports the hang.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace ringmq_test {

template <class Ring>
class close_watchdog {
 public:
  close_watchdog(Ring& ring, std::chrono::seconds limit)
      : thread_([this, &ring, limit] { run(ring, limit); }) {}

  close_watchdog(const close_watchdog&) = delete;
  close_watchdog& operator=(const close_watchdog&) = delete;

  ~close_watchdog() { stop(); }

  // Ends the watch. Call it after joining the threads under watch, then check fired().
  void stop() {
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      stopped_ = true;
    }
    stop_requested_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

  // Whether the limit passed before stop(), so that the watchdog closed the ring.
  bool fired() const {
    const std::lock_guard<std::mutex> lock(mutex_);
    return fired_;
  }

 private:
  void run(Ring& ring, std::chrono::seconds limit) {
    std::unique_lock<std::mutex> lock(mutex_);
    if (stop_requested_.wait_for(lock, limit, [this] { return stopped_; })) return;
    fired_ = true;
    while (!stopped_) {
      ring.close();
      stop_requested_.wait_for(lock, std::chrono::milliseconds(10), [this] { return stopped_; });
    }
  }

  mutable std::mutex mutex_;
  std::condition_variable stop_requested_;
  bool stopped_ = false;
  bool fired_ = false;
  std::thread thread_;
};

}  // namespace ringmq_test
