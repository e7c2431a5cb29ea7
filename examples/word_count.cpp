// word_count: counts the words in every text file under the given folders with a pipeline of
// two ringmq rings.
//
//   walker thread --paths ring (SPMC)--> N worker threads --results ring (MPSC)--> main thread
//
// The walker lists files and closes the paths ring when it has pushed the last one. Each worker
// pops a path, reads the file, counts its words and pushes a per-file result. The last worker to
// finish closes the results ring. The main thread merges the results until pop() returns an
// empty optional, then prints the most frequent words, the files read and skipped, the
// throughput and how full each ring ran.
#include <ringmq/ring.hpp>

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

namespace {

// ---------------------------------------------------------------------------------------------
// Command line

constexpr std::size_t default_top = 20;
constexpr std::size_t default_path_capacity = 256;
constexpr std::size_t default_result_capacity = 64;
constexpr std::size_t max_workers = 1024;
constexpr std::size_t max_top = 1'000'000;
constexpr std::size_t max_capacity = std::size_t{1} << 20;
constexpr std::array<const char*, 2> default_roots = {"/usr/share/common-licenses",
                                                      "/usr/share/doc"};

struct options {
  std::vector<fs::path> roots;
  std::size_t workers = 1;
  std::size_t top = default_top;
  std::size_t path_capacity = default_path_capacity;
  std::size_t result_capacity = default_result_capacity;
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
               "  --path-capacity N    capacity of the ring of file paths, in paths,\n"
               "                       1 to %zu (default %zu)\n"
               "  --result-capacity N  capacity of the ring of per-file results, in results,\n"
               "                       1 to %zu (default %zu)\n"
               "  -h, --help           print this help and exit\n"
               "Options also take the form --option=VALUE. '--' ends the options.\n"
               "\n"
               "Words: a word is a run of ASCII letters, lowercased. An apostrophe between two\n"
               "letters stays in the word (don't, o'clock). Every other byte ends a word:\n"
               "digits, '_', punctuation and non-ASCII bytes, so accented words split in two.\n"
               "\n"
               "Files: symbolic links are never followed, and each one found is reported as\n"
               "skipped. FIFOs, sockets and devices are skipped without being opened. A file\n"
               "is binary, and skipped, when its first 4 KiB contain a NUL byte or more than\n"
               "10%% of bytes outside valid UTF-8. Gzip files count as binary and are not\n"
               "decompressed. Files that cannot be opened or read are reported as unreadable.\n"
               "Directories that cannot be opened are reported and not descended into.\n"
               "\n"
               "Exit status: 0 on success, 1 when the results do not account for every file\n"
               "the walker found, 2 on a usage error or a missing folder.\n",
               max_workers, default_worker_count(), max_top, default_top, max_capacity,
               default_path_capacity, max_capacity, default_result_capacity);
}

// Parses the value of `option` as an integer from 1 to `max`.
std::size_t parse_count(std::string_view option, std::string_view text, std::size_t max) {
  std::size_t value = 0;
  const char* end = text.data() + text.size();
  auto [stop, error] = std::from_chars(text.data(), end, value);
  if (text.empty() || error != std::errc{} || stop != end || value == 0 || value > max) {
    throw usage_error("invalid value '" + std::string(text) + "' for " + std::string(option) +
                          ": expected an integer from 1 to " + std::to_string(max),
                      false);
  }
  return value;
}

options parse_options(int argc, char** argv) {
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
    std::size_t* target = nullptr;
    std::size_t max = 0;
    if (name == "--workers") {
      target = &parsed.workers;
      max = max_workers;
    } else if (name == "--top") {
      target = &parsed.top;
      max = max_top;
    } else if (name == "--path-capacity") {
      target = &parsed.path_capacity;
      max = max_capacity;
    } else if (name == "--result-capacity") {
      target = &parsed.result_capacity;
      max = max_capacity;
    } else {
      throw usage_error("unknown option '" + std::string(argument) + "'", true);
    }
    if (!value) {
      if (i + 1 == argc) throw usage_error("missing value for " + std::string(name), true);
      value = argv[++i];
    }
    *target = parse_count(name, *value, max);
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
    return "binary: gzip-compressed data, not decompressed";
  }
  if (auto nul = std::ranges::find(sample, 0); nul != sample.end()) {
    return "binary: NUL byte at offset " + std::to_string(nul - sample.begin());
  }
  const std::size_t invalid = count_invalid_utf8(sample);
  if (invalid * 10 > sample.size()) {
    return "binary: " + std::to_string(invalid) + " of the first " +
           std::to_string(sample.size()) + " bytes are not valid UTF-8";
  }
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------------
// Per-file work

enum class file_outcome { counted, binary, unreadable, not_regular, symbolic_link };
constexpr std::size_t outcome_count = 5;

constexpr std::array<const char*, outcome_count> outcome_names = {
    "counted", "binary", "unreadable", "not a regular file", "symbolic link"};

// Outcome of one file as a worker found it: its word counts, or the reason it was skipped.
struct file_result {
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
// Rings and their statistics

using path_ring = ringmq::ring<fs::path, ringmq::producers<ringmq::single>,
                               ringmq::consumers<ringmq::multi>>;
using result_ring = ringmq::ring<file_result, ringmq::producers<ringmq::multi>,
                                 ringmq::consumers<ringmq::single>>;

// Push statistics of one ring, kept by the threads that push into it: the pushes, those that
// found the ring full, and the ring's size sampled right after each push.
struct push_stats {
  std::uint64_t pushes = 0;
  std::uint64_t found_full = 0;  // pushes that found the ring full and waited
  std::uint64_t size_sum = 0;
  std::size_t size_max = 0;

  void merge(const push_stats& other) {
    pushes += other.pushes;
    found_full += other.found_full;
    size_sum += other.size_sum;
    size_max = std::max(size_max, other.size_max);
  }
};

// Pushes `value`, waiting while the ring is full, and records the push in `stats`. Returns false
// if the ring is closed.
template <class Ring>
bool push_recorded(Ring& ring, typename Ring::value_type&& value, push_stats& stats) {
  // try_push leaves `value` untouched when it fails, so the blocking push can still move it.
  if (!ring.try_push(std::move(value))) {
    if (!ring.push(std::move(value))) return false;
    ++stats.found_full;
  }
  const std::size_t size = ring.size();
  ++stats.pushes;
  stats.size_sum += size;
  stats.size_max = std::max(stats.size_max, size);
  return true;
}

// Creates a ring, turning an exception from its constructor into a usage error naming `option`.
template <class Ring>
std::unique_ptr<Ring> make_ring(const char* option, std::size_t capacity) {
  try {
    return std::make_unique<Ring>(capacity);
  } catch (const std::exception& error) {
    throw usage_error(std::string("cannot create a ring for ") + option + " " +
                          std::to_string(capacity) + ": " + error.what(),
                      false);
  }
}

// ---------------------------------------------------------------------------------------------
// Pipeline stages

constexpr std::size_t examples_per_kind = 3;

struct walk_report {
  std::uint64_t files_pushed = 0;  // every entry that is not a directory
  std::uint64_t directories = 0;  // directories opened, roots included
  std::uint64_t directory_errors = 0;
  std::vector<std::string> first_errors;
  push_stats paths;

  void add_error(const fs::path& path, const std::string& message) {
    ++directory_errors;
    if (first_errors.size() < examples_per_kind) {
      first_errors.push_back(path.string() + ": " + message);
    }
  }
};

// Pushes every non-directory entry under `roots` into `paths`, then closes `paths`. Symbolic
// links are pushed as entries, never followed, so a link cycle cannot trap the walk.
void walk(const std::vector<fs::path>& roots, path_ring& paths, walk_report& report) {
  for (const fs::path& root : roots) {
    std::error_code error;
    if (!fs::is_directory(root, error)) {
      // A file named on the command line is counted even when the name is a symbolic link.
      fs::path file = fs::is_symlink(root, error) ? fs::canonical(root, error) : root;
      if (push_recorded(paths, std::move(file), report.paths)) ++report.files_pushed;
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
        if (!push_recorded(paths, std::move(path), report.paths)) break;
        ++report.files_pushed;
      }

      entry.increment(error);
      if (error) {
        report.add_error(root, "walk stopped early: " + error.message());
        break;
      }
    }
  }
  paths.close();
}

// Counts the files whose paths it pops until the paths ring is closed and drained. The last
// worker to return closes the results ring.
void run_worker(path_ring& paths, result_ring& results, std::atomic<std::size_t>& running,
                push_stats& stats) {
  std::vector<unsigned char> buffer(64 * 1024);
  while (auto path = paths.pop()) {
    file_result result;
    result.path = std::move(*path);
    try {
      count_file(result, buffer);
    } catch (const std::exception& error) {  // such as std::bad_alloc for a huge word map
      result.skip(file_outcome::unreadable, error.what());
    }
    // The results ring closes only after the last worker's final push, so this push succeeds.
    // If it ever failed, the accounting check in main would report the lost result.
    push_recorded(results, std::move(result), stats);
  }
  // acq_rel: the last worker must see that every other worker has finished its pushes.
  if (running.fetch_sub(1, std::memory_order_acq_rel) == 1) results.close();
}

// Everything the main thread learns from the results ring.
struct totals {
  word_counts words;
  std::array<std::uint64_t, outcome_count> files{};
  std::uint64_t bytes_counted = 0;
  std::array<std::vector<std::string>, outcome_count> examples;
};

void add_result(totals& sum, const file_result& result) {
  const auto kind = static_cast<std::size_t>(result.outcome);
  ++sum.files[kind];
  if (result.outcome == file_outcome::counted) {
    sum.bytes_counted += result.bytes;
    for (const auto& [word, count] : result.words) sum.words[word] += count;
  } else if (sum.examples[kind].size() < examples_per_kind) {
    sum.examples[kind].push_back(result.path.string() + ": " + result.reason);
  }
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

void print_ring_row(const char* name, std::size_t capacity, const push_stats& stats) {
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

}  // namespace

int main(int argc, char** argv) {
  options config;
  std::vector<fs::path> roots;
  std::unique_ptr<path_ring> paths;
  std::unique_ptr<result_ring> results;
  try {
    config = parse_options(argc, argv);
    if (config.help) {
      print_usage(stdout);
      return 0;
    }
    roots = resolve_roots(config.roots);
    paths = make_ring<path_ring>("--path-capacity", config.path_capacity);
    results = make_ring<result_ring>("--result-capacity", config.result_capacity);
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

  std::printf("word_count: %zu worker%s, paths ring capacity %zu, results ring capacity %zu\n",
              config.workers, config.workers == 1 ? "" : "s", paths->capacity(),
              results->capacity());
  for (const fs::path& root : roots) std::printf("  reading %s\n", root.c_str());
  std::printf("\n");

  // Start the pipeline: the walker, then the workers. The main thread is the aggregator.
  const auto start = std::chrono::steady_clock::now();
  walk_report walked;
  std::thread walker(walk, std::cref(roots), std::ref(*paths), std::ref(walked));
  std::atomic<std::size_t> running_workers{config.workers};
  std::vector<push_stats> worker_stats(config.workers);
  std::vector<std::thread> workers;
  for (push_stats& stats : worker_stats) {
    workers.emplace_back(run_worker, std::ref(*paths), std::ref(*results),
                         std::ref(running_workers), std::ref(stats));
  }

  totals sum;
  while (auto result = results->pop()) add_result(sum, *result);
  walker.join();
  for (std::thread& worker : workers) worker.join();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  push_stats result_stats;
  for (const push_stats& stats : worker_stats) result_stats.merge(stats);

  print_top_words(sum.words, config.top);

  // Files: every path the walker pushed must come back as exactly one result.
  std::uint64_t skipped = 0;
  for (std::size_t kind = 1; kind < outcome_count; ++kind) skipped += sum.files[kind];
  const std::uint64_t counted = sum.files[0];
  const bool accounted = counted + skipped == walked.files_pushed;
  std::printf("\nFiles\n");
  std::printf("  %-26s %11s\n", "seen", with_commas(walked.files_pushed).c_str());
  std::printf("  %-26s %11s  %s bytes\n", "counted", with_commas(counted).c_str(),
              with_commas(sum.bytes_counted).c_str());
  std::printf("  %-26s %11s\n", "skipped", with_commas(skipped).c_str());
  for (std::size_t kind = 1; kind < outcome_count; ++kind) {
    std::printf("    %-24s %11s\n", outcome_names[kind], with_commas(sum.files[kind]).c_str());
  }
  std::printf("  %-26s %11s  %s\n", "counted + skipped",
              with_commas(counted + skipped).c_str(),
              accounted ? "= seen, every file accounted for" : "!= seen: FILES WERE LOST");

  bool any_skipped = false;
  for (std::size_t kind = 1; kind < outcome_count; ++kind) {
    any_skipped = any_skipped || !sum.examples[kind].empty();
  }
  if (any_skipped) {
    std::printf("\nSkipped files (first %zu of each kind)\n", examples_per_kind);
    for (std::size_t kind = 1; kind < outcome_count; ++kind) {
      for (const std::string& example : sum.examples[kind]) std::printf("  %s\n", example.c_str());
    }
  }

  std::printf("\nDirectories\n");
  std::printf("  %-26s %11s\n", "walked", with_commas(walked.directories).c_str());
  std::printf("  %-26s %11s\n", "not read", with_commas(walked.directory_errors).c_str());
  for (const std::string& error : walked.first_errors) std::printf("    %s\n", error.c_str());

  std::printf("\nThroughput\n");
  std::printf("  %-26s %11.3f s\n", "elapsed", seconds);
  const double files_per_second =
      seconds > 0 ? static_cast<double>(walked.files_pushed) / seconds : 0.0;
  std::printf("  %-26s %11s\n", "files seen per second",
              with_commas(static_cast<std::uint64_t>(files_per_second + 0.5)).c_str());
  std::printf("  %-26s %11.2f\n", "MB/s of text counted",
              seconds > 0 ? static_cast<double>(sum.bytes_counted) / 1e6 / seconds : 0.0);

  std::printf("\nRings (size sampled after each push)\n");
  std::printf("  %-15s  %8s  %15s  %17s  %11s  %19s\n", "ring", "capacity", "max size",
              "mean size", "pushes", "found full");
  print_ring_row("paths (SPMC)", paths->capacity(), walked.paths);
  print_ring_row("results (MPSC)", results->capacity(), result_stats);

  if (!accounted) {
    std::fprintf(stderr, "word_count: %s files seen but %s results received\n",
                 with_commas(walked.files_pushed).c_str(), with_commas(counted + skipped).c_str());
    return 1;
  }
  return 0;
}
