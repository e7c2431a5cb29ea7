// Exhaustive interleaving check of ringmq's ring core (detail/turn_ring.hpp): every
// sequentially consistent order of the shared accesses of a few threads, each running a short
// fixed program of try calls. docs/interleaving.md describes the method and the rules.
//
//   turn_ring_check                      runs every scenario not marked long
//   turn_ring_check NAME...              runs the named scenarios, long ones too
//   turn_ring_check --list               lists the scenarios
//   turn_ring_check --schedule "0 1 2* 0" NAME
//                                        replays one execution of NAME and prints its accesses
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <utility>
#include <vector>

#include <ringmq/detail/turn_ring.hpp>
#include <ringmq/options.hpp>

#include "mutant_ring.hpp"
#include "ring_model.hpp"
#include "scheduler.hpp"

namespace {

using namespace ringmq_test::interleaving;
using ringmq::multi;
using ringmq::single;

template <class Producers, class Consumers,
          std::size_t StaticCapacity = ringmq::detail::runtime_capacity,
          class Layout = ringmq::padded>
using checked_ring = ringmq::detail::turn_ring<tracked, Producers, Consumers, StaticCapacity,
                                               Layout, arena_allocator<tracked>, checked_atomic>;

template <mutation Mutation>
using checked_mutant = mutant_ring<tracked, Mutation, checked_atomic>;

struct entry {
  scenario sc;
  search_result (*search)(scheduler&, const scenario&);
  search_result (*replay)(scheduler&, const scenario&, const std::vector<choice>&);
  bool long_running = false;  // left out of a run without names, and of ctest
};

template <class Core>
entry make_entry(scenario sc) {
  return {std::move(sc), &explore<Core>, &replay<Core>};
}

entry long_running(entry e) {
  e.long_running = true;
  return e;
}

std::vector<op> repeat(op o, int times) {
  return std::vector<op>(static_cast<std::size_t>(times), o);
}

// Builds a scenario and sets its per-call access bound from the programs. A claim loop retries
// only after another thread's claim, a close() or an injected spurious failure, so a call needs
// a few accesses per element of all programs together. The bound is several times that.
scenario make_scenario(std::string name, std::string summary, std::size_t capacity,
                       std::vector<std::vector<op>> threads, std::string expected_violation = {},
                       int spurious_per_call = 1) {
  scenario sc;
  sc.limits.spurious_per_call = spurious_per_call;
  sc.name = std::move(name);
  sc.summary = std::move(summary);
  sc.capacity = capacity;
  sc.threads = std::move(threads);
  sc.expected_violation = std::move(expected_violation);
  int demand = 0;
  for (const auto& program : sc.threads) {
    for (const op& o : program) demand += o.count + 1;
  }
  sc.limits.accesses_per_call = 8 * (demand + 2 * sc.limits.spurious_per_call) + 16;
  return sc;
}

std::vector<entry> make_entries() {
  using programs = std::vector<std::vector<op>>;
  std::vector<entry> entries;
  auto add = [&](entry e) { entries.push_back(std::move(e)); };

  // Both sides multi. With injected spurious failures, one call per thread; without, producers
  // push twice and the final drain takes what the consumers leave.
  add(make_entry<checked_ring<multi, multi>>(make_scenario(
      "mpmc_cap1_spurious",
      "multi/multi, runtime capacity 1, spurious CAS failures: 2 producers x 1 try_push, "
      "2 consumers x 1 try_pop",
      1, programs{{push()}, {push()}, {pop()}, {pop()}})));
  add(make_entry<checked_ring<multi, multi>>(make_scenario(
      "mpmc_cap2_spurious",
      "multi/multi, runtime capacity 2, spurious CAS failures: 2 producers x 1 try_push, "
      "2 consumers x 1 try_pop",
      2, programs{{push()}, {push()}, {pop()}, {pop()}})));
  add(make_entry<checked_ring<multi, multi>>(make_scenario(
      "mpmc_cap1_p2c1",
      "multi/multi, runtime capacity 1: 2 producers x 2 try_push, 2 consumers x 1 try_pop", 1,
      programs{repeat(push(), 2), repeat(push(), 2), {pop()}, {pop()}}, "", 0)));
  add(make_entry<checked_ring<multi, multi>>(make_scenario(
      "mpmc_cap1_p1c2",
      "multi/multi, runtime capacity 1: 2 producers x 1 try_push, 2 consumers x 2 try_pop", 1,
      programs{{push()}, {push()}, repeat(pop(), 2), repeat(pop(), 2)}, "", 0)));
  add(make_entry<checked_ring<multi, multi>>(make_scenario(
      "mpmc_cap2_p2c1",
      "multi/multi, runtime capacity 2: 2 producers x 2 try_push, 2 consumers x 1 try_pop", 2,
      programs{repeat(push(), 2), repeat(push(), 2), {pop()}, {pop()}}, "", 0)));
  add(make_entry<checked_ring<multi, multi, 1, ringmq::packed>>(make_scenario(
      "mpmc_static1_packed",
      "multi/multi, capacity<1>, packed slots: 2 producers x 2 and x 1 try_push, 2 consumers x 1 "
      "try_pop, so that the slot serves three laps",
      1, programs{repeat(push(), 2), {push()}, {pop()}, {pop()}}, "", 0)));
  // Two pushes per producer and two pops per consumer. The capacity 2 case takes about 30 s, so
  // a run without names leaves it out.
  add(make_entry<checked_ring<multi, multi>>(make_scenario(
      "mpmc_cap1_p2c2",
      "multi/multi, runtime capacity 1: 2 producers x 2 try_push, 2 consumers x 2 try_pop", 1,
      programs{repeat(push(), 2), repeat(push(), 2), repeat(pop(), 2), repeat(pop(), 2)}, "", 0)));
  add(long_running(make_entry<checked_ring<multi, multi>>(make_scenario(
      "mpmc_cap2_p2c2",
      "multi/multi, runtime capacity 2: 2 producers x 2 try_push, 2 consumers x 2 try_pop", 2,
      programs{repeat(push(), 2), repeat(push(), 2), repeat(pop(), 2), repeat(pop(), 2)}, "", 0))));

  // One side single.
  add(make_entry<checked_ring<single, single>>(
      make_scenario("spsc_cap2", "single/single, runtime capacity 2: 3 try_push against 3 try_pop",
                    2, programs{repeat(push(), 3), repeat(pop(), 3)})));
  add(make_entry<checked_ring<single, single, 1>>(
      make_scenario("spsc_static1", "single/single, capacity<1>: 3 try_push against 3 try_pop", 1,
                    programs{repeat(push(), 3), repeat(pop(), 3)})));
  add(make_entry<checked_ring<multi, single, 2>>(make_scenario(
      "mpsc_static2", "multi/single, capacity<2>: 2 producers x 2 try_push, 1 consumer x 3 try_pop",
      2, programs{repeat(push(), 2), repeat(push(), 2), repeat(pop(), 3)}, "", 0)));
  add(make_entry<checked_ring<single, multi>>(make_scenario(
      "spmc_cap2",
      "single/multi, runtime capacity 2: 1 producer x 3 try_push, 2 consumers x 2 try_pop", 2,
      programs{repeat(push(), 3), repeat(pop(), 2), repeat(pop(), 2)}, "", 0)));

  // Runs mixed with single calls; at capacity 2 a run crosses the end of the slot array.
  add(make_entry<checked_ring<multi, multi>>(make_scenario(
      "mpmc_runs_cap2",
      "multi/multi, runtime capacity 2: try_push_run(2) racing try_push, try_pop_run(2) racing "
      "try_pop",
      2, programs{{push_run(2)}, {push()}, {pop_run(2)}, {pop()}}, "", 0)));
  add(make_entry<checked_ring<multi, multi>>(make_scenario(
      "mpmc_runs_cap3",
      "multi/multi, runtime capacity 3 (index by division): try_push_run(2) racing try_push, "
      "try_pop_run(2) racing try_pop",
      3, programs{{push_run(2)}, {push()}, {pop_run(2)}, {pop()}}, "", 0)));
  add(make_entry<checked_ring<single, single>>(make_scenario(
      "spsc_runs_cap3",
      "single/single, runtime capacity 3: 3 try_push_run(2) against try_pop_run(2), try_pop, "
      "try_pop_run(2)",
      3, programs{repeat(push_run(2), 3), {pop_run(2), pop(), pop_run(2)}})));

  // close() racing pushes and pops.
  add(make_entry<checked_ring<multi, multi>>(make_scenario(
      "mpmc_close_cap2",
      "multi/multi, runtime capacity 2: 2 producers x 1 try_push, a consumer that calls close() "
      "then try_pop, a consumer calling try_pop, drained(), try_pop",
      2, programs{{push()}, {push()}, {close(), pop()}, {pop(), drained(), pop()}}, "", 0)));
  add(make_entry<checked_ring<multi, single>>(make_scenario(
      "mpsc_close_cap1",
      "multi/single, runtime capacity 1: a producer that closes after its push, a second "
      "producer x 2, a consumer calling try_pop and drained()",
      1, programs{{push(), close()}, repeat(push(), 2), {pop(), drained(), pop(), drained()}})));
  add(make_entry<checked_ring<single, single>>(make_scenario(
      "spsc_close_by_producer",
      "single/single, runtime capacity 2: the producer pushes twice and closes, the consumer "
      "pops and calls drained()",
      2, programs{{push(), push(), close()}, {pop(), drained(), pop(), drained(), pop()}})));
  add(make_entry<checked_ring<single, single>>(make_scenario(
      "spsc_close_by_other_thread",
      "single/single, runtime capacity 2: close() from a third thread races a push, so "
      "drained() can return true before the push publishes (known gap: expected violation)",
      2, programs{{push()}, {close()}, {drained(), pop()}}, "drained_too_early")));

  // The correct small ring, then each broken one with the violation the search must find.
  const programs two_by_two{{push()}, {push()}, {pop()}, {pop()}};
  add(make_entry<checked_mutant<mutation::none>>(make_scenario(
      "mutant_none", "the test's small turn ring, unbroken: 2 producers x 1, 2 consumers x 1", 2,
      two_by_two)));
  add(make_entry<checked_mutant<mutation::publish_before_construct>>(make_scenario(
      "mutant_publish_before_construct", "broken: a push publishes its turn, then constructs", 2,
      two_by_two, "element")));
  add(make_entry<checked_mutant<mutation::claim_without_cas>>(make_scenario(
      "mutant_claim_without_cas", "broken: producers claim with a load and a store, not a CAS", 2,
      two_by_two, "element|lost|duplicated")));
  add(make_entry<checked_mutant<mutation::pop_gives_up_on_contention>>(
      make_scenario("mutant_pop_gives_up", "broken: a pop returns false when its claim CAS fails",
                    2, programs{{push(), push()}, {pop()}, {pop()}}, "spurious_empty")));
  add(make_entry<checked_mutant<mutation::try_pop_waits>>(make_scenario(
      "mutant_try_pop_waits", "broken: a pop waits for the slot's push instead of returning false",
      2, programs{{push()}, {pop()}, {pop()}}, "livelock")));
  return entries;
}

bool kind_expected(const std::string& failure, const std::string& expected) {
  const std::string kind = failure.substr(0, failure.find(':'));
  std::size_t begin = 0;
  while (begin <= expected.size()) {
    const std::size_t end = std::min(expected.find('|', begin), expected.size());
    if (expected.compare(begin, end - begin, kind) == 0) return true;
    begin = end + 1;
  }
  return false;
}

// Runs the search of one scenario and prints its outcome. Returns whether it went as expected.
bool run_search(scheduler& s, const entry& e) {
  const search_result r = e.search(s, e.sc);
  std::printf("%s: %llu states, %llu executions (%llu complete), %.2f s\n", e.sc.name.c_str(),
              static_cast<unsigned long long>(r.states),
              static_cast<unsigned long long>(r.executions),
              static_cast<unsigned long long>(r.complete_executions), r.seconds);
  const std::string schedule = format_schedule(r.schedule);
  if (e.sc.expected_violation.empty()) {
    if (!r.failed) return true;
    std::printf("  FAILED: %s\n  schedule: %s\n  rerun: turn_ring_check --schedule \"%s\" %s\n",
                r.failure.c_str(), schedule.c_str(), schedule.c_str(), e.sc.name.c_str());
    return false;
  }
  if (!r.failed) {
    std::printf("  FAILED: expected a violation of kind %s, and every execution passed\n",
                e.sc.expected_violation.c_str());
    return false;
  }
  if (!kind_expected(r.failure, e.sc.expected_violation)) {
    std::printf("  FAILED: expected a violation of kind %s, found: %s\n  schedule: %s\n",
                e.sc.expected_violation.c_str(), r.failure.c_str(), schedule.c_str());
    return false;
  }
  std::printf("  found the expected violation: %s\n  schedule: %s\n", r.failure.c_str(),
              schedule.c_str());
  return true;
}

int usage(const char* message) {
  std::fprintf(stderr,
               "turn_ring_check: %s\n"
               "usage: turn_ring_check [NAME...] | --list | --schedule \"T T* ...\" NAME\n",
               message);
  return 2;
}

int run(int argc, char** argv) {
  const std::vector<entry> entries = make_entries();
  std::vector<std::string> names;
  std::string schedule_text;
  bool have_schedule = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--list") == 0) {
      for (const entry& e : entries) {
        std::printf("%s%s\n  %s\n", e.sc.name.c_str(), e.long_running ? " (long)" : "",
                    e.sc.summary.c_str());
      }
      return 0;
    }
    if (std::strcmp(argv[i], "--schedule") == 0) {
      if (i + 1 == argc) return usage("--schedule needs a schedule, such as \"0 1 1 2*\"");
      schedule_text = argv[++i];
      have_schedule = true;
      continue;
    }
    names.emplace_back(argv[i]);
  }

  std::vector<const entry*> selected;
  for (const std::string& name : names) {
    const entry* found = nullptr;
    for (const entry& e : entries) {
      if (e.sc.name == name) found = &e;
    }
    if (found == nullptr) {
      return usage(("unknown scenario \"" + name + "\"; --list shows the names").c_str());
    }
    selected.push_back(found);
  }
  if (names.empty()) {
    for (const entry& e : entries) {
      if (!e.long_running) selected.push_back(&e);
    }
  }

  scheduler s;
  if (have_schedule) {
    if (selected.size() != 1) return usage("--schedule needs exactly one scenario name");
    std::vector<choice> schedule;
    if (!parse_schedule(schedule_text, schedule)) {
      return usage(("invalid schedule \"" + schedule_text +
                    "\": use thread numbers separated by spaces, with * for a spurious "
                    "compare_exchange_weak failure")
                       .c_str());
    }
    const entry& e = *selected.front();
    std::printf("%s: replaying \"%s\"\n", e.sc.name.c_str(), schedule_text.c_str());
    const search_result r = e.replay(s, e.sc, schedule);
    if (r.failed) {
      std::printf("  violation: %s\n", r.failure.c_str());
      return 1;
    }
    std::printf("  the execution passed every check\n");
    return 0;
  }

  int failures = 0;
  for (const entry* e : selected) {
    if (!run_search(s, *e)) ++failures;
  }
  const int passed = static_cast<int>(selected.size()) - failures;
  std::printf("%d passed, %d failed\n", passed, failures);
  return failures == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "turn_ring_check: %s\n", error.what());
    return 2;
  }
}
