// expect: Policy must fit ringmq::wait_policy
// A user wait policy whose step() is not noexcept.
#include <ringmq/ring.hpp>

#include <cstdint>

struct sleepy_policy {
  static constexpr bool can_sleep = true;
  static ringmq::wait_step step(std::uint32_t) { return ringmq::wait_step::sleep; }
};

int main() {
  ringmq::ring<int, ringmq::wait<sleepy_policy>> ring(8);
  return ring.try_push(1) ? 0 : 1;
}
