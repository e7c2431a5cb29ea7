// Fuzz target for ringmq::work_queue. The input bytes choose a queue type, its config and a
// sequence of calls. The calls are sends with and without delay, single and batch receives, ack,
// ack_batch, nack (plain, with a delay, with a detail text), release, extend, reject, redrive,
// dead-letter reads, clock steps, stats() and close(). They run against the queue and against
// the reference model in tests/support/work_queue_model.hpp. Every result is compared, and so
// are size() and the dead letters after every step. Settles use current receipts, stale ones (up
// to 48 earlier receipts are kept), a receipt of another queue and default-constructed ones. A
// receipt's fields cannot be set through the public API, so a default-constructed receipt is the
// only forgery there is. A mismatch prints the call sequence and aborts.
//
// stats() reaps, so calling it after every step would bring every expired lease back before the
// next call and hide a queue that loses track of one. So one bit of the input chooses, as in the
// seeded model test, between stats() after every step and stats() as one of the random steps.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "support/work_queue_model.hpp"

namespace {

using namespace ringmq_test::work_queue_model;

// The runner's choices, read from the input. Once the input is used up, every choice is 0 and
// the run stops after the current step.
class byte_source {
 public:
  byte_source(const std::uint8_t* data, std::size_t size) : input_(data, size) {}

  std::uint64_t draw(std::uint64_t bound) {
    if (bound <= 1) return 0;
    return input_.ConsumeIntegralInRange<std::uint64_t>(0, bound - 1);
  }
  bool exhausted() { return input_.remaining_bytes() == 0; }

 private:
  FuzzedDataProvider input_;
};

// A config drawn from the input, in the ranges of the seeded model test. Runs with retention
// keep every dead letter, which the model needs to follow receives that skip expired messages.
run_config draw_config(byte_source& source, bool fixed_backoff, bool drop_newest) {
  run_config config;
  config.capacity = 1 + source.draw(8);
  config.visibility_timeout = 1 + static_cast<nanos>(source.draw(10));
  config.max_visibility_timeout = config.visibility_timeout + static_cast<nanos>(source.draw(16));
  config.max_receive_count = static_cast<std::uint32_t>(source.draw(4));
  const bool with_retention = source.draw(2) == 0;
  config.retention = with_retention ? 20 + static_cast<nanos>(source.draw(100)) : never;
  config.dead_letter_capacity = with_retention ? 4096 : source.draw(5);
  config.backoff_initial = static_cast<nanos>(source.draw(12));
  config.nack_delay = fixed_backoff ? config.backoff_initial : 0;
  config.drop_newest = drop_newest;
  config.stats_every_step = source.draw(2) == 0;
  config.ack_batches = true;
  config.start = static_cast<nanos>(source.draw(1000));
  config.steps = 1000;  // the input usually runs out first
  config.send_weight = 80 + source.draw(150);
  config.receive_weight = 30 + source.draw(220);
  config.settle_weight = 150 + source.draw(250);
  config.advance_weight = 60 + source.draw(150);
  return config;
}

template <class Kind>
void run(byte_source& source) {
  const run_config config = draw_config(source, Kind::fixed_backoff, Kind::drop_newest);
  coverage seen;
  const std::string mismatch =
      sequence_runner<Kind, byte_source>(config, source, "fuzz input", seen).run();
  if (!mismatch.empty()) {
    std::fprintf(stderr, "work_queue differs from the model: %s\n", mismatch.c_str());
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  byte_source source(data, size);
  switch (source.draw(4)) {
    case 0:
      run<no_backoff_drop_oldest>(source);
      break;
    case 1:
      run<no_backoff_drop_newest>(source);
      break;
    case 2:
      run<fixed_backoff_drop_oldest>(source);
      break;
    default:
      run<fixed_backoff_drop_newest>(source);
      break;
  }
  return 0;
}
