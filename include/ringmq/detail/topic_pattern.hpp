// ringmq internals: AMQP topic binding patterns, compiled once and matched without allocating.
//
// Words. A routing key and a pattern are lists of words separated by '.', split the way
// RabbitMQ's topic exchange splits them (split_topic_key in the server's rabbit_db_topic_exchange
// module). "" is zero words and "a" is one word. "a..b" is three words, the middle one empty,
// and "a." and ".a" are two words each. Words are compared byte for byte.
//
// Pattern words. "*" matches exactly one word, which may be empty. "#" matches zero or more
// words. Every other word matches only an equal word. So "#" matches every key including "",
// "*.#" matches keys of one or more words, "a.#" matches "a", and "" matches only "".
//
// A pattern word that contains '*' or '#' next to other characters is rejected with
// std::invalid_argument. RabbitMQ treats a word such as "b*" as plain text, but it is far more
// likely a typo for "b.*". So a pattern cannot name a key word that contains '*' or '#'. Bind
// such keys with a predicate.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace ringmq::detail {

// A binding pattern compiled into a list of words. Matching reads the key in place and
// allocates nothing. The pattern is immutable after construction, so any number of threads may
// match against it at once.
class topic_pattern {
 public:
  // Compiles `pattern`. Throws std::invalid_argument naming the pattern and the word when a word
  // mixes '*' or '#' with other characters.
  explicit topic_pattern(std::string_view pattern) : text_(pattern) {
    std::size_t start = 0;
    if (!text_.empty()) {
      for (;;) {
        const std::size_t dot = text_.find('.', start);
        const std::size_t end = dot == std::string::npos ? text_.size() : dot;
        add_word(start, end - start);
        if (dot == std::string::npos) break;
        start = dot + 1;
      }
    }
    matches_every_key_ = words_.size() == 1 && words_[0].kind == word_kind::zero_or_more;
  }

  // Whether `key` matches the pattern. O(pattern words x key words) in the worst case.
  bool matches(std::string_view key) const noexcept {
    if (matches_every_key_) return true;

    // Wildcard matching with one backtracking point, as for shell globs: "#" plays the part of
    // "*" in a glob and "*" the part of "?". When a later word fails, the most recent "#"
    // takes one more key word and matching resumes after it. Earlier "#" words never need to
    // take more, because the latest one can absorb any extra words.
    const std::size_t count = words_.size();
    std::size_t next = 0;                  // index of the next pattern word
    key_word at = first_word(key);         // the next key word
    std::size_t resume_pattern = no_word;  // pattern index just after the latest "#"
    key_word resume_key{};                 // the key word where that "#" stopped taking words
    while (at.start != no_word) {
      if (next < count && words_[next].kind == word_kind::zero_or_more) {
        resume_pattern = ++next;
        resume_key = at;
        continue;
      }
      if (next < count && word_matches(words_[next], key, at)) {
        ++next;
        at = next_word(key, at);
        continue;
      }
      if (resume_pattern == no_word) return false;
      // The latest "#" takes the key word at resume_key, and matching resumes after it.
      resume_key = next_word(key, resume_key);
      next = resume_pattern;
      at = resume_key;
    }
    // The key is used up: the rest of the pattern must be able to match zero words.
    while (next < count && words_[next].kind == word_kind::zero_or_more) ++next;
    return next == count;
  }

  // The pattern as given to the constructor.
  std::string_view text() const noexcept { return text_; }

 private:
  enum class word_kind : std::uint8_t { literal, one, zero_or_more };

  // One pattern word. A literal refers to text_[offset, offset + length).
  struct word {
    word_kind kind;
    std::size_t offset;
    std::size_t length;
  };

  // Marks "no key word left" and "no '#' seen". A key offset can never reach it.
  static constexpr std::size_t no_word = static_cast<std::size_t>(-1);

  void add_word(std::size_t offset, std::size_t length) {
    const std::string_view text(text_.data() + offset, length);
    if (text == "*") {
      words_.push_back({word_kind::one, offset, length});
      return;
    }
    if (text == "#") {
      // "#.#" matches what "#" matches, so consecutive "#" words are kept once.
      if (words_.empty() || words_.back().kind != word_kind::zero_or_more) {
        words_.push_back({word_kind::zero_or_more, offset, length});
      }
      return;
    }
    if (text.find_first_of("*#") != std::string_view::npos) {
      throw std::invalid_argument("ringmq::topic: binding pattern \"" + text_ +
                                  "\" is invalid: word \"" + std::string(text) +
                                  "\" mixes a wildcard with other characters; use \"*\" or \"#\" "
                                  "as a whole word between dots, or bind with a predicate");
    }
    words_.push_back({word_kind::literal, offset, length});
  }

  // One word of a key: key[start, end), where end is the '.' after it or the key's size. A
  // start of no_word means that no word is left.
  struct key_word {
    std::size_t start = no_word;
    std::size_t end = no_word;
  };

  // The position of the first '.' at or after `from`, or key.size().
  static std::size_t word_end(std::string_view key, std::size_t from) noexcept {
    while (from < key.size() && key[from] != '.') ++from;
    return from;
  }

  // The first word of key; none for "", which has zero words.
  static key_word first_word(std::string_view key) noexcept {
    if (key.empty()) return {};
    return {0, word_end(key, 0)};
  }

  // The word after `w`, or none after the last one. A key that ends in '.' ends with an empty
  // word, which starts and ends at key.size().
  static key_word next_word(std::string_view key, key_word w) noexcept {
    if (w.end == key.size()) return {};
    return {w.end + 1, word_end(key, w.end + 1)};
  }

  bool word_matches(const word& w, std::string_view key, key_word at) const noexcept {
    if (w.kind == word_kind::one) return true;
    return at.end - at.start == w.length &&
           key.compare(at.start, w.length, text_.data() + w.offset, w.length) == 0;
  }

  std::string text_;
  std::vector<word> words_;
  bool matches_every_key_ = false;
};

}  // namespace ringmq::detail
