// Model test of ringmq::work_queue: seeded random sequences of calls run against the queue and
// against the reference model in tests/support/work_queue_model.hpp, which describes what is
// compared and how the model handles the orders that the documentation leaves open.
//
// Each run draws its config from its seed. Runs with retention keep more dead letters (4096)
// than a run can produce, so that the model can learn from the dead-letter list which messages
// a receive skipped. Runs without retention use dead-letter capacities 0 to 4 to exercise both
// overflow policies. Half of the runs compare stats() after every step.
#include <catch2/catch.hpp>

#include <cstdint>
#include <random>
#include <string>

#include "support/work_queue_model.hpp"

using namespace ringmq_test::work_queue_model;

namespace {

// The config of the run with this seed.
run_config draw_config(std::uint64_t seed, bool fixed_backoff, bool drop_newest) {
  std::mt19937_64 random(seed);
  run_config config;
  config.capacity = 1 + random() % 8;
  config.visibility_timeout = 1 + static_cast<nanos>(random() % 10);
  config.max_visibility_timeout = config.visibility_timeout + static_cast<nanos>(random() % 16);
  config.max_receive_count = static_cast<std::uint32_t>(random() % 4);
  const bool with_retention = random() % 2 == 0;
  config.retention = with_retention ? 20 + static_cast<nanos>(random() % 100) : never;
  config.dead_letter_capacity = with_retention ? 4096 : random() % 5;
  config.backoff_initial = static_cast<nanos>(random() % 12);
  config.nack_delay = fixed_backoff ? config.backoff_initial : 0;
  config.drop_newest = drop_newest;
  config.stats_every_step = random() % 2 == 0;
  config.start = static_cast<nanos>(random() % 1000);
  config.steps = 60 + static_cast<int>(random() % 120);
  config.send_weight = 80 + random() % 150;
  config.receive_weight = 30 + random() % 220;
  config.settle_weight = 150 + random() % 250;
  config.advance_weight = 60 + random() % 150;
  return config;
}

// The runner's choices for one seed: the low bits of a 64-bit Mersenne Twister, reduced modulo
// the bound.
struct seeded_source {
  std::mt19937_64 random;

  std::uint64_t draw(std::uint64_t bound) { return random() % bound; }
  bool exhausted() const { return false; }
};

// Sequences per queue type; the four types together run four times as many.
constexpr std::uint64_t sequences = 800;

}  // namespace

TEMPLATE_TEST_CASE("work_queue: model agrees on random sequences", "[work_queue][model]",
                   no_backoff_drop_oldest, no_backoff_drop_newest, fixed_backoff_drop_oldest,
                   fixed_backoff_drop_newest) {
  coverage seen;
  const std::uint64_t first_seed =
      0x30DE1000ULL + (TestType::fixed_backoff ? 20000 : 0) + (TestType::drop_newest ? 10000 : 0);
  for (std::uint64_t seed = first_seed; seed < first_seed + sequences; ++seed) {
    const run_config config = draw_config(seed, TestType::fixed_backoff, TestType::drop_newest);
    seeded_source source{std::mt19937_64(seed * 0x9E3779B97F4A7C15ULL + 1)};
    sequence_runner<TestType, seeded_source> runner(config, source, "seed " + std::to_string(seed),
                                                    seen);
    const std::string mismatch = runner.run();
    if (!mismatch.empty()) FAIL(mismatch);
  }

  // Each event below must have happened in some sequence, or the runs tested less than they
  // claim.
  CHECK(seen.reaps_of_several > 0);
  CHECK(seen.reaps_behind_visible > 0);
  CHECK(seen.retention_skips > 0);
  CHECK(seen.max_receive_letters > 0);
  CHECK(seen.rejected_letters > 0);
  CHECK(seen.expired_letters > 0);
  CHECK(seen.dropped_letters > 0);
  CHECK(seen.redriven > 0);
  CHECK(seen.expired_leases > 0);
  CHECK(seen.failed_settles > 0);
  CHECK(seen.full_sends > 0);
  CHECK(seen.closed_sends > 0);
}
