# package.public_headers: installs the build's Development component into a
# scratch prefix and compares the headers it installed with the agreed list.
#
#   cmake -DBUILD_DIR=<build> -DPREFIX=<scratch> -DINCLUDEDIR=include -DLIST=public_headers.txt
#         -DWITH_TORCH=ON|OFF -P check_public_headers.cmake
#
# Every file under <prefix>/<INCLUDEDIR>, and every header-like file elsewhere
# in the prefix, must be on the list; every listed header must be installed.
# Lines of LIST: a path relative to the include folder; "#" starts a comment;
# a trailing "[torch]" marks a header installed only when WITH_TORCH is ON.
cmake_minimum_required(VERSION 3.25)

foreach(var BUILD_DIR PREFIX INCLUDEDIR LIST WITH_TORCH)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "check_public_headers.cmake: -D${var}=... is required")
  endif()
endforeach()

file(REMOVE_RECURSE "${PREFIX}")
execute_process(
  COMMAND "${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix "${PREFIX}" --component Development
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "cmake --install ${BUILD_DIR} failed (is the build complete?):\n${out}")
endif()

# Expected.
file(STRINGS "${LIST}" lines)
set(expected)
foreach(line IN LISTS lines)
  string(REGEX REPLACE "#.*$" "" line "${line}")
  string(STRIP "${line}" line)
  if(line STREQUAL "")
    continue()
  endif()
  if(line MATCHES "^(.*[^ ]) +\\[torch\\]$")
    if(NOT WITH_TORCH)
      continue()
    endif()
    set(line "${CMAKE_MATCH_1}")
  endif()
  list(APPEND expected "${line}")
endforeach()
list(SORT expected)

# Installed: everything under the include folder (headers of any extension),
# plus header-like files anywhere else in the prefix, by prefix-relative path.
set(include_root "${PREFIX}/${INCLUDEDIR}")
set(installed)
if(IS_DIRECTORY "${include_root}")
  file(GLOB_RECURSE installed LIST_DIRECTORIES false RELATIVE "${include_root}" "${include_root}/*")
endif()
file(GLOB_RECURSE elsewhere LIST_DIRECTORIES false RELATIVE "${PREFIX}"
     "${PREFIX}/*.h" "${PREFIX}/*.hh" "${PREFIX}/*.hpp" "${PREFIX}/*.hxx" "${PREFIX}/*.inc" "${PREFIX}/*.cuh")
foreach(f IN LISTS elsewhere)
  if(NOT f MATCHES "^${INCLUDEDIR}/")
    list(APPEND installed "${f}")
  endif()
endforeach()
list(SORT installed)

set(unexpected ${installed})
list(REMOVE_ITEM unexpected ${expected})
set(missing ${expected})
list(REMOVE_ITEM missing ${installed})

list(LENGTH installed n)
if(unexpected OR missing)
  set(msg "the installed headers differ from ${LIST}:")
  foreach(f IN LISTS unexpected)
    string(APPEND msg "\n  installed but not agreed: ${f}")
  endforeach()
  foreach(f IN LISTS missing)
    string(APPEND msg "\n  agreed but not installed: ${f}")
  endforeach()
  string(APPEND msg "\nA private header belongs under src/; a new public one is added to the list on purpose.")
  message(FATAL_ERROR "${msg}")
endif()
message(STATUS "public headers: ${n} installed, all on the agreed list")
