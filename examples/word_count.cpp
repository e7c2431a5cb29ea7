// word_count: counts the words in every text file under the given folders with a pipeline of a
// ringmq work queue and a ringmq ring.
//
//   walker thread --paths work queue--> N worker threads --results ring (MPSC)--> main thread
//
// The walker sends one message per file, waiting while the work queue is full, and closes the
// queue after the walk. Each worker receives a path with a lease, reads the file and settles the
// message in one of three ways:
//   ack     the file was counted, or skipped because it is a symbolic link or not a regular
//           file. Only the worker whose ack succeeds pushes the result, so no file is counted
//           twice.
//   nack    the file could not be read, or --fail-rate injected a failure. The message comes
//           back after an exponential backoff with jitter, and becomes a dead letter after
//           max_receive_count failed attempts.
//   reject  the file is binary. The message becomes a dead letter at once.
// The last worker to finish closes the results ring. The main thread merges the results and
// drains the dead-letter queue until then, and prints the most frequent words, the files, the
// throughput, how full the queue and the ring ran, and what the work queue did to deliver.
#include <ringmq/backoff.hpp>
#include <ringmq/dead_letter_queue.hpp>
#include <ringmq/ring.hpp>
#include <ringmq/work_queue.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <iterator>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

// ---------------------------------------------------------------------------------------------
// Command line

constexpr std::size_t default_top = 20;
constexpr std::size_t default_queue_capacity = 256;
constexpr std::size_t default_result_capacity = 64;
constexpr std::size_t max_workers = 1024;
constexpr std::size_t max_top = 1'000'000;
constexpr std::size_t max_capacity = std::size_t{1} << 20;
constexpr std::array<const char*, 2> default_roots = {"/usr/share/common-licenses",
                                                      "/usr/share/doc"};

// Delivery rules of the paths work queue. The backoff is short so that a run with injected
// failures still ends quickly. The lease is long because a lease that ends while a worker counts
// a large file makes another worker count the file again.
constexpr std::uint32_t max_receive_count = 4;
constexpr auto lease = 30s;
constexpr auto backoff_initial = 1ms;
constexpr auto backoff_max = 50ms;
constexpr std::size_t dead_letter_capacity = 4096;

struct options {
  std::vector<fs::path> roots;
  std::size_t workers = 1;
  std::size_t top = default_top;
  std::size_t queue_capacity = default_queue_capacity;
  std::size_t result_capacity = default_result_capacity;
  double fail_rate = 0.0;
  std::uint64_t seed = 1;
  bool help = false;
};

// A command line that cannot run. When `show_usage` is set, the full usage text follows the
// message.
struct usage_error : std::runtime_error {
  usage_error(const std::string& message, bool show_usage)
      : std::runtime_error(message), show_usage(show_usage) {}
  bool show_usage;
};

std::size_t default_worker_count() {
  return std::max(1u, std::thread::hardware_concurrency());
}

void print_usage(std::FILE* out) {
  std::fprintf(out,
               "Usage: word_count [OPTION]... [FOLDER]...\n"
               "Count the words in every text file under each FOLDER and print the most\n"
               "frequent ones. Without FOLDER, reads /usr/share/common-licenses and\n"
               "/usr/share/doc. A FOLDER may also be a single regular file.\n"
               "\n"
               "Options:\n"
               "  --workers N          threads that read and count files, 1 to %zu\n"
               "                       (default: the hardware thread count, here %zu)\n"
               "  --top K              number of most frequent words to print, 1 to %zu\n"
               "                       (default %zu)\n"
               "  --queue-capacity N   capacity of the work queue of file paths, in messages,\n"
               "                       1 to %zu (default %zu); messages waiting out a retry\n"
               "                       delay count too\n"
               "  --result-capacity N  capacity of the ring of per-file results, in results,\n"
               "                       1 to %zu (default %zu)\n"
               "  --fail-rate P        probability, from 0 to 1, that an attempt to count a\n"
               "                       file fails on purpose, to show retries (default 0)\n"
               "  --seed N             seed that picks the attempts --fail-rate fails, 0 to\n"
               "                       %llu (default 1); a seed fails the same attempts on\n"
               "                       every run over the same files\n"
               "  -h, --help           print this help and exit\n"
               "Options also take the form --option=VALUE. '--' ends the options.\n"
               "\n"
               "Words: a word is a run of ASCII letters, lowercased. An apostrophe between two\n"
               "letters stays in the word (don't, o'clock). Every other byte ends a word:\n"
               "digits, '_', punctuation and non-ASCII bytes, so accented words split in two.\n"
               "\n"
               "Files: symbolic links are never followed, and each one found is reported as\n"
               "skipped. FIFOs, sockets and devices are skipped without being opened. A file\n"
               "is binary when its first 4 KiB contain a NUL byte or more than 10%% of bytes\n"
               "outside valid UTF-8; gzip files count as binary and are not decompressed.\n"
               "Binary files are rejected and become dead letters. A file that cannot be\n"
               "opened or read is retried after a delay of %lld ms to %lld ms, and becomes a\n"
               "dead letter after %u failed attempts. Directories that cannot be opened are\n"
               "reported and not descended into.\n"
               "\n"
               "Exit status: 0 on success, 1 when the results and dead letters do not account\n"
               "for every file the walker found exactly once, 2 on a usage error or a missing\n"
               "folder.\n",
               max_workers, default_worker_count(), max_top, default_top, max_capacity,
               default_queue_capacity, max_capacity, default_result_capacity,
               static_cast<unsigned long long>(std::numeric_limits<std::uint64_t>::max()),
               static_cast<long long>(backoff_initial.count()),
               static_cast<long long>(backoff_max.count()), max_receive_count);
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
                          std::to_string(max),
                      false);
  }
  return value;
}

std::size_t parse_count(std::string_view option, std::string_view text, std::size_t max) {
  return static_cast<std::size_t>(parse_integer(option, text, 1, max));
}

// Parses the value of `option` as a probability: a decimal number from 0 to 1.
double parse_probability(std::string_view option, std::string_view text) {
  double value = 0.0;
  const char* end = text.data() + text.size();
  auto [stop, error] = std::from_chars(text.data(), end, value);
  // The negated range test also rejects "nan".
  if (text.empty() || error != std::errc{} || stop != end || !(value >= 0.0 && value <= 1.0)) {
    throw usage_error("invalid value '" + std::string(text) + "' for " + std::string(option) +
                          ": expected a number from 0 to 1, such as 0.05",
                      false);
  }
  return value;
}

options parse_options(int argc, char** argv) {
  static constexpr std::array<std::string_view, 6> options_with_value = {
      "--workers", "--top", "--queue-capacity", "--result-capacity", "--fail-rate", "--seed"};

  options parsed;
  parsed.workers = default_worker_count();
  bool options_ended = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view argument = argv[i];
    if (options_ended || !argument.starts_with('-') || argument == "-") {
      parsed.roots.emplace_back(argument);
      continue;
    }
    if (argument == "--") {
      options_ended = true;
      continue;
    }
    if (argument == "-h" || argument == "--help") {
      parsed.help = true;
      continue;
    }

    // The remaining options take a value, as "--option VALUE" or "--option=VALUE".
    std::string_view name = argument;
    std::optional<std::string_view> value;
    if (auto equals = argument.find('='); equals != std::string_view::npos) {
      name = argument.substr(0, equals);
      value = argument.substr(equals + 1);
    }
    if (std::ranges::find(options_with_value, name) == options_with_value.end()) {
      throw usage_error("unknown option '" + std::string(argument) + "'", true);
    }
    if (!value) {
      if (i + 1 == argc) throw usage_error("missing value for " + std::string(name), true);
      value = argv[++i];
    }
    if (name == "--workers") {
      parsed.workers = parse_count(name, *value, max_workers);
    } else if (name == "--top") {
      parsed.top = parse_count(name, *value, max_top);
    } else if (name == "--queue-capacity") {
      parsed.queue_capacity = parse_count(name, *value, max_capacity);
    } else if (name == "--result-capacity") {
      parsed.result_capacity = parse_count(name, *value, max_capacity);
    } else if (name == "--fail-rate") {
      parsed.fail_rate = parse_probability(name, *value);
    } else {
      parsed.seed = parse_integer(name, *value, 0, std::numeric_limits<std::uint64_t>::max());
    }
  }
  return parsed;
}

// Checks each folder named on the command line, or picks the default folders that exist.
// Throws usage_error naming the first folder that is missing or of the wrong type.
std::vector<fs::path> resolve_roots(const std::vector<fs::path>& requested) {
  std::vector<fs::path> roots;
  if (requested.empty()) {
    for (const char* folder : default_roots) {
      std::error_code error;
      if (fs::is_directory(folder, error)) {
        roots.emplace_back(folder);
      } else {
        std::fprintf(stderr, "word_count: note: default folder %s not found, skipping it\n",
                     folder);
      }
    }
    if (roots.empty()) {
      throw usage_error("none of the default folders exists. Name a folder to read", false);
    }
    return roots;
  }

  for (const fs::path& root : requested) {
    std::error_code error;
    fs::file_status status = fs::status(root, error);
    if (status.type() == fs::file_type::not_found) {
      throw usage_error("folder not found: " + root.string(), false);
    }
    if (error) throw usage_error("cannot access " + root.string() + ": " + error.message(), false);
    if (status.type() != fs::file_type::directory && status.type() != fs::file_type::regular) {
      throw usage_error(root.string() + " is neither a folder nor a regular file", false);
    }
    roots.push_back(root);
  }
  return roots;
}

// ---------------------------------------------------------------------------------------------
// Words and text detection

using word_counts = std::unordered_map<std::string, std::uint64_t>;

// Splits text into words and counts them, following the rule printed by --help. A word that
// spans two calls to add() is counted once, so a file can be fed in chunks.
class word_counter {
 public:
  void add(std::span<const unsigned char> text) {
    for (unsigned char byte : text) {
      const bool is_letter = (byte >= 'a' && byte <= 'z') || (byte >= 'A' && byte <= 'Z');
      if (is_letter) {
        if (apostrophe_pending_) word_ += '\'';
        apostrophe_pending_ = false;
        word_ += static_cast<char>(byte | 0x20);  // ASCII lowercase
      } else if (byte == '\'' && !word_.empty() && !apostrophe_pending_) {
        apostrophe_pending_ = true;  // kept only if a letter follows
      } else {
        end_word();
      }
    }
  }

  // Counts the word in progress and returns every count.
  word_counts finish() {
    end_word();
    return std::move(counts_);
  }

 private:
  void end_word() {
    if (!word_.empty()) ++counts_[word_];
    word_.clear();
    apostrophe_pending_ = false;
  }

  std::string word_;
  bool apostrophe_pending_ = false;
  word_counts counts_;
};

constexpr std::size_t binary_sample_size = 4096;

// Returns the number of bytes that are not part of a well-formed UTF-8 sequence (RFC 3629: no
// overlong forms, no surrogates, nothing above U+10FFFF). A sequence cut off by the end of
// `bytes` is not counted, because the sample may end in the middle of a character.
std::size_t count_invalid_utf8(std::span<const unsigned char> bytes) {
  std::size_t invalid = 0;
  std::size_t i = 0;
  while (i < bytes.size()) {
    const unsigned char lead = bytes[i];
    if (lead < 0x80) {
      ++i;
      continue;
    }

    // The lead byte fixes the length and the range of the second byte.
    std::size_t length = 0;
    unsigned char second_min = 0x80;
    unsigned char second_max = 0xBF;
    if (lead >= 0xC2 && lead <= 0xDF) {
      length = 2;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
      length = 3;
      if (lead == 0xE0) second_min = 0xA0;
      if (lead == 0xED) second_max = 0x9F;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
      length = 4;
      if (lead == 0xF0) second_min = 0x90;
      if (lead == 0xF4) second_max = 0x8F;
    }
    if (length == 0) {
      ++invalid;
      ++i;
      continue;
    }
    if (i + length > bytes.size()) break;

    bool valid = bytes[i + 1] >= second_min && bytes[i + 1] <= second_max;
    for (std::size_t k = 2; valid && k < length; ++k) valid = (bytes[i + k] & 0xC0) == 0x80;
    if (valid) {
      i += length;
    } else {
      ++invalid;
      ++i;
    }
  }
  return invalid;
}

// Returns why a file whose first bytes are `sample` is binary, or nothing if it looks like text.
std::optional<std::string> binary_reason(std::span<const unsigned char> sample) {
  if (sample.size() >= 2 && sample[0] == 0x1F && sample[1] == 0x8B) {
    return "binary file: gzip-compressed data, not decompressed";
  }
  if (auto nul = std::ranges::find(sample, 0); nul != sample.end()) {
    return "binary file: NUL byte at offset " + std::to_string(nul - sample.begin());
  }
  const std::size_t invalid = count_invalid_utf8(sample);
  if (invalid * 10 > sample.size()) {
    return "binary file: " + std::to_string(invalid) + " of the first " +
           std::to_string(sample.size()) + " bytes are not valid UTF-8";
  }
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------------
// Per-file work

// Kind of file a worker found. The first three end in an ack and a result on the results
// ring. A binary file is rejected and an unreadable one nacked, so both end as dead letters.
enum class file_outcome { counted, not_regular, symbolic_link, binary, unreadable };
constexpr std::size_t acked_outcome_count = 3;

constexpr std::array<const char*, acked_outcome_count> acked_outcome_names = {
    "counted", "not a regular file", "symbolic link"};

// Outcome of one file as a worker found it: its word counts, or the reason it was skipped.
struct file_result {
  ringmq::message_id id = 0;  // the work queue's id of the message that carried the path
  fs::path path;
  file_outcome outcome = file_outcome::counted;
  std::string reason;       // why the file was skipped; empty when counted
  std::uint64_t bytes = 0;  // bytes read from the file
  word_counts words;

  void skip(file_outcome kind, std::string explanation) {
    outcome = kind;
    reason = std::move(explanation);
    words.clear();
  }
};

std::string errno_message(const char* call) {
  return std::string(call) + " failed: " + std::strerror(errno);
}

const char* describe_file_type(mode_t mode) {
  if (S_ISDIR(mode)) return "directory";
  if (S_ISFIFO(mode)) return "FIFO";
  if (S_ISSOCK(mode)) return "socket";
  if (S_ISCHR(mode)) return "character device";
  if (S_ISBLK(mode)) return "block device";
  return "special file";
}

// Owns a file descriptor and closes it.
class file_descriptor {
 public:
  explicit file_descriptor(int fd) : fd_(fd) {}
  file_descriptor(const file_descriptor&) = delete;
  file_descriptor& operator=(const file_descriptor&) = delete;
  ~file_descriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

// Reads until `buffer` is full or the file ends. Returns the bytes read, or -1 with errno set.
ssize_t read_fully(int fd, std::span<unsigned char> buffer) {
  std::size_t filled = 0;
  while (filled < buffer.size()) {
    ssize_t n = ::read(fd, buffer.data() + filled, buffer.size() - filled);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -1;
    if (n == 0) break;
    filled += static_cast<std::size_t>(n);
  }
  return static_cast<ssize_t>(filled);
}

// Classifies result.path and, for a text file, counts its words. `buffer` is the worker's scratch
// space and must hold at least binary_sample_size bytes.
void count_file(file_result& result, std::span<unsigned char> buffer) {
  const char* path = result.path.c_str();

  // Only regular files are opened: opening a FIFO can block and opening a device can act on it.
  struct stat info {};
  if (::lstat(path, &info) != 0) {
    return result.skip(file_outcome::unreadable, errno_message("lstat"));
  }
  if (S_ISLNK(info.st_mode)) {
    struct stat target {};
    const bool dangling = ::stat(path, &target) != 0;
    return result.skip(file_outcome::symbolic_link,
                       dangling ? "dangling symbolic link" : "symbolic link, not followed");
  }
  if (!S_ISREG(info.st_mode)) {
    return result.skip(file_outcome::not_regular,
                       std::string("not a regular file: ") + describe_file_type(info.st_mode));
  }

  // O_NOFOLLOW and O_NONBLOCK keep the lstat verdict safe if the path is replaced meanwhile.
  file_descriptor file(::open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW | O_NONBLOCK));
  if (file.get() < 0) return result.skip(file_outcome::unreadable, errno_message("open"));
  if (::fstat(file.get(), &info) != 0) {
    return result.skip(file_outcome::unreadable, errno_message("fstat"));
  }
  if (!S_ISREG(info.st_mode)) {
    return result.skip(file_outcome::not_regular,
                       std::string("not a regular file: ") + describe_file_type(info.st_mode));
  }

  word_counter counter;
  bool first_chunk = true;
  while (true) {
    ssize_t n = read_fully(file.get(), buffer);
    if (n < 0) return result.skip(file_outcome::unreadable, errno_message("read"));
    if (n == 0) break;

    auto chunk = buffer.first(static_cast<std::size_t>(n));
    result.bytes += chunk.size();
    if (first_chunk) {
      auto sample = chunk.first(std::min(chunk.size(), binary_sample_size));
      if (auto reason = binary_reason(sample)) return result.skip(file_outcome::binary, *reason);
      first_chunk = false;
    }
    counter.add(chunk);
  }
  result.words = counter.finish();
}

// ---------------------------------------------------------------------------------------------
// Injected failures

// Decides which attempts --fail-rate fails. Each decision is a draw of SplitMix64, a
// counter-based generator, keyed by the seed, the file's name and the attempt number. A seed thus
// fails the same attempts of the same files however the worker threads interleave and wherever
// the folder is. Files with the same name in different folders fail alike.
class failure_injector {
 public:
  failure_injector(double rate, std::uint64_t seed)
      : rate_(rate), seed_(seed), detail_(describe(rate)) {}

  bool fails(const fs::path& path, std::uint32_t attempt) const {
    if (rate_ <= 0.0) return false;
    const std::uint64_t key =
        splitmix64(splitmix64(seed_ ^ fnv1a(path.filename().native())) ^ attempt);
    const double draw = static_cast<double>(key >> 11U) * 0x1.0p-53;  // uniform in [0, 1)
    return draw < rate_;
  }

  // The text a worker nacks an injected failure with.
  const std::string& detail() const { return detail_; }

 private:
  static std::string describe(double rate) {
    char text[64];
    std::snprintf(text, sizeof text, "injected failure (--fail-rate %g)", rate);
    return text;
  }

  static std::uint64_t fnv1a(std::string_view text) {
    std::uint64_t hash = 0xcbf29ce484222325ULL;
    for (char c : text) {
      hash ^= static_cast<unsigned char>(c);
      hash *= 0x100000001b3ULL;
    }
    return hash;
  }

  static std::uint64_t splitmix64(std::uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30U)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27U)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31U);
  }

  double rate_;
  std::uint64_t seed_;
  std::string detail_;
};

// ---------------------------------------------------------------------------------------------
// The work queue, the ring and their statistics

using path_queue =
    ringmq::work_queue<fs::path, ringmq::backoff<ringmq::exponential_jitter_backoff>>;
using path_delivery = path_queue::delivery_type;
using path_dead_letter = path_queue::dead_letter_type;
using result_ring = ringmq::ring<file_result, ringmq::producers<ringmq::multi>,
                                 ringmq::consumers<ringmq::single>>;

// Push statistics of a queue or ring, kept by the threads that push into it: the pushes, those
// that found it full, and its size sampled right after each push.
struct push_stats {
  std::uint64_t pushes = 0;
  std::uint64_t found_full = 0;  // pushes that found it full and waited
  std::uint64_t size_sum = 0;
  std::size_t size_max = 0;

  void record(std::size_t size) {
    ++pushes;
    size_sum += size;
    size_max = std::max(size_max, size);
  }

  void merge(const push_stats& other) {
    pushes += other.pushes;
    found_full += other.found_full;
    size_sum += other.size_sum;
    size_max = std::max(size_max, other.size_max);
  }
};

// Pushes `value`, waiting while the ring is full, and records the push in `stats`. Returns false
// if the ring is closed.
bool push_recorded(result_ring& ring, file_result&& value, push_stats& stats) {
  // try_push leaves `value` untouched when it fails, so the blocking push can still move it.
  if (!ring.try_push(std::move(value))) {
    if (!ring.push(std::move(value))) return false;
    ++stats.found_full;
  }
  stats.record(ring.size());
  return true;
}

// Sends `path`, waiting while the queue is full, and records the send in `stats`. Returns the
// message's id, or nothing if the queue is closed.
std::optional<ringmq::message_id> send_recorded(path_queue& queue, fs::path&& path,
                                                push_stats& stats) {
  // try_send leaves `path` untouched when it fails, so the blocking send can still move it.
  ringmq::send_result sent = queue.try_send(std::move(path));
  if (sent.status == ringmq::send_status::full) {
    ++stats.found_full;
    sent = queue.send(std::move(path));
  }
  if (!sent) return std::nullopt;
  stats.record(queue.size());  // messages held: visible, delayed and leased
  return sent.id;
}

// Creates the paths work queue, turning an exception from its constructor into a usage error.
std::unique_ptr<path_queue> make_queue(std::size_t capacity) {
  const ringmq::queue_config config{
      .capacity = capacity,
      .visibility_timeout = lease,
      .max_receive_count = max_receive_count,
      .dead_letter_capacity = dead_letter_capacity,
      .backoff = {.initial = backoff_initial, .max = backoff_max, .multiplier = 2.0},
  };
  try {
    return std::make_unique<path_queue>(config);
  } catch (const std::exception& error) {
    throw usage_error("cannot create a work queue for --queue-capacity " +
                          std::to_string(capacity) + ": " + error.what(),
                      false);
  }
}

// Creates the results ring, turning an exception from its constructor into a usage error.
std::unique_ptr<result_ring> make_ring(std::size_t capacity) {
  try {
    return std::make_unique<result_ring>(capacity);
  } catch (const std::exception& error) {
    throw usage_error("cannot create a ring for --result-capacity " + std::to_string(capacity) +
                          ": " + error.what(),
                      false);
  }
}

// ---------------------------------------------------------------------------------------------
// Pipeline stages

constexpr std::size_t examples_per_kind = 3;

struct walk_report {
  std::uint64_t files_sent = 0;   // every entry that is not a directory
  std::uint64_t directories = 0;  // directories opened, roots included
  std::uint64_t directory_errors = 0;
  std::vector<std::string> first_errors;
  std::vector<ringmq::message_id> sent_ids;
  push_stats paths;

  void add_error(const fs::path& path, const std::string& message) {
    ++directory_errors;
    if (first_errors.size() < examples_per_kind) {
      first_errors.push_back(path.string() + ": " + message);
    }
  }

  // Sends `path` as a message; returns false when the queue is closed.
  bool send(path_queue& queue, fs::path&& path) {
    const std::optional<ringmq::message_id> id = send_recorded(queue, std::move(path), paths);
    if (!id) return false;
    ++files_sent;
    sent_ids.push_back(*id);
    return true;
  }
};

// Sends every non-directory entry under `roots` to `queue`, then closes `queue`. Symbolic links
// are sent as entries, never followed, so a link cycle cannot trap the walk.
void walk(const std::vector<fs::path>& roots, path_queue& queue, walk_report& report) {
  for (const fs::path& root : roots) {
    std::error_code error;
    if (!fs::is_directory(root, error)) {
      // A file named on the command line is counted even when the name is a symbolic link.
      fs::path file = fs::is_symlink(root, error) ? fs::canonical(root, error) : root;
      report.send(queue, std::move(file));
      continue;
    }

    fs::recursive_directory_iterator entry(root, error);
    if (error) {
      report.add_error(root, error.message());
      continue;
    }
    ++report.directories;
    while (entry != fs::recursive_directory_iterator()) {
      fs::path path = entry->path();
      const fs::file_type type = entry->symlink_status(error).type();
      if (type == fs::file_type::directory) {
        // libstdc++ 12 ends the whole walk when it fails to open a subdirectory, so unreadable
        // ones are found first and skipped.
        if (::access(path.c_str(), R_OK | X_OK) == 0) {
          ++report.directories;
        } else {
          report.add_error(path, std::strerror(errno));
          entry.disable_recursion_pending();
        }
      } else {
        // Everything else, including an entry whose type could not be read, goes to a worker,
        // which reports what it is.
        if (!report.send(queue, std::move(path))) break;
      }

      entry.increment(error);
      if (error) {
        report.add_error(root, "walk stopped early: " + error.message());
        break;
      }
    }
  }
  queue.close();
}

// How long an idle worker waits in one receive_for before it looks again whether to stop.
constexpr auto receive_wait = 10ms;

// Receives the next message, or returns nothing once the queue is drained: closed, with no
// message visible, none waiting out a backoff delay and none leased to another worker, whose
// nack could bring it back.
std::optional<path_delivery> receive_next(path_queue& queue) {
  while (!queue.is_drained()) {
    if (std::optional<path_delivery> delivery = queue.receive_for(receive_wait)) return delivery;
  }
  return std::nullopt;
}

// Counts kept by one worker and merged by the main thread after the join.
struct worker_report {
  push_stats results;
  std::uint64_t injected_failures = 0;
  std::uint64_t late_settles = 0;  // ack, nack or reject that failed: the lease had ended
};

// Handles the messages it receives until the queue is closed and empty. The last worker to
// return closes the results ring.
void run_worker(path_queue& queue, const failure_injector& faults, result_ring& results,
                std::atomic<std::size_t>& running, worker_report& report) {
  std::vector<unsigned char> buffer(64 * 1024);
  while (std::optional<path_delivery> delivery = receive_next(queue)) {
    const ringmq::receipt receipt = delivery->receipt();
    if (faults.fails(delivery->body(), delivery->receive_count())) {
      ++report.injected_failures;
      if (!queue.nack(receipt, faults.detail())) ++report.late_settles;
      continue;
    }

    file_result result;
    result.id = delivery->id();
    result.path = std::move(delivery->body());
    try {
      count_file(result, buffer);
    } catch (const std::exception& error) {  // such as std::bad_alloc for a huge word map
      result.skip(file_outcome::unreadable, error.what());
    }

    bool settled = false;
    if (result.outcome == file_outcome::binary) {
      settled = queue.reject(receipt, result.reason);
    } else if (result.outcome == file_outcome::unreadable) {
      // If this was the last attempt, the reason becomes the dead letter's detail.
      settled = queue.nack(receipt, result.reason);
    } else {
      // Ack before pushing the result: a worker whose lease ended while it counted gets false
      // from ack and drops its result, so only the worker that received the message last
      // pushes one. The results ring closes only after the last worker's final push, so the
      // push succeeds. If it ever failed, the accounting check in main would report the file.
      settled = queue.ack(receipt);
      if (settled) push_recorded(results, std::move(result), report.results);
    }
    if (!settled) ++report.late_settles;
  }
  // acq_rel: the last worker must see that every other worker has finished its pushes.
  if (running.fetch_sub(1, std::memory_order_acq_rel) == 1) results.close();
}

// ---------------------------------------------------------------------------------------------
// Aggregation

constexpr std::size_t dead_letter_reason_count = 3;

// Everything the main thread learns from the results ring and the dead-letter queue.
struct totals {
  word_counts words;
  std::array<std::uint64_t, acked_outcome_count> files{};
  std::uint64_t bytes_counted = 0;
  std::array<std::vector<std::string>, acked_outcome_count> examples;
  std::array<std::uint64_t, dead_letter_reason_count> dead_letters{};
  std::array<std::vector<std::string>, dead_letter_reason_count> dead_letter_examples;
  std::vector<ringmq::message_id> finished_ids;  // one per result and one per dead letter

  std::uint64_t dead_letter_total() const {
    std::uint64_t total = 0;
    for (std::uint64_t count : dead_letters) total += count;
    return total;
  }
};

void add_result(totals& sum, const file_result& result) {
  const auto kind = static_cast<std::size_t>(result.outcome);
  ++sum.files[kind];
  sum.finished_ids.push_back(result.id);
  if (result.outcome == file_outcome::counted) {
    sum.bytes_counted += result.bytes;
    for (const auto& [word, count] : result.words) sum.words[word] += count;
  } else if (sum.examples[kind].size() < examples_per_kind) {
    sum.examples[kind].push_back(result.path.string() + ": " + result.reason);
  }
}

// Moves every dead letter out of the queue's dead-letter queue into `sum`. Draining while the
// pipeline runs keeps the dead-letter queue from filling up and dropping letters.
void drain_dead_letters(path_queue& queue, totals& sum) {
  while (std::optional<path_dead_letter> letter = queue.dead_letters().try_receive()) {
    const auto reason = static_cast<std::size_t>(letter->reason);
    ++sum.dead_letters[reason];
    sum.finished_ids.push_back(letter->id);
    if (sum.dead_letter_examples[reason].size() < examples_per_kind) {
      sum.dead_letter_examples[reason].push_back(letter->body.string() + ": " + letter->detail);
    }
  }
}

// Comparison of the message ids that came back with the ids the walker sent.
struct id_check {
  std::uint64_t lost = 0;        // sent, and neither a result nor a dead letter
  std::uint64_t duplicated = 0;  // extra results or dead letters for an id already seen
  std::uint64_t unknown = 0;     // came back but never sent

  bool ok() const { return lost == 0 && duplicated == 0 && unknown == 0; }
};

id_check check_ids(std::vector<ringmq::message_id> sent, std::vector<ringmq::message_id> finished) {
  std::sort(sent.begin(), sent.end());
  std::sort(finished.begin(), finished.end());
  id_check check;
  const auto repeats = std::unique(finished.begin(), finished.end());
  check.duplicated = static_cast<std::uint64_t>(finished.end() - repeats);
  finished.erase(repeats, finished.end());

  std::vector<ringmq::message_id> difference;
  std::set_difference(sent.begin(), sent.end(), finished.begin(), finished.end(),
                      std::back_inserter(difference));
  check.lost = difference.size();
  difference.clear();
  std::set_difference(finished.begin(), finished.end(), sent.begin(), sent.end(),
                      std::back_inserter(difference));
  check.unknown = difference.size();
  return check;
}

// ---------------------------------------------------------------------------------------------
// Report

// Formats 1234567 as "1,234,567".
std::string with_commas(std::uint64_t value) {
  std::string digits = std::to_string(value);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

double percent(double part, double whole) { return whole > 0 ? 100.0 * part / whole : 0.0; }

void print_top_words(const word_counts& words, std::size_t top) {
  std::vector<std::pair<std::string_view, std::uint64_t>> ranked(words.begin(), words.end());
  std::uint64_t total = 0;
  for (const auto& [word, count] : ranked) total += count;
  const std::size_t shown = std::min(top, ranked.size());
  std::partial_sort(ranked.begin(), ranked.begin() + static_cast<std::ptrdiff_t>(shown),
                    ranked.end(), [](const auto& a, const auto& b) {
                      return a.second != b.second ? a.second > b.second : a.first < b.first;
                    });

  std::printf("Top %zu of %s distinct words (%s words in total)\n", shown,
              with_commas(ranked.size()).c_str(), with_commas(total).c_str());
  int word_width = 4;
  for (std::size_t i = 0; i < shown; ++i) {
    word_width = std::max(word_width, static_cast<int>(ranked[i].first.size()));
  }
  word_width = std::min(word_width, 40);
  std::printf("  %4s  %-*s  %13s  %6s\n", "rank", word_width, "word", "count", "share");
  for (std::size_t i = 0; i < shown; ++i) {
    const auto& [word, count] = ranked[i];
    std::printf("  %4zu  %-*.*s  %13s  %5.2f%%\n", i + 1, word_width,
                static_cast<int>(word.size()), word.data(), with_commas(count).c_str(),
                percent(static_cast<double>(count), static_cast<double>(total)));
  }
}

void print_count_row(int indent, const char* name, std::uint64_t count) {
  std::printf("%*s%-*s %11s\n", indent, "", 28 - indent, name, with_commas(count).c_str());
}

// Prints what became of every file the walker sent. Returns whether each one came back exactly
// once, as a result or as a dead letter.
bool print_files(const walk_report& walked, const totals& sum, const id_check& ids) {
  std::uint64_t skipped = 0;
  for (std::size_t kind = 1; kind < acked_outcome_count; ++kind) skipped += sum.files[kind];
  const std::uint64_t counted = sum.files[0];
  const std::uint64_t dead = sum.dead_letter_total();
  const auto reason = [](ringmq::dead_letter_reason r) { return static_cast<std::size_t>(r); };

  std::printf("\nFiles\n");
  print_count_row(2, "seen", walked.files_sent);
  std::printf("  %-26s %11s  %s bytes\n", "counted", with_commas(counted).c_str(),
              with_commas(sum.bytes_counted).c_str());
  print_count_row(2, "skipped", skipped);
  for (std::size_t kind = 1; kind < acked_outcome_count; ++kind) {
    print_count_row(4, acked_outcome_names[kind], sum.files[kind]);
  }
  print_count_row(2, "dead letters", dead);
  print_count_row(4, "binary", sum.dead_letters[reason(ringmq::dead_letter_reason::rejected)]);
  const std::string failed = "failed " + std::to_string(max_receive_count) + " attempts";
  print_count_row(4, failed.c_str(),
                  sum.dead_letters[reason(ringmq::dead_letter_reason::max_receives)]);

  const bool accounted = ids.ok() && counted + skipped + dead == walked.files_sent;
  std::printf("  %-26s %11s  %s\n", "counted + skipped + dead",
              with_commas(counted + skipped + dead).c_str(),
              accounted ? "= seen, every file accounted for exactly once"
                        : "!= seen: FILES WERE LOST OR DUPLICATED");
  if (!ids.ok()) {
    std::printf("    message ids: %s lost, %s duplicated, %s never sent\n",
                with_commas(ids.lost).c_str(), with_commas(ids.duplicated).c_str(),
                with_commas(ids.unknown).c_str());
  }

  bool any_skipped = false;
  for (std::size_t kind = 1; kind < acked_outcome_count; ++kind) {
    any_skipped = any_skipped || !sum.examples[kind].empty();
  }
  if (any_skipped) {
    std::printf("\nSkipped files (first %zu of each kind)\n", examples_per_kind);
    for (std::size_t kind = 1; kind < acked_outcome_count; ++kind) {
      for (const std::string& example : sum.examples[kind]) std::printf("  %s\n", example.c_str());
    }
  }
  return accounted;
}

void print_dead_letters(const totals& sum) {
  if (sum.dead_letter_total() == 0) {
    std::printf("\nDead letters: none\n");
    return;
  }
  std::printf("\nDead letters by reason (first %zu of each)\n", examples_per_kind);
  for (std::size_t reason = 0; reason < dead_letter_reason_count; ++reason) {
    if (sum.dead_letters[reason] == 0) continue;
    const std::string_view name = to_string(static_cast<ringmq::dead_letter_reason>(reason));
    std::printf("  %-26.*s %11s\n", static_cast<int>(name.size()), name.data(),
                with_commas(sum.dead_letters[reason]).c_str());
    for (const std::string& example : sum.dead_letter_examples[reason]) {
      std::printf("    %s\n", example.c_str());
    }
  }
}

void print_occupancy_row(const char* name, std::size_t capacity, const push_stats& stats) {
  const double mean = stats.pushes ? static_cast<double>(stats.size_sum) /
                                         static_cast<double>(stats.pushes)
                                   : 0.0;
  const auto cap = static_cast<double>(capacity);
  std::printf("  %-15s  %8zu  %7zu %6.1f%%  %9.1f %6.1f%%  %11s  %11s %6.1f%%\n", name, capacity,
              stats.size_max, percent(static_cast<double>(stats.size_max), cap), mean,
              percent(mean, cap), with_commas(stats.pushes).c_str(),
              with_commas(stats.found_full).c_str(),
              percent(static_cast<double>(stats.found_full), static_cast<double>(stats.pushes)));
}

// Prints what the work queue did to deliver every message: its retries, lease expiries and dead
// letters, then its own counters.
void print_reliability(const ringmq::queue_stats& stats, const totals& sum,
                       const worker_report& workers) {
  std::printf("\nReliability\n");
  print_count_row(2, "messages sent", stats.sent);
  print_count_row(2, "acked", stats.acked);
  print_count_row(2, "nacks (failed attempts)", stats.nacked);
  print_count_row(4, "injected by --fail-rate", workers.injected_failures);
  print_count_row(2, "lease expiries", stats.expired_leases);
  print_count_row(2, "retries (redeliveries)", stats.redelivered);
  print_count_row(2, "settles after lease ended", workers.late_settles);
  print_count_row(2, "dead letters", stats.dead_lettered);
  for (std::size_t reason = 0; reason < dead_letter_reason_count; ++reason) {
    const std::string name(to_string(static_cast<ringmq::dead_letter_reason>(reason)));
    print_count_row(4, name.c_str(), sum.dead_letters[reason]);
  }
  if (stats.dropped != 0) print_count_row(4, "dropped, queue was full", stats.dropped);

  std::printf("\nWork queue stats at exit (dead letters drained by the main thread)\n");
  std::printf("  held      visible %zu, in flight %zu, delayed %zu, dead letters %zu\n",
              stats.visible, stats.in_flight, stats.delayed, stats.dead_letters);
  std::printf(
      "  counters  sent %s, received %s, redelivered %s, acked %s, nacked %s,\n"
      "            released %s, expired leases %s, rejected %s, dead-lettered %s, dropped %s,\n"
      "            redriven %s\n",
      with_commas(stats.sent).c_str(), with_commas(stats.received).c_str(),
      with_commas(stats.redelivered).c_str(), with_commas(stats.acked).c_str(),
      with_commas(stats.nacked).c_str(), with_commas(stats.released).c_str(),
      with_commas(stats.expired_leases).c_str(), with_commas(stats.rejected).c_str(),
      with_commas(stats.dead_lettered).c_str(), with_commas(stats.dropped).c_str(),
      with_commas(stats.redriven).c_str());
}

}  // namespace

int main(int argc, char** argv) {
  options config;
  std::vector<fs::path> roots;
  std::unique_ptr<path_queue> queue;
  std::unique_ptr<result_ring> results;
  try {
    config = parse_options(argc, argv);
    if (config.help) {
      print_usage(stdout);
      return 0;
    }
    roots = resolve_roots(config.roots);
    queue = make_queue(config.queue_capacity);
    results = make_ring(config.result_capacity);
  } catch (const usage_error& error) {
    std::fprintf(stderr, "word_count: %s\n", error.what());
    if (error.show_usage) {
      std::fputc('\n', stderr);
      print_usage(stderr);
    } else {
      std::fprintf(stderr, "Run 'word_count --help' for usage.\n");
    }
    return 2;
  }
  const failure_injector faults(config.fail_rate, config.seed);

  std::printf("word_count: %zu worker%s, work queue capacity %zu, results ring capacity %zu\n",
              config.workers, config.workers == 1 ? "" : "s", queue->capacity(),
              results->capacity());
  std::printf("  retries: backoff %lld ms to %lld ms with jitter, max_receive_count %u\n",
              static_cast<long long>(backoff_initial.count()),
              static_cast<long long>(backoff_max.count()), max_receive_count);
  if (config.fail_rate > 0) {
    std::printf("  injected failures: --fail-rate %g --seed %llu\n", config.fail_rate,
                static_cast<unsigned long long>(config.seed));
  }
  for (const fs::path& root : roots) std::printf("  reading %s\n", root.c_str());
  std::printf("\n");

  // Start the pipeline: the walker, then the workers. The main thread is the aggregator.
  const auto start = std::chrono::steady_clock::now();
  walk_report walked;
  std::thread walker(walk, std::cref(roots), std::ref(*queue), std::ref(walked));
  std::atomic<std::size_t> running_workers{config.workers};
  std::vector<worker_report> worker_reports(config.workers);
  std::vector<std::thread> workers;
  for (worker_report& report : worker_reports) {
    workers.emplace_back(run_worker, std::ref(*queue), std::cref(faults), std::ref(*results),
                         std::ref(running_workers), std::ref(report));
  }

  // Merge results until the last worker closes the ring, draining dead letters between pops.
  totals sum;
  for (;;) {
    drain_dead_letters(*queue, sum);
    if (std::optional<file_result> result = results->pop_for(10ms)) {
      add_result(sum, *result);
    } else if (results->is_closed() && results->empty()) {
      break;
    }
  }
  walker.join();
  for (std::thread& worker : workers) worker.join();
  drain_dead_letters(*queue, sum);  // the workers' last dead letters
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const ringmq::queue_stats queue_stats = queue->stats();
  worker_report all_workers;
  for (const worker_report& report : worker_reports) {
    all_workers.results.merge(report.results);
    all_workers.injected_failures += report.injected_failures;
    all_workers.late_settles += report.late_settles;
  }

  print_top_words(sum.words, config.top);
  const id_check ids = check_ids(walked.sent_ids, sum.finished_ids);
  const bool accounted = print_files(walked, sum, ids);
  print_dead_letters(sum);

  std::printf("\nDirectories\n");
  print_count_row(2, "walked", walked.directories);
  print_count_row(2, "not read", walked.directory_errors);
  for (const std::string& error : walked.first_errors) std::printf("    %s\n", error.c_str());

  std::printf("\nThroughput\n");
  std::printf("  %-26s %11.3f s\n", "elapsed", seconds);
  const double files_per_second =
      seconds > 0 ? static_cast<double>(walked.files_sent) / seconds : 0.0;
  std::printf("  %-26s %11s\n", "files seen per second",
              with_commas(static_cast<std::uint64_t>(files_per_second + 0.5)).c_str());
  std::printf("  %-26s %11.2f\n", "MB/s of text counted",
              seconds > 0 ? static_cast<double>(sum.bytes_counted) / 1e6 / seconds : 0.0);

  std::printf("\nQueue and ring (size sampled after each send or push)\n");
  std::printf("  %-15s  %8s  %15s  %17s  %11s  %19s\n", "name", "capacity", "max size", "mean size",
              "pushes", "found full");
  print_occupancy_row("paths (queue)", queue->capacity(), walked.paths);
  print_occupancy_row("results (MPSC)", results->capacity(), all_workers.results);

  print_reliability(queue_stats, sum, all_workers);

  if (!accounted) {
    std::fprintf(stderr,
                 "word_count: %s files seen but %s results and dead letters came back "
                 "(%s lost, %s duplicated, %s never sent)\n",
                 with_commas(walked.files_sent).c_str(),
                 with_commas(sum.finished_ids.size()).c_str(), with_commas(ids.lost).c_str(),
                 with_commas(ids.duplicated).c_str(), with_commas(ids.unknown).c_str());
    return 1;
  }
  return 0;
}
