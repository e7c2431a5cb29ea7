// job_system: the frame loop of a game engine, built on ringmq's three messaging patterns.
//
//   frame loop --jobs: work_queue----------> worker_pool threads   (animation, AI, culling)
//              --events: broadcast_ring----> audio, physics and UI system threads
//   systems    --asset requests: request_reply--> asset service thread
//
// Every frame, the loop publishes the frame's events (explosions, footsteps, button presses)
// into one broadcast ring that each system reads in full at its own pace, without a copy per
// system. It sends the frame's jobs into a work queue that the worker pool drains; with
// --fail-rate, a job attempt fails now and then, the pool nacks it, and the queue hands it out
// again after a short backoff, until max_receive_count attempts make it a dead letter. Audio and
// UI systems request sounds and icons from the asset service through request-reply. A few assets
// are missing from the catalogue, so the service throws, and the exception reaches the caller.
//
// A frame ends when its jobs are settled (acknowledged or dead-lettered) and every system has
// read the frame's end event. The run prints frame-time percentiles and the statistics of each
// queue, then checks that every job, event and asset request is accounted for.
//
// Every random choice is a hash of --seed and the frame, job or attempt, so a seed gives the
// same counts on every run; only the times differ.
#include <ringmq/backoff.hpp>
#include <ringmq/broadcast_ring.hpp>
#include <ringmq/request_reply.hpp>
#include <ringmq/work_queue.hpp>
#include <ringmq/worker_pool.hpp>

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
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

// ---------------------------------------------------------------------------------------------
// Command line

constexpr std::uint32_t default_frames = 240;
constexpr std::uint32_t max_frames = 1'000'000;
constexpr std::uint32_t default_jobs = 64;
constexpr std::uint32_t max_jobs = 512;  // jobs of one frame must fit in the job queue
constexpr std::size_t default_workers = 2;
constexpr std::size_t max_workers = 64;
constexpr double default_fail_rate = 0.05;

struct options {
  std::uint32_t frames = default_frames;
  std::uint32_t jobs = default_jobs;  // per frame
  std::size_t workers = default_workers;
  double fail_rate = default_fail_rate;
  std::uint64_t seed = 1;
  bool help = false;
};

// A command line that cannot run.
struct usage_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

void print_usage(std::FILE* out) {
  std::fprintf(out,
               "Usage: job_system [OPTION]...\n"
               "Run a game-engine frame loop: jobs through a work queue to worker threads,\n"
               "frame events through a broadcast ring to systems, asset requests through\n"
               "request-reply. Print frame times and queue statistics.\n"
               "\n"
               "Options:\n"
               "  --frames N      frames to run, 1 to %u (default %u)\n"
               "  --jobs N        jobs per frame, 1 to %u (default %u)\n"
               "  --workers N     worker threads, 1 to %zu (default %zu)\n"
               "  --fail-rate P   probability, from 0 to 1, that a job attempt fails (default %g)\n"
               "  --seed N        seed of every random choice, 0 to %llu (default 1)\n"
               "  -h, --help      print this help and exit\n"
               "Options also take the form --option=VALUE.\n"
               "\n"
               "Exit status: 0 when every job, event and asset request is accounted for, 1\n"
               "otherwise, 2 on a usage error.\n",
               max_frames, default_frames, max_jobs, default_jobs, max_workers, default_workers,
               default_fail_rate,
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
                      ": expected a number from 0 to 1, such as 0.05");
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
    if (name != "--frames" && name != "--jobs" && name != "--workers" && name != "--fail-rate" &&
        name != "--seed") {
      throw usage_error("unknown argument '" + std::string(argument) + "'");
    }
    if (!value) {
      if (i + 1 == argc) throw usage_error("missing value for " + std::string(name));
      value = argv[++i];
    }
    if (name == "--frames") {
      parsed.frames = static_cast<std::uint32_t>(parse_integer(name, *value, 1, max_frames));
    } else if (name == "--jobs") {
      parsed.jobs = static_cast<std::uint32_t>(parse_integer(name, *value, 1, max_jobs));
    } else if (name == "--workers") {
      parsed.workers = static_cast<std::size_t>(parse_integer(name, *value, 1, max_workers));
    } else if (name == "--fail-rate") {
      parsed.fail_rate = parse_probability(name, *value);
    } else {
      parsed.seed = parse_integer(name, *value, 0, std::numeric_limits<std::uint64_t>::max());
    }
  }
  return parsed;
}

// ---------------------------------------------------------------------------------------------
// Deterministic randomness

// splitmix64: a well-mixed 64-bit hash, so that nearby inputs give unrelated outputs.
std::uint64_t mix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

std::uint64_t hash(std::uint64_t seed, std::uint64_t a, std::uint64_t b, std::uint64_t c = 0) {
  return mix(mix(mix(seed ^ a) ^ b) ^ c);
}

// A number in [0, 1) from a hash.
double unit(std::uint64_t h) { return static_cast<double>(h >> 11) * 0x1.0p-53; }

// ---------------------------------------------------------------------------------------------
// Messages

enum class event_kind : std::uint8_t { frame_begin, explosion, footstep, button, frame_end, quit };

// One frame event. Small and trivially copyable, as events in a frame loop usually are; the
// systems read it in place in the broadcast ring.
struct frame_event {
  event_kind kind = event_kind::frame_begin;
  std::uint32_t frame = 0;
  std::uint32_t subject = 0;  // which explosion, footstep or button
};

struct job {
  std::uint32_t frame = 0;
  std::uint32_t index = 0;
};

struct asset_request {
  std::uint32_t asset = 0;
};

struct asset_data {
  std::uint32_t asset = 0;
  std::uint32_t bytes = 0;
  std::uint64_t checksum = 0;
};

// ---------------------------------------------------------------------------------------------
// The asset service: replies to requests from an in-memory catalogue, which lacks a few assets.

constexpr std::uint32_t sound_assets = 1000;  // ids 1000 to 1047: explosion and footstep sounds
constexpr std::uint32_t icon_assets = 2000;   // ids 2000 to 2015: button icons

// Whether the catalogue has the asset: one id in eleven is missing.
bool in_catalogue(std::uint32_t asset) { return asset % 11 != 0; }

asset_data load_asset(const asset_request& request) {
  if (!in_catalogue(request.asset)) {
    throw std::runtime_error("asset " + std::to_string(request.asset) +
                             " is not in the catalogue");
  }
  // "Loading" reads the asset's bytes: a checksum over a few kilobytes of generated data.
  asset_data data{request.asset, 1024 + (request.asset % 8) * 512, 0};
  for (std::uint32_t offset = 0; offset < data.bytes; offset += 8) {
    data.checksum = mix(data.checksum ^ (std::uint64_t{request.asset} << 32 | offset));
  }
  return data;
}

using asset_channel = ringmq::request_reply<asset_request, asset_data>;

// ---------------------------------------------------------------------------------------------
// Systems: threads that read every frame event from the broadcast ring.

using event_ring = ringmq::broadcast_ring<frame_event>;

enum class system_kind : std::uint8_t { audio, physics, ui };

// Counters of one system. Only the system's thread writes them. Main reads them after joining
// that thread, except frames_done, which main polls while the thread runs.
struct system_state {
  const char* name = "";
  system_kind kind = system_kind::audio;
  std::atomic<std::uint32_t> frames_done{0};  // frames whose end event this system has read
  std::uint64_t events = 0;
  std::uint64_t out_of_order = 0;  // events of a frame other than the current one
  std::uint64_t asset_calls = 0;
  std::uint64_t assets_loaded = 0;
  std::uint64_t assets_missing = 0;  // the service's exception reached this system
  std::uint64_t asset_timeouts = 0;  // no reply in time, or the channel closed
  std::uint64_t checksum = 0;        // over the assets loaded, so that their bytes are used
  std::string first_missing;         // the first exception text, for the report
};

// The asset a system needs for an event, if any.
std::optional<std::uint32_t> asset_for(system_kind kind, const frame_event& event) {
  if (kind == system_kind::audio && event.kind == event_kind::explosion) {
    return sound_assets + event.subject % 32;
  }
  if (kind == system_kind::audio && event.kind == event_kind::footstep) {
    return sound_assets + 32 + event.subject % 16;
  }
  if (kind == system_kind::ui && event.kind == event_kind::button) {
    return icon_assets + event.subject % 16;
  }
  return std::nullopt;
}

void call_asset_service(system_state& state, asset_channel& assets, std::uint32_t asset) {
  ++state.asset_calls;
  ringmq::reply_result<asset_data> result = assets.call_for(asset_request{asset}, 1s);
  if (result.ok()) {
    ++state.assets_loaded;
    state.checksum ^= result.get().checksum;
    return;
  }
  if (result.status() != ringmq::request_status::responder_error) {
    ++state.asset_timeouts;
    return;
  }
  ++state.assets_missing;
  if (state.first_missing.empty()) {
    try {
      std::rethrow_exception(result.error());
    } catch (const std::exception& error) {
      state.first_missing = error.what();
    }
  }
}

// Reads events until the quit event. The reader joined before the first publish, so it reads
// every event of the run.
void run_system(system_state& state, event_ring::reader events, asset_channel& assets) {
  std::uint32_t frame = 0;
  bool running = true;
  const auto handle = [&](const frame_event& event) {
    ++state.events;
    if (event.kind == event_kind::quit) {
      running = false;
      return;
    }
    if (event.frame != frame) ++state.out_of_order;
    if (const std::optional<std::uint32_t> asset = asset_for(state.kind, event)) {
      call_asset_service(state, assets, *asset);
    }
    if (event.kind == event_kind::frame_end) {
      ++frame;
      // Release: pairs with main's acquire load, which waits for this frame's end.
      state.frames_done.store(frame, std::memory_order_release);
    }
  };
  while (running) {
    // Up to 64 events per call: the reader's cursor moves once per batch.
    (void)events.read_batch_for(handle, 64, 100ms);
  }
}

// ---------------------------------------------------------------------------------------------
// Jobs

constexpr std::uint32_t max_receive_count = 3;

using job_queue = ringmq::work_queue<job, ringmq::backoff<ringmq::fixed_backoff>>;

// Counters of the worker pool's handlers. settled[f] counts the jobs of frame f that are
// acknowledged or dead-lettered; the frame's job phase ends when it reaches the job count.
struct job_tally {
  explicit job_tally(std::uint32_t frames) : settled(frames) {}

  std::vector<std::atomic<std::uint32_t>> settled;
  std::atomic<std::uint64_t> attempts{0};
  std::atomic<std::uint64_t> failures{0};
  std::atomic<std::uint64_t> work{0};  // a sum over the work done, so that it is not optimized out
};

// A job's work: a few microseconds of arithmetic, as an animation or AI update might take.
std::uint64_t run_job(const job& j, std::uint64_t seed) {
  std::uint64_t state = hash(seed, j.frame, j.index, 7);
  const std::uint32_t steps = 200 + static_cast<std::uint32_t>(state % 400);
  for (std::uint32_t step = 0; step < steps; ++step) state = mix(state);
  return state;
}

// ---------------------------------------------------------------------------------------------
// Report

double percentile(std::vector<double> sorted, double p) {
  if (sorted.empty()) return 0.0;
  std::sort(sorted.begin(), sorted.end());
  const auto rank = static_cast<std::size_t>(p * static_cast<double>(sorted.size() - 1) + 0.5);
  return sorted[std::min(rank, sorted.size() - 1)];
}

void print_frame_times(const std::vector<double>& frame_us) {
  std::printf("frame time (us): p50 %.0f, p90 %.0f, p99 %.0f, max %.0f over %zu frames\n",
              percentile(frame_us, 0.50), percentile(frame_us, 0.90), percentile(frame_us, 0.99),
              percentile(frame_us, 1.0), frame_us.size());
}

}  // namespace

int main(int argc, char** argv) {
  options config;
  try {
    config = parse_options(argc, argv);
  } catch (const usage_error& error) {
    std::fprintf(stderr, "job_system: %s\nRun 'job_system --help' for usage.\n", error.what());
    return 2;
  }
  if (config.help) {
    print_usage(stdout);
    return 0;
  }

  // The three channels. The event ring has room for many frames of events, so a system that is
  // a frame behind does not stall the loop.
  job_queue jobs({.capacity = 1024,
                  .visibility_timeout = 2s,
                  .max_receive_count = max_receive_count,
                  .backoff = {.initial = 100us}});
  event_ring events(1024, 8);
  asset_channel assets({.capacity = 256, .max_outstanding = 256});

  // Systems join the event ring before the first publish, so each reads every event.
  std::array<system_state, 3> systems;
  systems[0].name = "audio";
  systems[0].kind = system_kind::audio;
  systems[1].name = "physics";
  systems[1].kind = system_kind::physics;
  systems[2].name = "ui";
  systems[2].kind = system_kind::ui;
  std::vector<std::thread> threads;
  for (system_state& state : systems) {
    std::optional<event_ring::reader> reader = events.try_join();
    if (!reader) {
      std::fprintf(stderr, "job_system: the event ring has no room for the %s system\n",
                   state.name);
      return 1;
    }
    threads.emplace_back(run_system, std::ref(state), std::move(*reader), std::ref(assets));
  }

  // The asset service: one responder thread, until the channel is closed and drained.
  std::thread asset_service([&assets] {
    while (assets.serve_for(load_asset, 100ms) != ringmq::serve_status::drained) {
    }
  });

  // The worker pool. A failed attempt nacks the job; its last failed attempt dead-letters it,
  // which settles it as surely as an ack does.
  job_tally tally(config.frames);
  const std::uint64_t seed = config.seed;
  const double fail_rate = config.fail_rate;
  ringmq::worker_pool pool(
      jobs,
      [&tally, seed, fail_rate](const job_queue::delivery_type& delivery) {
        const job& j = delivery.body();
        tally.attempts.fetch_add(1, std::memory_order_relaxed);
        if (unit(hash(seed, j.frame, j.index, delivery.receive_count())) < fail_rate) {
          tally.failures.fetch_add(1, std::memory_order_relaxed);
          if (delivery.receive_count() >= max_receive_count) {
            tally.settled[j.frame].fetch_add(1, std::memory_order_release);
          }
          return ringmq::handler_result::retry;
        }
        tally.work.fetch_add(run_job(j, seed), std::memory_order_relaxed);
        // Counted before the pool acks; the lease is long and extended, so the ack succeeds.
        tally.settled[j.frame].fetch_add(1, std::memory_order_release);
        return ringmq::handler_result::ack;
      },
      {.threads = config.workers});

  std::printf("job_system: %u frames, %u jobs per frame, %zu worker%s, fail rate %g, seed %llu\n",
              config.frames, config.jobs, config.workers, config.workers == 1 ? "" : "s",
              config.fail_rate, static_cast<unsigned long long>(config.seed));

  // The frame loop.
  std::vector<double> frame_us;
  frame_us.reserve(config.frames);
  std::uint64_t events_published = 0;
  bool sends_failed = false;
  for (std::uint32_t frame = 0; frame < config.frames; ++frame) {
    const auto start = std::chrono::steady_clock::now();

    // Events: the frame's gameplay happenings between its begin and end markers.
    std::vector<frame_event> happenings{{event_kind::frame_begin, frame, 0}};
    const std::uint64_t h = hash(seed, frame, 0, 1);
    for (std::uint32_t i = 0; i < h % 4; ++i) {
      happenings.push_back({event_kind::explosion, frame, static_cast<std::uint32_t>(h >> 8) + i});
    }
    for (std::uint32_t i = 0; i < (h >> 4) % 6; ++i) {
      happenings.push_back({event_kind::footstep, frame, static_cast<std::uint32_t>(h >> 16) + i});
    }
    if ((h >> 32) % 3 == 0) {
      happenings.push_back({event_kind::button, frame, static_cast<std::uint32_t>(h >> 40)});
    }
    happenings.push_back({event_kind::frame_end, frame, 0});
    for (const frame_event& event : happenings) {
      if (!events.publish(event)) sends_failed = true;
      ++events_published;
    }

    // Jobs: the frame's work for the pool.
    for (std::uint32_t index = 0; index < config.jobs; ++index) {
      if (!jobs.send(job{frame, index})) sends_failed = true;
    }

    // The frame ends when its jobs are settled and every system has read its end event.
    while (tally.settled[frame].load(std::memory_order_acquire) < config.jobs ||
           std::any_of(systems.begin(), systems.end(), [frame](const system_state& s) {
             return s.frames_done.load(std::memory_order_acquire) <= frame;
           })) {
      if (sends_failed) break;
      std::this_thread::yield();
    }
    frame_us.push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start)
            .count());
    if (sends_failed) break;
  }

  // Shut down: systems quit on the quit event, then the asset service drains, then the pool.
  if (!events.publish(frame_event{event_kind::quit, config.frames, 0})) sends_failed = true;
  ++events_published;
  for (std::thread& thread : threads) thread.join();
  assets.close();
  asset_service.join();
  pool.stop();
  jobs.close();

  // Report.
  std::printf("\n");
  print_frame_times(frame_us);

  const ringmq::queue_stats job_stats = jobs.stats();
  const ringmq::worker_pool_stats pool_stats = pool.stats();
  std::printf("\njobs (work_queue + worker_pool)\n");
  std::printf("  %-28s %llu\n", "sent", static_cast<unsigned long long>(job_stats.sent));
  std::printf("  %-28s %llu\n", "attempts",
              static_cast<unsigned long long>(tally.attempts.load()));
  std::printf("  %-28s %llu\n", "failed attempts (nacked)",
              static_cast<unsigned long long>(job_stats.nacked));
  std::printf("  %-28s %llu\n", "retries (redeliveries)",
              static_cast<unsigned long long>(job_stats.redelivered));
  std::printf("  %-28s %llu\n", "acked", static_cast<unsigned long long>(job_stats.acked));
  std::printf("  %-28s %llu\n", "dead letters (max_receives)",
              static_cast<unsigned long long>(job_stats.dead_lettered));
  std::printf("  %-28s %llu\n", "lease extensions",
              static_cast<unsigned long long>(pool_stats.extended));

  std::printf("\nframe events (broadcast_ring, capacity %zu)\n", events.capacity());
  std::printf("  %-28s %llu\n", "published", static_cast<unsigned long long>(events_published));
  for (const system_state& state : systems) {
    std::printf("  %-28s %llu read, %llu out of order\n", state.name,
                static_cast<unsigned long long>(state.events),
                static_cast<unsigned long long>(state.out_of_order));
  }

  const ringmq::request_reply_stats asset_stats = assets.stats();
  std::printf("\nasset requests (request_reply)\n");
  for (const system_state& state : systems) {
    if (state.asset_calls == 0) continue;
    std::printf("  %-28s %llu calls: %llu loaded, %llu missing, %llu without answer\n",
                state.name, static_cast<unsigned long long>(state.asset_calls),
                static_cast<unsigned long long>(state.assets_loaded),
                static_cast<unsigned long long>(state.assets_missing),
                static_cast<unsigned long long>(state.asset_timeouts));
    if (!state.first_missing.empty()) {
      std::printf("  %-28s first error: %s\n", "", state.first_missing.c_str());
    }
  }
  std::printf("  %-28s sent %llu, replied %llu, failed %llu, timed out %llu, late %llu\n",
              "channel", static_cast<unsigned long long>(asset_stats.sent),
              static_cast<unsigned long long>(asset_stats.replied),
              static_cast<unsigned long long>(asset_stats.failed),
              static_cast<unsigned long long>(asset_stats.timed_out),
              static_cast<unsigned long long>(asset_stats.late_replies));

  // Accounting: every job acked or a dead letter, every system read every event in frame
  // order, and every asset request got exactly one reply or failure.
  std::uint64_t calls = 0;
  std::uint64_t answered = 0;
  bool events_ok = true;
  for (const system_state& state : systems) {
    calls += state.asset_calls;
    answered += state.assets_loaded + state.assets_missing;
    events_ok = events_ok && state.events == events_published && state.out_of_order == 0;
  }
  const std::uint64_t jobs_expected = std::uint64_t{config.frames} * config.jobs;
  const bool jobs_ok = job_stats.sent == jobs_expected &&
                       job_stats.acked + job_stats.dead_lettered == jobs_expected &&
                       job_stats.dead_letters == job_stats.dead_lettered;
  const bool assets_ok = asset_stats.sent == calls &&
                         asset_stats.replied + asset_stats.failed == answered &&
                         asset_stats.timed_out == 0 && asset_stats.late_replies == 0;
  std::printf(
      "\naccounting: %llu jobs = %llu acked + %llu dead letters; events %s; asset requests %s\n",
      static_cast<unsigned long long>(jobs_expected),
      static_cast<unsigned long long>(job_stats.acked),
      static_cast<unsigned long long>(job_stats.dead_lettered),
      events_ok ? "all read in order by every system" : "MISSING OR OUT OF ORDER",
      assets_ok ? "each answered once" : "NOT ALL ANSWERED");
  const bool ok = !sends_failed && jobs_ok && events_ok && assets_ok;
  std::printf("%s\n", ok ? "every job, event and asset request accounted for"
                         : "job_system: accounting failed");
  return ok ? 0 : 1;
}
