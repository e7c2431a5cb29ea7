// expect: T's move constructor and destructor must be noexcept
// An element type whose move constructor may throw.
#include <ringmq/ring.hpp>

#include <string>

struct throwing_move {
  throwing_move() = default;
  throwing_move(throwing_move&& other) : text(other.text) {}  // copies, so it may throw
  std::string text;
};

int main() {
  ringmq::ring<throwing_move> ring(8);
  return ring.try_push(throwing_move{}) ? 0 : 1;
}
