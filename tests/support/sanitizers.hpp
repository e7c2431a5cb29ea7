// Detects the sanitizers a test binary is built with, so that long tests can scale down.
#pragma once

namespace ringmq_test {

// True under ThreadSanitizer, which makes threaded code many times slower, so stress tests
// run fewer items there. GCC defines __SANITIZE_THREAD__, and Clang reports the feature
// through __has_feature instead.
#if defined(__SANITIZE_THREAD__)
inline constexpr bool thread_sanitizer = true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
inline constexpr bool thread_sanitizer = true;
#else
inline constexpr bool thread_sanitizer = false;
#endif
#else
inline constexpr bool thread_sanitizer = false;
#endif

}  // namespace ringmq_test
