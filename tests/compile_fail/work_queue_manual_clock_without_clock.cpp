// expect: no matching (function for call|constructor for initialization)
// A manual_clock queue built without the clock it must read: no caller could advance that clock.
#include <ringmq/work_queue.hpp>

int main() {
  ringmq::work_queue<int, ringmq::clock<ringmq::manual_clock>> queue{{.capacity = 4}};
  return queue.try_send(1) ? 0 : 1;
}
