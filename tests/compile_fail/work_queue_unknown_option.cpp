// expect: ringmq::work_queue: unknown option
// A ring option passed to a work queue, which does not take it.
#include <ringmq/work_queue.hpp>

int main() {
  ringmq::work_queue<int, ringmq::capacity<8>> queue;
  return queue.try_send(1) ? 0 : 1;
}
