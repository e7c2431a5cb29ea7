# Runs COMMAND and passes only when it exits with EXIT_CODE and its combined standard output and
# standard error match every regular expression in the list OUTPUT_REGEX.
#
#   cmake -D "COMMAND=<program>;<args>" -D EXIT_CODE=<n> [-D "OUTPUT_REGEX=<regex>;..."] \
#         -P expect_exit_code.cmake

cmake_minimum_required(VERSION 3.21)

foreach(variable IN ITEMS COMMAND EXIT_CODE)
  if(NOT DEFINED ${variable})
    message(FATAL_ERROR "${variable} is not set. Pass it with -D ${variable}=<value>.")
  endif()
endforeach()

execute_process(
  COMMAND ${COMMAND}
  RESULT_VARIABLE result
  OUTPUT_VARIABLE output
  ERROR_VARIABLE output)

list(JOIN COMMAND " " command_line)
if(NOT result STREQUAL "${EXIT_CODE}")
  message(FATAL_ERROR
    "`${command_line}` exited with ${result}, expected ${EXIT_CODE}. Output:\n${output}")
endif()
foreach(regex IN LISTS OUTPUT_REGEX)
  if(NOT output MATCHES "${regex}")
    message(FATAL_ERROR
      "`${command_line}` exited with ${EXIT_CODE} as expected, but its output does not match "
      "`${regex}`. Output:\n${output}")
  endif()
endforeach()
message(STATUS "`${command_line}` exited with ${EXIT_CODE} and printed the expected output.")
