// order_pipeline: orders flow through three ringmq work queues, one per stage, each with its own
// worker threads, retries with backoff and a dead-letter queue.
//
//   main --payment queue--> payment workers --inventory queue--> inventory workers
//        --shipping queue--> shipping workers --> shipped ledger
//
// Each stage calls a simulated service that fails the way real ones do:
//   payment    fails an attempt with probability --payment-fail-rate, and fails every attempt
//              during an outage. An order that fails max_receive_count times becomes a dead
//              letter.
//   inventory  fails an attempt now and then (a lock timeout), and rejects orders for a
//              discontinued item: those stay dead letters.
//   shipping   now and then stalls longer than the lease, so the lease expires, another worker
//              receives the order again and the stalled worker's ack fails. It rejects
//              orders for postcodes the carrier does not serve.
// A worker acks before it forwards an order, so only the worker whose ack succeeds forwards it
// and no order moves on twice.
//
// The run has three phases of orders: before, during and after a payment outage. Main waits
// for the payment queue to empty between phases, so every order of the second phase meets the
// outage and no other order does. After the outage it redrives the payment dead letters, which
// then pass payment. Every random choice is a hash of --seed, the order and the attempt number, so
// a seed prints the same counts on every run. The exception is a machine that stalls a worker
// for longer than a lease: 200 ms in the shipping stage, 5 s in the others.
#include <ringmq/backoff.hpp>
#include <ringmq/dead_letter_queue.hpp>
#include <ringmq/work_queue.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

using namespace std::chrono_literals;

namespace {

// ---------------------------------------------------------------------------------------------
// Command line

constexpr std::uint32_t default_orders = 300;
constexpr std::uint32_t max_orders = 1'000'000;
constexpr std::size_t default_workers = 2;
constexpr std::size_t max_workers = 64;
constexpr double default_payment_fail_rate = 0.15;

struct options {
  std::uint32_t orders = default_orders;
  std::size_t workers = default_workers;  // per stage
  double payment_fail_rate = default_payment_fail_rate;
  std::uint64_t seed = 1;
  bool help = false;
};

// A command line that cannot run.
struct usage_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

void print_usage(std::FILE* out) {
  std::fprintf(out,
               "Usage: order_pipeline [OPTION]...\n"
               "Run orders through payment, inventory and shipping work queues, with a payment\n"
               "outage in the middle of the run, and account for every order at the end.\n"
               "\n"
               "Options:\n"
               "  --orders N             orders to place, 3 to %u (default %u)\n"
               "  --workers N            worker threads per stage, 1 to %zu (default %zu)\n"
               "  --payment-fail-rate P  probability, from 0 to 1, that a payment attempt\n"
               "                         fails outside the outage (default %g)\n"
               "  --seed N               seed of every random choice, 0 to %llu (default 1)\n"
               "  -h, --help             print this help and exit\n"
               "Options also take the form --option=VALUE.\n"
               "\n"
               "Exit status: 0 when every order is shipped or a dead letter exactly once, 1\n"
               "otherwise, 2 on a usage error.\n",
               max_orders, default_orders, max_workers, default_workers, default_payment_fail_rate,
               static_cast<unsigned long long>(std::numeric_limits<std::uint64_t>::max()));
}

// Parses the value of `option` as an integer from `min` to `max`.
std::uint64_t parse_integer(std::string_view option, std::string_view text, std::uint64_t min,
                            std::uint64_t max) {
  std::uint64_t value = 0;
  const char* end = text.data() + text.size();
  auto [stop, error] = std::from_chars(text.data(), end, value);
  if (text.empty() || error != std::errc{} || stop != end || value < min || value > max) {
    throw usage_error("invalid value '" + std::string(text) + "' for " + std::string(option) +
                      ": expected an integer from " + std::to_string(min) + " to " +
                      std::to_string(max));
  }
  return value;
}

// Parses the value of `option` as a probability: a decimal number from 0 to 1.
double parse_probability(std::string_view option, std::string_view text) {
  double value = 0.0;
  const char* end = text.data() + text.size();
  auto [stop, error] = std::from_chars(text.data(), end, value);
  // The negated range test also rejects "nan".
  if (text.empty() || error != std::errc{} || stop != end || !(value >= 0.0 && value <= 1.0)) {
    throw usage_error("invalid value '" + std::string(text) + "' for " + std::string(option) +
                      ": expected a number from 0 to 1, such as 0.15");
  }
  return value;
}

options parse_options(int argc, char** argv) {
  options parsed;
  for (int i = 1; i < argc; ++i) {
    std::string_view argument = argv[i];
    if (argument == "-h" || argument == "--help") {
      parsed.help = true;
      continue;
    }

    // Every other option takes a value, as "--option VALUE" or "--option=VALUE".
    std::string_view name = argument;
    std::optional<std::string_view> value;
    if (auto equals = argument.find('='); equals != std::string_view::npos) {
      name = argument.substr(0, equals);
      value = argument.substr(equals + 1);
    }
    if (name != "--orders" && name != "--workers" && name != "--payment-fail-rate" &&
        name != "--seed") {
      throw usage_error("unknown argument '" + std::string(argument) + "'");
    }
    if (!value) {
      if (i + 1 == argc) throw usage_error("missing value for " + std::string(name));
      value = argv[++i];
    }
    if (name == "--orders") {
      parsed.orders = static_cast<std::uint32_t>(parse_integer(name, *value, 3, max_orders));
    } else if (name == "--workers") {
      parsed.workers = static_cast<std::size_t>(parse_integer(name, *value, 1, max_workers));
    } else if (name == "--payment-fail-rate") {
      parsed.payment_fail_rate = parse_probability(name, *value);
    } else {
      parsed.seed = parse_integer(name, *value, 0, std::numeric_limits<std::uint64_t>::max());
    }
  }
  return parsed;
}

// ---------------------------------------------------------------------------------------------
// Orders and reproducible randomness

// One step of SplitMix64: adds its increment, then spreads every input bit over the output.
constexpr std::uint64_t mix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30U)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27U)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31U);
}

// Returns a number uniform in [0, 1), drawn from the hash of seed, salt, order and attempt.
double draw(std::uint64_t seed, std::uint64_t salt, std::uint32_t order, std::uint32_t attempt) {
  const std::uint64_t key = mix(mix(mix(seed ^ salt) ^ order) ^ attempt);
  return static_cast<double>(key >> 11U) * 0x1.0p-53;
}

struct item {
  const char* name;
  bool discontinued;
};

constexpr std::array<item, 12> catalog = {{{"notebook", false},
                                           {"pen set", false},
                                           {"desk lamp", false},
                                           {"monitor arm", false},
                                           {"keyboard", false},
                                           {"mouse", false},
                                           {"headset", false},
                                           {"webcam", true},
                                           {"usb hub", false},
                                           {"chair mat", false},
                                           {"cable tray", false},
                                           {"footrest", false}}};

// One in this many postcodes is outside the carrier's area.
constexpr std::uint32_t unserved_postcode_period = 50;

struct order {
  std::uint32_t id = 0;    // 0 to orders - 1
  std::uint32_t item = 0;  // index into catalog
  std::uint32_t quantity = 0;
  std::uint32_t postcode = 0;
};

order make_order(std::uint64_t seed, std::uint32_t id) {
  const std::uint64_t key = mix(seed ^ mix(id));
  return {id, static_cast<std::uint32_t>(key % catalog.size()),
          static_cast<std::uint32_t>(1 + (key >> 8U) % 4),
          static_cast<std::uint32_t>(10'000 + (key >> 16U) % 90'000)};
}

std::string describe(const order& o) {
  return "order " + std::to_string(o.id) + " (" + std::to_string(o.quantity) + " x " +
         catalog[o.item].name + ", postcode " + std::to_string(o.postcode) + ")";
}

// ---------------------------------------------------------------------------------------------
// Simulated services

// Outcome of one call to a service: done, a failure worth a retry, or a permanent rejection.
enum class verdict { done, retry, reject };

struct call_result {
  verdict outcome = verdict::done;
  std::string detail;  // why the call failed; empty when done
};

// Numbers the calls a service receives for each order, and draws a reproducible number for each
// call. Calls for one order never overlap in time except after a lease expiry, when they are
// still numbered in the order they start.
class call_dice {
 public:
  call_dice(std::uint64_t seed, std::uint64_t salt, std::uint32_t orders)
      : seed_(seed), salt_(salt), calls_(std::make_unique<std::atomic<std::uint32_t>[]>(orders)) {}

  double next(const order& o) {
    // Relaxed: only the count matters, and a lease hands one order to one worker at a time.
    const std::uint32_t call = calls_[o.id].fetch_add(1, std::memory_order_relaxed) + 1;
    return draw(seed_, salt_, o.id, call);
  }

 private:
  std::uint64_t seed_;
  std::uint64_t salt_;
  std::unique_ptr<std::atomic<std::uint32_t>[]> calls_;
};

class payment_service {
 public:
  payment_service(std::uint64_t seed, std::uint32_t orders, double fail_rate)
      : dice_(seed, 1, orders), fail_rate_(fail_rate) {}

  call_result charge(const order& o) {
    const double chance = dice_.next(o);  // drawn in the outage too, to keep the numbering
    if (outage_.load(std::memory_order_acquire)) {
      return {verdict::retry, "payment gateway unavailable (outage)"};
    }
    if (chance < fail_rate_) return {verdict::retry, "payment gateway timed out"};
    return {};
  }

  double fail_rate() const { return fail_rate_; }

  // Release: the worker that receives an order sent after this call reads the new state.
  void set_outage(bool down) { outage_.store(down, std::memory_order_release); }

 private:
  call_dice dice_;
  double fail_rate_;
  std::atomic<bool> outage_{false};
};

class inventory_service {
 public:
  inventory_service(std::uint64_t seed, std::uint32_t orders) : dice_(seed, 2, orders) {}

  call_result reserve(const order& o) {
    const double chance = dice_.next(o);
    if (catalog[o.item].discontinued) {
      return {verdict::reject, std::string("item '") + catalog[o.item].name + "' is discontinued"};
    }
    if (chance < lock_timeout_rate) return {verdict::retry, "stock database lock timed out"};
    return {};
  }

 private:
  static constexpr double lock_timeout_rate = 0.05;
  call_dice dice_;
};

// The shipping stage's lease, and a stall that outlasts it.
constexpr auto shipping_lease = 200ms;
constexpr auto carrier_stall = 300ms;

class shipping_service {
 public:
  shipping_service(std::uint64_t seed, std::uint32_t orders) : dice_(seed, 3, orders) {}

  call_result book(const order& o) {
    const double chance = dice_.next(o);
    if (o.postcode % unserved_postcode_period == 0) {
      return {verdict::reject,
              "carrier does not deliver to postcode " + std::to_string(o.postcode)};
    }
    if (chance < stall_rate) std::this_thread::sleep_for(carrier_stall);
    return {};
  }

 private:
  static constexpr double stall_rate = 0.01;
  call_dice dice_;
};

// ---------------------------------------------------------------------------------------------
// Stages

using order_queue = ringmq::work_queue<order, ringmq::backoff<ringmq::exponential_jitter_backoff>>;
using order_delivery = order_queue::delivery_type;

constexpr std::size_t stage_capacity = 64;
constexpr std::uint32_t max_receive_count = 5;

ringmq::queue_config stage_config(std::chrono::nanoseconds lease, std::uint32_t orders) {
  return {
      .capacity = stage_capacity,
      .visibility_timeout = lease,
      .max_receive_count = max_receive_count,
      .dead_letter_capacity = orders,  // room for every order, so none is dropped
      .backoff = {.initial = 1ms, .max = 50ms, .multiplier = 2.0},
  };
}

// How long an idle worker waits in one receive_for before it looks again whether to stop.
constexpr auto receive_wait = 10ms;
// How long a thread sleeps between looks at a queue that still contains messages.
constexpr auto busy_queue_poll = 1ms;

bool has_pending_messages(order_queue& queue) {
  const ringmq::queue_stats now = queue.stats();
  return now.visible + now.delayed + now.in_flight != 0;
}

// Receives the next message, or returns nothing once the queue is drained: closed, with no
// message visible, none waiting out a backoff delay and none leased to another worker, whose
// nack or expired lease could bring it back.
std::optional<order_delivery> receive_next(order_queue& queue) {
  while (!queue.is_drained()) {
    if (std::optional<order_delivery> delivery = queue.receive_for(receive_wait)) return delivery;
  }
  return std::nullopt;
}

// Returns once the queue contains no visible, delayed or leased message.
void wait_until_empty(order_queue& queue) {
  while (has_pending_messages(queue)) std::this_thread::sleep_for(busy_queue_poll);
}

// A work queue, the service its workers call and what they do with an order the service
// accepted.
struct stage {
  using call = std::function<call_result(const order&)>;
  using forward = std::function<void(const order&)>;

  stage(const char* stage_name, ringmq::queue_config config, call service, forward next)
      : name(stage_name),
        queue(config),
        call_service(std::move(service)),
        on_done(std::move(next)) {}

  // Handles messages until the queue is closed and empty.
  void run_worker() {
    while (std::optional<order_delivery> delivery = receive_next(queue)) {
      const order& o = delivery->body();
      const ringmq::receipt receipt = delivery->receipt();
      const call_result result = call_service(o);
      bool settled = false;
      switch (result.outcome) {
        case verdict::retry:
          settled = queue.nack(receipt, result.detail);
          break;
        case verdict::reject:
          settled = queue.reject(receipt, result.detail);
          break;
        case verdict::done:
          // Ack before forwarding: a worker whose lease ended during the call gets false from
          // ack and drops the order, which another worker has received again.
          settled = queue.ack(receipt);
          if (settled) on_done(o);
          break;
      }
      if (!settled) late_settles.fetch_add(1, std::memory_order_relaxed);
    }
  }

  void start(std::size_t count) {
    for (std::size_t i = 0; i < count; ++i) workers.emplace_back([this] { run_worker(); });
  }

  // Closes the queue and waits for the workers, which first finish every message it contains.
  void finish() {
    queue.close();
    for (std::thread& worker : workers) worker.join();
  }

  const char* name;
  order_queue queue;
  call call_service;
  forward on_done;
  std::vector<std::thread> workers;
  std::atomic<std::uint64_t> late_settles{0};  // settles that found the lease had ended
};

// Sends `o` to the next stage's queue, waiting while it is full. Returns false if it is closed,
// which main does only after the stage that forwards to it has stopped.
bool forward_to(order_queue& queue, const order& o) { return queue.send(o).ok(); }

// ---------------------------------------------------------------------------------------------
// Report

void print_stage_table(std::array<stage*, 3> stages) {
  std::printf("\n%-10s %6s %9s %6s %7s %9s %8s %14s %9s %13s\n", "stage", "sent", "received",
              "acked", "nacked", "rejected", "expired", "dead-lettered", "redriven",
              "dead letters");
  for (stage* s : stages) {
    const ringmq::queue_stats st = s->queue.stats();
    std::printf(
        "%-10s %6llu %9llu %6llu %7llu %9llu %8llu %14llu %9llu %13zu\n", s->name,
        static_cast<unsigned long long>(st.sent), static_cast<unsigned long long>(st.received),
        static_cast<unsigned long long>(st.acked), static_cast<unsigned long long>(st.nacked),
        static_cast<unsigned long long>(st.rejected),
        static_cast<unsigned long long>(st.expired_leases),
        static_cast<unsigned long long>(st.dead_lettered),
        static_cast<unsigned long long>(st.redriven), st.dead_letters);
  }
  std::printf(
      "(received counts redeliveries; dead-lettered counts every dead letter, dead letters the\n"
      " ones still in the stage's dead-letter queue)\n");
}

void print_dead_letters(std::array<stage*, 3> stages) {
  constexpr std::size_t examples = 3;
  std::printf("\nDead letters left (first %zu of each stage)\n", examples);
  for (stage* s : stages) {
    std::size_t shown = 0;
    s->queue.dead_letters().for_each([&](const order_queue::dead_letter_type& letter) {
      if (shown++ >= examples) return;
      const std::string_view reason = to_string(letter.reason);
      std::printf("  %-10s %s: %.*s, %s\n", s->name, describe(letter.body).c_str(),
                  static_cast<int>(reason.size()), reason.data(), letter.detail.c_str());
    });
    if (shown == 0) std::printf("  %-10s none\n", s->name);
  }
}

// Places the orders in three phases, before, during and after a payment outage, then redrives
// the payment dead letters. Returns the ids of the redriven orders.
std::vector<std::uint32_t> place_orders(stage& payment, payment_service& gateway,
                                        std::uint32_t orders, std::uint64_t seed) {
  // Three phases of orders. Waiting for the payment queue to empty between them makes the
  // outage meet exactly the orders of the second phase, whatever the thread timing.
  const std::uint32_t outage_begin = orders / 3;
  const std::uint32_t outage_end = 2 * orders / 3;
  const auto place = [&](std::uint32_t first, std::uint32_t last) {
    for (std::uint32_t id = first; id < last; ++id) {
      (void)payment.queue.send(make_order(seed, id));  // waits while the queue is full
    }
    wait_until_empty(payment.queue);
  };
  place(0, outage_begin);
  std::printf("orders %u to %u placed; payment fails %g%% of attempts; payment dead letters: %zu\n",
              0U, outage_begin - 1, 100 * gateway.fail_rate(), payment.queue.dead_letters().size());

  gateway.set_outage(true);
  place(outage_begin, outage_end);
  gateway.set_outage(false);
  std::printf("orders %u to %u placed during a payment outage; payment dead letters: %zu\n",
              outage_begin, outage_end - 1, payment.queue.dead_letters().size());
  payment.queue.dead_letters().for_each(
      [&, printed = false](const order_queue::dead_letter_type& letter) mutable {
        if (std::exchange(printed, true)) return;
        const std::string_view reason = to_string(letter.reason);
        std::printf("  the first: %s: %.*s after %u attempts, %s\n", describe(letter.body).c_str(),
                    static_cast<int>(reason.size()), reason.data(), letter.receive_count,
                    letter.detail.c_str());
      });

  place(outage_end, orders);
  std::printf("orders %u to %u placed after the outage; payment dead letters: %zu\n", outage_end,
              orders - 1, payment.queue.dead_letters().size());

  // Redrive the payment dead letters. New dead letters queue behind them, so moving exactly
  // the number there now moves these and no later ones.
  std::vector<std::uint32_t> redriven_ids;
  payment.queue.dead_letters().for_each(
      [&](const order_queue::dead_letter_type& letter) { redriven_ids.push_back(letter.body.id); });
  std::size_t to_redrive = redriven_ids.size();
  while (to_redrive != 0) {
    const std::size_t moved = payment.queue.redrive(to_redrive);
    to_redrive -= moved;
    if (moved == 0) std::this_thread::sleep_for(busy_queue_poll);  // full; wait for room
  }
  std::printf("redrove %zu payment dead letters to the payment queue\n", redriven_ids.size());

  return redriven_ids;
}

// Prints what became of every order and of the redriven ones. Returns whether each order is
// shipped once or a dead letter in one stage, and never both.
bool print_accounting(const std::array<stage*, 3>& stages,
                      const std::atomic<std::uint32_t>* shipped, std::uint32_t orders,
                      const std::vector<std::uint32_t>& redriven_ids) {
  std::vector<std::uint32_t> outcomes(orders, 0);
  std::uint64_t shipped_total = 0;
  for (std::uint32_t id = 0; id < orders; ++id) {
    outcomes[id] = shipped[id].load(std::memory_order_relaxed);
    shipped_total += outcomes[id];
  }
  std::array<std::size_t, 3> dead_by_stage{};
  std::vector<int> dead_stage(orders, -1);  // the stage whose dead letter an order is, if any
  for (std::size_t i = 0; i < stages.size(); ++i) {
    stages[i]->queue.dead_letters().for_each([&](const order_queue::dead_letter_type& letter) {
      ++outcomes[letter.body.id];
      ++dead_by_stage[i];
      dead_stage[letter.body.id] = static_cast<int>(i);
    });
  }
  const auto lost = std::ranges::count(outcomes, 0U);
  const auto duplicated = std::ranges::count_if(outcomes, [](std::uint32_t n) { return n > 1; });
  const std::size_t dead_total = dead_by_stage[0] + dead_by_stage[1] + dead_by_stage[2];

  // What became of the redriven orders.
  std::size_t redriven_shipped = 0;
  std::array<std::size_t, 3> redriven_dead{};
  for (std::uint32_t id : redriven_ids) {
    if (shipped[id].load(std::memory_order_relaxed) != 0) ++redriven_shipped;
    if (dead_stage[id] >= 0) ++redriven_dead[static_cast<std::size_t>(dead_stage[id])];
  }
  std::printf(
      "redriven orders: %zu, of which %zu shipped and %zu dead letters (payment %zu, "
      "inventory %zu, shipping %zu)\n",
      redriven_ids.size(), redriven_shipped, redriven_dead[0] + redriven_dead[1] + redriven_dead[2],
      redriven_dead[0], redriven_dead[1], redriven_dead[2]);
  std::printf(
      "accounting: %u orders = %llu shipped + %zu dead letters (payment %zu, inventory %zu, "
      "shipping %zu); %td lost, %td duplicated\n",
      orders, static_cast<unsigned long long>(shipped_total), dead_total, dead_by_stage[0],
      dead_by_stage[1], dead_by_stage[2], lost, duplicated);
  return lost == 0 && duplicated == 0 && shipped_total + dead_total == orders;
}

}  // namespace

int main(int argc, char** argv) {
  options config;
  try {
    config = parse_options(argc, argv);
  } catch (const usage_error& error) {
    std::fprintf(stderr, "order_pipeline: %s\nRun 'order_pipeline --help' for usage.\n",
                 error.what());
    return 2;
  }
  if (config.help) {
    print_usage(stdout);
    return 0;
  }
  const std::uint32_t orders = config.orders;

  // The ledger of shipped orders, written by the shipping workers whose ack succeeded.
  auto shipped = std::make_unique<std::atomic<std::uint32_t>[]>(orders);
  payment_service payment_gateway(config.seed, orders, config.payment_fail_rate);
  inventory_service warehouse(config.seed, orders);
  shipping_service carrier(config.seed, orders);

  // Build the stages from the last to the first, since each forwards to the next.
  stage shipping(
      "shipping", stage_config(shipping_lease, orders),
      [&](const order& o) { return carrier.book(o); },
      [&](const order& o) { shipped[o.id].fetch_add(1, std::memory_order_relaxed); });
  stage inventory(
      "inventory", stage_config(5s, orders), [&](const order& o) { return warehouse.reserve(o); },
      [&](const order& o) { (void)forward_to(shipping.queue, o); });
  stage payment(
      "payment", stage_config(5s, orders),
      [&](const order& o) { return payment_gateway.charge(o); },
      [&](const order& o) { (void)forward_to(inventory.queue, o); });
  std::array<stage*, 3> stages = {&payment, &inventory, &shipping};
  for (stage* s : stages) s->start(config.workers);

  std::printf("order_pipeline: %u orders, %zu worker%s per stage, seed %llu\n", orders,
              config.workers, config.workers == 1 ? "" : "s",
              static_cast<unsigned long long>(config.seed));
  std::printf(
      "  each stage: capacity %zu, max_receive_count %u, backoff 1 ms to 50 ms with "
      "jitter\n\n",
      stage_capacity, max_receive_count);
  const auto start = std::chrono::steady_clock::now();

  const std::vector<std::uint32_t> redriven_ids =
      place_orders(payment, payment_gateway, config.orders, config.seed);

  // Shut down front to back: once a stage's workers are gone, nothing sends to the next one.
  for (stage* s : stages) s->finish();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  print_stage_table(stages);
  print_dead_letters(stages);

  std::uint64_t late_settles = 0;
  for (stage* s : stages) late_settles += s->late_settles.load(std::memory_order_relaxed);
  std::printf("\nsettles that failed because the lease had ended: %llu\n",
              static_cast<unsigned long long>(late_settles));
  std::printf("elapsed: %.2f s\n", seconds);

  const bool accounted = print_accounting(stages, shipped.get(), orders, redriven_ids);
  if (!accounted) {
    std::fprintf(stderr, "order_pipeline: orders were lost or duplicated\n");
    return 1;
  }
  return 0;
}
