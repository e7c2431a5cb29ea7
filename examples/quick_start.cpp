// Two producer threads and two consumer threads share one bounded ring. The consumers stop once
// the ring is closed and drained, then main checks that every message arrived exactly once.
#include <ringmq/ring.hpp>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <thread>
#include <vector>

struct message {
  int producer;
  int sequence;
};

int main() {
  constexpr int producer_count = 2;
  constexpr int messages_per_producer = 100'000;
  ringmq::ring<message> ring(1024);  // any number of producers and consumers

  auto produce = [&](int producer) {
    for (int i = 0; i < messages_per_producer; ++i) ring.push({producer, i});  // waits while full
  };
  auto consume = [&](std::vector<message>& received) {
    while (auto item = ring.pop()) received.push_back(*item);  // waits while empty
  };

  std::vector<message> received[2];
  std::vector<std::thread> consumers;
  std::vector<std::thread> producers;
  for (auto& out : received) consumers.emplace_back(consume, std::ref(out));
  for (int producer = 0; producer < producer_count; ++producer) {
    producers.emplace_back(produce, producer);
  }
  for (auto& thread : producers) thread.join();
  ring.close();  // pop() now returns what is left, then an empty optional
  for (auto& thread : consumers) thread.join();

  std::vector<int> times_received(producer_count * messages_per_producer, 0);
  for (const auto& messages : received) {
    for (message m : messages) ++times_received[m.producer * messages_per_producer + m.sequence];
  }
  auto lost = std::ranges::count(times_received, 0);
  auto duplicated = std::ranges::count_if(times_received, [](int times) { return times > 1; });
  if (lost != 0 || duplicated != 0) {
    std::fprintf(stderr, "quick_start: %td messages lost, %td received more than once\n", lost,
                 duplicated);
    return 1;
  }
  std::printf("%zu messages received exactly once (%zu by consumer 0, %zu by consumer 1)\n",
              times_received.size(), received[0].size(), received[1].size());
}
