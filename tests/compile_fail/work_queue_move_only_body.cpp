// expect: T must be copy-constructible
// A move-only body: a receive hands out a copy, so the queue rejects it at compile time.
#include <ringmq/work_queue.hpp>

#include <memory>

int main() {
  ringmq::work_queue<std::unique_ptr<int>> queue;
  return queue.try_send(std::make_unique<int>(1)) ? 0 : 1;
}
