// Fuzz target for ringmq::ring. The input bytes choose a ring shape (producer and consumer roles,
// runtime or static capacity, capacity 1 to 5, slot layout) and a sequence of single-threaded
// calls. The calls run against the ring and against a std::deque with a closed flag. Every result,
// every popped element, size(), empty(), capacity() and is_closed() are compared after each
// call, and a failed push must leave its argument untouched. The elements are strings longer
// than the short-string buffer, so each one owns heap memory and AddressSanitizer reports an
// element that the ring leaks, destroys twice or reads after destroying it. A mismatch prints
// the call sequence and aborts.
//
// The blocking calls run only where they cannot wait: push() when the model has room or is
// closed, pop() when the model holds an element or is closed, and the _for forms with a zero
// timeout, which make one attempt.
#include <fuzzer/FuzzedDataProvider.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include <ringmq/ring.hpp>

namespace {

using ringmq::multi;
using ringmq::single;

// A sentinel that is not a sized sentinel, so that try_push_bulk takes its element-by-element
// path instead of claiming the whole run at once.
struct unsized_end {
  const std::string* end;

  friend bool operator==(std::string* at, unsized_end sentinel) { return at == sentinel.end; }
};

class ring_check {
 public:
  ring_check(FuzzedDataProvider& input, std::string shape, std::size_t capacity)
      : input_(input), shape_(std::move(shape)), capacity_(capacity) {}

  template <class Ring>
  void run(Ring& ring) {
    note("shape " + shape_ + ", capacity " + std::to_string(ring.capacity()));
    while (input_.remaining_bytes() > 0 && log_.size() < 2000) {
      step(ring);
      compare_observers(ring);
    }
    // The ring's destructor destroys what is left; AddressSanitizer checks that nothing leaks.
  }

 private:
  // An element with its own heap allocation: 40 characters, past any short-string buffer.
  std::string make_element() {
    std::string element = "element " + std::to_string(next_element_++);
    element.resize(40, static_cast<char>('a' + next_element_ % 26));
    return element;
  }

  [[noreturn]] void fail(const std::string& mismatch) const {
    std::fprintf(stderr, "ring differs from std::deque: %s\ncalls:\n", mismatch.c_str());
    for (const std::string& line : log_) std::fprintf(stderr, "  %s\n", line.c_str());
    std::abort();
  }

  void note(const std::string& text) { log_.push_back(text); }

  void expect(bool condition, const std::string& mismatch) const {
    if (!condition) fail(mismatch);
  }

  // The model's push: returns whether it took the element.
  bool model_push(const std::string& element) {
    if (closed_ || model_.size() == capacity_) return false;
    model_.push_back(element);
    return true;
  }

  std::optional<std::string> model_pop() {
    if (model_.empty()) return std::nullopt;
    std::string front = std::move(model_.front());
    model_.pop_front();
    return front;
  }

  void expect_popped(const std::optional<std::string>& got, const char* call) {
    const std::optional<std::string> expected = model_pop();
    note(std::string(call) + " -> " + (got ? *got : std::string("nothing")));
    expect(got.has_value() == expected.has_value(),
           std::string(call) + " returned " + (got ? "an element" : "nothing") + ", expected " +
               (expected ? "'" + *expected + "'" : std::string("nothing")));
    if (got) {
      expect(*got == *expected,
             std::string(call) + " returned '" + *got + "', expected '" + *expected + "'");
    }
  }

  void expect_pushed(bool pushed, const std::string& element, const std::string& argument,
                     const char* call) {
    const bool expected = model_push(element);
    note(std::string(call) + " '" + element + "' -> " + (pushed ? "true" : "false"));
    expect(pushed == expected, std::string(call) + " returned " + (pushed ? "true" : "false") +
                                   ", expected " + (expected ? "true" : "false"));
    if (!pushed) {
      expect(argument == element,
             std::string(call) + " failed but changed its argument to '" + argument + "'");
    }
  }

  template <class Ring>
  void step(Ring& ring) {
    switch (input_.ConsumeIntegralInRange<int>(0, 13)) {
      case 0: {
        const std::string element = make_element();
        std::string argument = element;
        const bool pushed = ring.try_push(std::move(argument));
        expect_pushed(pushed, element, argument, "try_push(T&&)");
        break;
      }
      case 1: {
        const std::string element = make_element();
        const bool pushed = ring.try_push(element);
        expect_pushed(pushed, element, element, "try_push(const T&)");
        break;
      }
      case 2: {
        const std::string element(40, static_cast<char>('A' + next_element_++ % 26));
        const bool pushed = ring.try_emplace(std::size_t{40}, element[0]);
        expect_pushed(pushed, element, element, "try_emplace(40, c)");
        break;
      }
      case 3:
        expect_popped(ring.try_pop(), "try_pop()");
        break;
      case 4: {
        std::string out = "old value that try_pop(T&) must keep on failure";
        const std::string before = out;
        const bool popped = ring.try_pop(out);
        expect_popped(popped ? std::optional<std::string>(out) : std::nullopt, "try_pop(T&)");
        if (!popped) expect(out == before, "try_pop(T&) failed but changed its argument");
        break;
      }
      case 5:
      case 6:
        push_bulk(ring);
        break;
      case 7:
        pop_bulk(ring);
        break;
      case 8:
        note("close()");
        ring.close();
        closed_ = true;
        break;
      case 9: {
        // push() waits only while full and open, so it runs when it cannot wait.
        if (!closed_ && model_.size() == capacity_) break;
        const std::string element = make_element();
        std::string argument = element;
        const bool pushed = ring.push(std::move(argument));
        expect_pushed(pushed, element, argument, "push(T&&)");
        break;
      }
      case 10: {
        const std::string element = make_element();
        std::string argument = element;
        const bool pushed = ring.push_for(std::move(argument), std::chrono::nanoseconds(0));
        expect_pushed(pushed, element, argument, "push_for(T&&, 0)");
        break;
      }
      case 11:
        // pop() waits only while empty and open.
        if (!closed_ && model_.empty()) break;
        expect_popped(ring.pop(), "pop()");
        break;
      case 12:
        expect_popped(ring.pop_for(std::chrono::nanoseconds(0)), "pop_for(0)");
        break;
      default: {
        const std::string element = make_element();
        const bool pushed = ring.push_for(element, std::chrono::nanoseconds(0));
        expect_pushed(pushed, element, element, "push_for(const T&, 0)");
        break;
      }
    }
  }

  // try_push_bulk over a sized range (one claim for the run) or an unsized one (one claim per
  // element). The first `count` elements are moved into the ring and the rest stay untouched.
  template <class Ring>
  void push_bulk(Ring& ring) {
    const std::size_t length = input_.ConsumeIntegralInRange<std::size_t>(0, 7);
    const bool sized = input_.ConsumeBool();
    std::vector<std::string> elements;
    for (std::size_t i = 0; i < length; ++i) elements.push_back(make_element());
    std::vector<std::string> arguments = elements;

    std::string* first = arguments.data();
    const std::size_t count =
        sized ? ring.try_push_bulk(first, first + arguments.size())
              : ring.try_push_bulk(first, unsized_end{arguments.data() + arguments.size()});

    std::size_t expected = 0;
    while (expected < length && model_push(elements[expected])) ++expected;
    note(std::string("try_push_bulk(") + (sized ? "sized" : "unsized") + ", " +
         std::to_string(length) + " elements) -> " + std::to_string(count));
    expect(count == expected, "try_push_bulk moved " + std::to_string(count) + ", expected " +
                                  std::to_string(expected));
    for (std::size_t i = count; i < length; ++i) {
      expect(arguments[i] == elements[i],
             "try_push_bulk changed element " + std::to_string(i) + ", which it did not move");
    }
  }

  template <class Ring>
  void pop_bulk(Ring& ring) {
    const std::size_t max = input_.ConsumeIntegralInRange<std::size_t>(0, 7);
    std::vector<std::string> out(max + 1, std::string(40, '-'));
    const std::size_t count = ring.try_pop_bulk(out.data(), max);
    note("try_pop_bulk(" + std::to_string(max) + ") -> " + std::to_string(count));
    expect(count <= max, "try_pop_bulk popped " + std::to_string(count) + ", more than max " +
                             std::to_string(max));
    for (std::size_t i = 0; i < count; ++i) {
      const std::optional<std::string> expected = model_pop();
      expect(expected.has_value(), "try_pop_bulk popped '" + out[i] + "' from an empty ring");
      expect(out[i] == *expected, "try_pop_bulk element " + std::to_string(i) + " is '" + out[i] +
                                      "', expected '" + *expected + "'");
    }
    expect(count == max || model_.empty(),
           "try_pop_bulk popped " + std::to_string(count) + " of max " + std::to_string(max) +
               " but the model still holds " + std::to_string(model_.size()));
    for (std::size_t i = count; i <= max; ++i) {
      expect(out[i] == std::string(40, '-'), "try_pop_bulk wrote past its count");
    }
  }

  template <class Ring>
  void compare_observers(const Ring& ring) const {
    expect(ring.size() == model_.size(),
           "size() " + std::to_string(ring.size()) + ", expected " + std::to_string(model_.size()));
    expect(ring.empty() == model_.empty(), "empty() disagrees with the model");
    expect(ring.capacity() == capacity_, "capacity() " + std::to_string(ring.capacity()) +
                                             ", expected " + std::to_string(capacity_));
    expect(ring.is_closed() == closed_, "is_closed() disagrees with the model");
  }

  FuzzedDataProvider& input_;
  std::string shape_;
  std::size_t capacity_;
  std::deque<std::string> model_;
  bool closed_ = false;
  std::uint64_t next_element_ = 0;
  std::vector<std::string> log_;
};

template <class Producers, class Consumers, class Layout = ringmq::padded>
using runtime_ring = ringmq::ring<std::string, ringmq::producers<Producers>,
                                  ringmq::consumers<Consumers>, ringmq::slot_layout<Layout>>;

template <std::size_t N, class Producers, class Consumers>
using static_ring = ringmq::ring<std::string, ringmq::capacity<N>, ringmq::producers<Producers>,
                                 ringmq::consumers<Consumers>>;

template <class Ring>
void run_runtime(FuzzedDataProvider& input, const char* shape) {
  const std::size_t capacity = input.ConsumeIntegralInRange<std::size_t>(1, 5);
  Ring ring(capacity);
  ring_check check(input, std::string(shape) + ", runtime capacity", capacity);
  check.run(ring);
}

template <std::size_t N, class Producers, class Consumers>
void run_static(FuzzedDataProvider& input, const char* shape) {
  static_ring<N, Producers, Consumers> ring;
  ring_check check(input, std::string(shape) + ", capacity<" + std::to_string(N) + ">", N);
  check.run(ring);
}

template <class Producers, class Consumers>
void run_static_any(FuzzedDataProvider& input, const char* shape) {
  switch (input.ConsumeIntegralInRange<int>(1, 5)) {
    case 1:
      return run_static<1, Producers, Consumers>(input, shape);
    case 2:
      return run_static<2, Producers, Consumers>(input, shape);
    case 3:
      return run_static<3, Producers, Consumers>(input, shape);
    case 4:
      return run_static<4, Producers, Consumers>(input, shape);
    default:
      return run_static<5, Producers, Consumers>(input, shape);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider input(data, size);
  switch (input.ConsumeIntegralInRange<int>(0, 9)) {
    case 0:
      run_runtime<runtime_ring<multi, multi>>(input, "mpmc");
      break;
    case 1:
      run_runtime<runtime_ring<multi, single>>(input, "mpsc");
      break;
    case 2:
      run_runtime<runtime_ring<single, multi>>(input, "spmc");
      break;
    case 3:
      run_runtime<runtime_ring<single, single>>(input, "spsc");
      break;
    case 4:
      run_runtime<runtime_ring<multi, multi, ringmq::packed>>(input, "mpmc packed");
      break;
    case 5:
      run_runtime<runtime_ring<single, single, ringmq::packed>>(input, "spsc packed");
      break;
    case 6:
      run_static_any<multi, multi>(input, "mpmc");
      break;
    case 7:
      run_static_any<multi, single>(input, "mpsc");
      break;
    case 8:
      run_static_any<single, multi>(input, "spmc");
      break;
    default:
      run_static_any<single, single>(input, "spsc");
      break;
  }
  return 0;
}
