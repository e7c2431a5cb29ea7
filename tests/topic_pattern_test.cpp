// Tests of ringmq::detail::topic_pattern, the AMQP topic binding matcher behind ringmq::topic:
// a table of (pattern, routing key, expected) cases, and the patterns it rejects.
//
// Words are split as RabbitMQ's topic exchange splits them: "" is zero words, "a." is "a" and
// an empty word, "a..b" has an empty word in the middle. "*" matches one word, "#" zero or more.
#include <catch2/catch.hpp>

#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <ringmq/detail/topic_pattern.hpp>

using ringmq::detail::topic_pattern;

namespace {

struct match_case {
  std::string_view pattern;
  std::string_view key;
  bool expected;
};

// clang-format off
const std::vector<match_case> match_cases = {
    // Literal words.
    {"a", "a", true},
    {"a", "b", false},
    {"a", "ab", false},
    {"a", "a.b", false},
    {"a.b", "a.b", true},
    {"a.b", "a", false},
    {"a.b", "a.b.c", false},
    {"a.b", "a.c", false},
    {"orders.created", "orders.created", true},
    {"orders.created", "orders.Created", false},

    // The empty key "" has zero words.
    {"", "", true},
    {"", "a", false},
    {"", ".", false},
    {"a", "", false},
    {"*", "", false},
    {"#", "", true},
    {"#.#", "", true},
    {"*.#", "", false},
    {"#.*", "", false},
    {"a.#", "", false},

    // Empty words: "." is two empty words, "a." and ".a" have one empty word each.
    {"a..b", "a..b", true},
    {"a..b", "a.b", false},
    {"a..b", "a.x.b", false},
    {"a.*.b", "a..b", true},
    {"a.#.b", "a..b", true},
    {".", ".", true},
    {".", "", false},
    {"*", ".", false},
    {"*.*", ".", true},
    {"#", ".", true},
    {"a.", "a.", true},
    {"a.", "a", false},
    {"a.*", "a.", true},
    {"a.#", "a.", true},
    {".a", ".a", true},
    {"*.a", ".a", true},
    {"#.a", ".a", true},
    {"#.a", "a", true},
    {"a", "a.", false},
    {"a", ".a", false},

    // "*" matches exactly one word.
    {"*", "a", true},
    {"*", "a.b", false},
    {"a.*", "a.b", true},
    {"a.*", "a", false},
    {"a.*", "a.b.c", false},
    {"*.b", "a.b", true},
    {"*.b", "b", false},
    {"a.*.c", "a.b.c", true},
    {"a.*.c", "a.c", false},
    {"a.*.c", "a.b.b.c", false},
    {"*.*", "a.b", true},
    {"*.*", "a", false},
    {"*.*", "a.b.c", false},

    // "#" at the start.
    {"#.c", "c", true},
    {"#.c", "a.c", true},
    {"#.c", "a.b.c", true},
    {"#.c", "a.b", false},
    {"#.c", "c.d", false},
    {"#.c", "c.c", true},

    // "#" in the middle.
    {"a.#.c", "a.c", true},
    {"a.#.c", "a.b.c", true},
    {"a.#.c", "a.b.b.c", true},
    {"a.#.c", "a.c.c", true},
    {"a.#.c", "a.c.d", false},
    {"a.#.c", "a", false},
    {"a.#.c", "b.c", false},
    {"a.#.b.#.c", "a.b.c", true},
    {"a.#.b.#.c", "a.x.b.y.z.c", true},
    {"a.#.b.#.c", "a.x.c.y.b", false},
    {"a.#.b.c", "a.b.c.b.c", true},
    {"a.#.b.c", "a.b.c.b", false},

    // "#" at the end: "a.#" matches "a" itself.
    {"a.#", "a", true},
    {"a.#", "a.b", true},
    {"a.#", "a.b.c", true},
    {"a.#", "b", false},
    {"a.#", "b.a", false},
    {"#", "a", true},
    {"#", "a.b.c", true},

    // "*.#": one or more words.
    {"*.#", "a", true},
    {"*.#", "a.b", true},
    {"*.#", "a.b.c", true},

    // "#.#" is the same as "#".
    {"#.#", "a", true},
    {"#.#", "a.b.c", true},
    {"a.#.#.c", "a.c", true},
    {"a.#.#.c", "a.b.b.c", true},

    // "#.*": one or more words, the last one any word.
    {"#.*", "a", true},
    {"#.*", "a.b.c", true},
    {"#.*.c", "c", false},
    {"#.*.c", "b.c", true},
    {"#.*.c", "a.b.c", true},
    {"*.#.*", "a", false},
    {"*.#.*", "a.b", true},
    {"*.#.*", "a.b.c.d", true},

    // A routing key may contain '*' and '#' as text. Only patterns give them a meaning.
    {"*", "#", true},
    {"a.*", "a.*", true},
    {"#", "*.#", true},
    {"a.b", "a.*", false},
};
// clang-format on

// Compiles `pattern` and returns the message of the std::invalid_argument it throws, or a note
// that it threw nothing.
std::string compile_error(std::string_view pattern) {
  try {
    const topic_pattern compiled(pattern);
  } catch (const std::invalid_argument& error) {
    return error.what();
  }
  return "(no exception)";
}

}  // namespace

TEST_CASE("topic_pattern: table of matches", "[topic_pattern]") {
  for (const match_case& c : match_cases) {
    const topic_pattern pattern(c.pattern);
    INFO("pattern \"" << c.pattern << "\", key \"" << c.key << "\"");
    CHECK(pattern.matches(c.key) == c.expected);
  }
}

TEST_CASE("topic_pattern: text returns the pattern", "[topic_pattern]") {
  CHECK(topic_pattern("a.#.#.b").text() == "a.#.#.b");
  CHECK(topic_pattern("").text().empty());
}

TEST_CASE("topic_pattern: a copy matches as the original", "[topic_pattern]") {
  const topic_pattern original("a.*.c");
  const topic_pattern copy = original;
  CHECK(copy.matches("a.b.c"));
  CHECK_FALSE(copy.matches("a.c"));
}

TEST_CASE("topic_pattern: partial wildcard words are rejected", "[topic_pattern]") {
  struct invalid_case {
    std::string_view pattern;
    std::string_view word;
  };
  const std::vector<invalid_case> cases = {
      {"a.b*", "b*"}, {"*a", "*a"}, {"a#", "a#"},       {"a.#b.c", "#b"},   {"**", "**"},
      {"##", "##"},   {"*#", "*#"}, {"a.b*c.d", "b*c"}, {"x.*.y.z#", "z#"}, {"#.#.a*", "a*"},
  };
  for (const invalid_case& c : cases) {
    INFO("pattern \"" << c.pattern << "\"");
    const std::string message = compile_error(c.pattern);
    CHECK_THAT(message, Catch::Contains("\"" + std::string(c.pattern) + "\""));
    CHECK_THAT(message, Catch::Contains("word \"" + std::string(c.word) + "\""));
    CHECK_THAT(message, Catch::Contains("is invalid"));
  }
}

TEST_CASE("topic_pattern: whole wildcard words are accepted", "[topic_pattern]") {
  for (const std::string_view pattern : {"*", "#", "*.*", "#.#", "a.*.#", ".", "a..b", "#.", ""}) {
    INFO("pattern \"" << pattern << "\"");
    CHECK(compile_error(pattern) == "(no exception)");
  }
}
