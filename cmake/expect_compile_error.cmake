# Compiles SOURCE and passes only when the compiler rejects it with output matching the regular
# expression on the source's first line, written as `// expect: <regex>`.
#
#   cmake -D COMPILER=<c++> -D FLAGS=<list> -D INCLUDE_DIR=<dir> -D SOURCE=<file.cpp> \
#         -P expect_compile_error.cmake

cmake_minimum_required(VERSION 3.21)

foreach(variable IN ITEMS COMPILER INCLUDE_DIR SOURCE)
  if(NOT DEFINED ${variable})
    message(FATAL_ERROR "${variable} is not set. Pass it with -D ${variable}=<value>.")
  endif()
endforeach()

file(STRINGS "${SOURCE}" first_line LIMIT_COUNT 1)
if(NOT first_line MATCHES "^// expect: (.+)$")
  message(FATAL_ERROR
    "${SOURCE}: the first line must be `// expect: <regex>`, naming the expected compiler "
    "message, but it is `${first_line}`.")
endif()
set(expected "${CMAKE_MATCH_1}")

execute_process(
  COMMAND "${COMPILER}" ${FLAGS} "-I${INCLUDE_DIR}" "${SOURCE}"
  RESULT_VARIABLE result
  OUTPUT_VARIABLE output
  ERROR_VARIABLE output)

if(result EQUAL 0)
  message(FATAL_ERROR "${SOURCE} compiled, but it must fail with a message matching `${expected}`.")
endif()
if(NOT output MATCHES "${expected}")
  message(FATAL_ERROR
    "${SOURCE} failed to compile, but no message matches `${expected}`. Compiler output:\n"
    "${output}")
endif()
message(STATUS "${SOURCE} failed to compile as expected, with a message matching `${expected}`.")
