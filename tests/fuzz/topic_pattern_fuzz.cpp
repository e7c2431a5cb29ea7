// Fuzz target for ringmq's topic binding patterns: the input bytes give a few patterns and
// routing keys, over an alphabet rich in '.', '*' and '#'. For each pattern, whether
// detail::topic_pattern accepts it is compared with a reference written from docs/fanout.md,
// and for each accepted pattern and each key, so is matches(). Then a topic gets one ring
// subscription per pattern: subscribe must throw std::invalid_argument for exactly the invalid
// patterns, and each publish must deliver to exactly the subscriptions whose pattern matches
// its key, with publish_result and the subscriptions' stats() counting it. A mismatch prints
// the patterns and keys and aborts.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <ringmq/detail/topic_pattern.hpp>
#include <ringmq/topic.hpp>

namespace {

// ---- reference -------------------------------------------------------------------------------

// The words of a key or pattern: "" has none, and otherwise every '.' separates two words, so
// "a..b" has three and "a." two.
std::vector<std::string> split_words(std::string_view text) {
  std::vector<std::string> words;
  if (text.empty()) return words;
  std::string word;
  for (const char c : text) {
    if (c == '.') {
      words.push_back(word);
      word.clear();
    } else {
      word += c;
    }
  }
  words.push_back(word);
  return words;
}

// The first word that mixes '*' or '#' with other characters, or nothing for a valid pattern.
std::optional<std::string> invalid_word(std::string_view pattern) {
  for (const std::string& word : split_words(pattern)) {
    if (word == "*" || word == "#") continue;
    if (word.find_first_of("*#") != std::string::npos) return word;
  }
  return std::nullopt;
}

// Whether pattern words [p, end) match key words [k, end): "#" takes zero words or one more,
// "*" takes exactly one, any other word must equal the key word. Memoized on (p, k), because
// a pattern of many "#" words would otherwise take exponential time.
class reference_matcher {
 public:
  reference_matcher(std::vector<std::string> pattern, std::vector<std::string> key)
      : pattern_(std::move(pattern)),
        key_(std::move(key)),
        memo_((pattern_.size() + 1) * (key_.size() + 1), unknown) {}

  bool matches() { return match(0, 0); }

 private:
  static constexpr signed char unknown = -1;

  bool match(std::size_t p, std::size_t k) {
    signed char& memo = memo_[p * (key_.size() + 1) + k];
    if (memo == unknown) memo = compute(p, k) ? 1 : 0;
    return memo == 1;
  }

  bool compute(std::size_t p, std::size_t k) {
    if (p == pattern_.size()) return k == key_.size();
    if (pattern_[p] == "#") return match(p + 1, k) || (k < key_.size() && match(p, k + 1));
    if (k == key_.size()) return false;
    if (pattern_[p] == "*" || pattern_[p] == key_[k]) return match(p + 1, k + 1);
    return false;
  }

  std::vector<std::string> pattern_;
  std::vector<std::string> key_;
  std::vector<signed char> memo_;
};

bool reference_matches(std::string_view pattern, std::string_view key) {
  return reference_matcher(split_words(pattern), split_words(key)).matches();
}

// ---- input -----------------------------------------------------------------------------------

// A pattern or key of up to 16 characters, mostly from "ab.*#" so that words repeat and
// wildcards are common, sometimes any byte.
std::string draw_text(FuzzedDataProvider& input) {
  static constexpr char alphabet[] = {'a', 'b', '.', '.', '*', '#', 'c', '.'};
  const std::size_t length = input.ConsumeIntegralInRange<std::size_t>(0, 16);
  std::string text;
  for (std::size_t i = 0; i < length; ++i) {
    const std::uint8_t pick = input.ConsumeIntegral<std::uint8_t>();
    if (pick < 240) {
      text += alphabet[pick % sizeof(alphabet)];
    } else {
      text += static_cast<char>(input.ConsumeIntegral<std::uint8_t>());
    }
  }
  return text;
}

std::string quoted(std::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte >= 0x7f || c == '"' || c == '\\') {
      char escaped[8];
      std::snprintf(escaped, sizeof(escaped), "\\x%02x", byte);
      out += escaped;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

struct case_input {
  std::vector<std::string> patterns;
  std::vector<std::string> keys;
  std::vector<bool> keyless;  // publish(message) instead of publish(key, message); key is ""

  [[noreturn]] void fail(const std::string& mismatch) const {
    std::fprintf(stderr,
                 "topic pattern differs from the reference: %s\npatterns:", mismatch.c_str());
    for (const std::string& pattern : patterns) {
      std::fprintf(stderr, " %s", quoted(pattern).c_str());
    }
    std::fprintf(stderr, "\nkeys:");
    for (const std::string& key : keys) std::fprintf(stderr, " %s", quoted(key).c_str());
    std::fprintf(stderr, "\n");
    std::abort();
  }
};

// ---- checks ----------------------------------------------------------------------------------

void check_patterns(const case_input& test) {
  for (const std::string& pattern : test.patterns) {
    const std::optional<std::string> bad_word = invalid_word(pattern);
    std::optional<ringmq::detail::topic_pattern> compiled;
    try {
      compiled.emplace(pattern);
    } catch (const std::invalid_argument& error) {
      if (!bad_word) test.fail("pattern " + quoted(pattern) + " was rejected: " + error.what());
      // what() is a C string, so a pattern with a NUL byte is cut short there.
      const std::string message = error.what();
      const bool whole = pattern.find('\0') == std::string::npos;
      if (whole && message.find("\"" + *bad_word + "\"") == std::string::npos) {
        test.fail("the error for pattern " + quoted(pattern) + " does not name the word " +
                  quoted(*bad_word) + ": " + message);
      }
      continue;
    }
    if (bad_word) {
      test.fail("pattern " + quoted(pattern) + " was accepted, but its word " + quoted(*bad_word) +
                " mixes a wildcard with other characters");
    }
    if (compiled->text() != pattern) test.fail("text() of " + quoted(pattern) + " differs");
    for (const std::string& key : test.keys) {
      const bool expected = reference_matches(pattern, key);
      if (compiled->matches(key) != expected) {
        test.fail("pattern " + quoted(pattern) + (expected ? " does not match " : " matches ") +
                  "key " + quoted(key));
      }
    }
  }
}

template <class Topic>
void check_topic(const case_input& test, bool unsubscribe_first) {
  using subscription = typename Topic::ring_subscription;
  Topic topic;
  const ringmq::ring_inbox inbox{.capacity = 2, .overflow = ringmq::overflow_policy::drop_newest};

  // One subscription per valid pattern, in input order; invalid ones must throw.
  std::vector<subscription> subscriptions;
  std::vector<std::string> bound;
  for (const std::string& pattern : test.patterns) {
    const bool valid = !invalid_word(pattern).has_value();
    try {
      subscriptions.push_back(topic.subscribe(pattern, inbox));
    } catch (const std::invalid_argument& error) {
      if (valid) test.fail("subscribe(" + quoted(pattern) + ") threw: " + error.what());
      continue;
    }
    if (!valid) test.fail("subscribe(" + quoted(pattern) + ") accepted an invalid pattern");
    bound.push_back(pattern);
  }
  // An unsubscribed subscription gets nothing, whatever its pattern.
  std::vector<bool> subscribed(subscriptions.size(), true);
  if (unsubscribe_first && !subscriptions.empty()) {
    subscriptions.front().unsubscribe();
    subscribed.front() = false;
  }

  std::vector<std::uint64_t> matched(subscriptions.size(), 0);
  for (std::size_t i = 0; i < test.keys.size(); ++i) {
    const std::string& key = test.keys[i];
    const bool keyless = test.keyless[i];
    const std::string call = keyless ? "publish(message)" : "publish(" + quoted(key) + ", message)";
    const auto message = static_cast<std::uint32_t>(i);
    const ringmq::publish_result result =
        keyless ? topic.publish(message) : topic.publish(key, message);

    std::uint32_t expected_matches = 0;
    for (std::size_t s = 0; s < subscriptions.size(); ++s) {
      const bool expected = subscribed[s] && reference_matches(bound[s], keyless ? "" : key);
      if (expected) {
        ++expected_matches;
        ++matched[s];
      }
      const std::optional<std::uint32_t> got = subscriptions[s].inbox().try_pop();
      if (got.has_value() != expected) {
        test.fail(call + (expected ? " did not deliver to " : " delivered to ") +
                  (subscribed[s] ? "" : "the unsubscribed ") + "subscription " + quoted(bound[s]));
      }
      if (got && *got != message) test.fail(call + " delivered message " + std::to_string(*got));
      if (subscriptions[s].inbox().try_pop()) {
        test.fail(call + " left a second message in subscription " + quoted(bound[s]));
      }
      if (subscriptions[s].stats().matched != matched[s]) {
        test.fail("stats().matched of subscription " + quoted(bound[s]) + " is " +
                  std::to_string(subscriptions[s].stats().matched) + ", expected " +
                  std::to_string(matched[s]));
      }
    }
    if (!result.ok() || result.matched != expected_matches ||
        result.delivered != expected_matches || result.dropped != 0) {
      test.fail(call + " returned status " + std::string(to_string(result.status)) + ", matched " +
                std::to_string(result.matched) + ", delivered " + std::to_string(result.delivered) +
                ", dropped " + std::to_string(result.dropped) +
                "; expected ok, matched and delivered " + std::to_string(expected_matches));
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider input(data, size);
  case_input test;
  const std::size_t pattern_count = input.ConsumeIntegralInRange<std::size_t>(1, 6);
  for (std::size_t i = 0; i < pattern_count; ++i) test.patterns.push_back(draw_text(input));
  const std::size_t key_count = input.ConsumeIntegralInRange<std::size_t>(1, 6);
  for (std::size_t i = 0; i < key_count; ++i) {
    test.keys.push_back(draw_text(input));
    test.keyless.push_back(test.keys.back().empty() && input.ConsumeBool());
  }
  const bool single_publisher = input.ConsumeBool();
  const bool unsubscribe_first = input.ConsumeBool();

  check_patterns(test);
  if (single_publisher) {
    check_topic<ringmq::topic<std::uint32_t, ringmq::producers<ringmq::single>>>(test,
                                                                                 unsubscribe_first);
  } else {
    check_topic<ringmq::topic<std::uint32_t>>(test, unsubscribe_first);
  }
  return 0;
}
