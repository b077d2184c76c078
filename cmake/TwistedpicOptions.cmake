# Compiler settings applied to the project's own targets only, never to
# dependencies: warnings as errors, and the optional sanitizers.

if(TP_SANITIZE)
  set(TP_SANITIZE_FLAGS -fsanitize=${TP_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
endif()

function(tp_project_target target)
  target_include_directories(${target} PRIVATE ${PROJECT_SOURCE_DIR}/src)
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:C,CXX>:-Wall -Wextra -Werror>
    $<$<COMPILE_LANG_AND_ID:CXX,Clang>:-Wthread-safety>  # src/util/thread_annotations.h
    $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wextra,-Werror --Werror all-warnings>)
  if(TP_SANITIZE)
    # GCC 12 reports false -Wfree-nonheap-object errors in instrumented, inlined
    # destructors (seen in tl::expected holding at::Tensor maps).
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:C,CXX>:${TP_SANITIZE_FLAGS}>
                                             $<$<COMPILE_LANG_AND_ID:CXX,GNU>:-Wno-free-nonheap-object>)
    target_link_options(${target} PUBLIC ${TP_SANITIZE_FLAGS})
  endif()
endfunction()

# ccache, keyed on paths relative to the source tree (base_dir) and not on the
# build folder (hash_dir off), so that every build folder directly inside the
# source tree (build, build-asan, the pip build's build-pip, ...) shares hits.
find_program(TP_CCACHE ccache)
if(TP_CCACHE)
  foreach(lang C CXX CUDA)
    if(NOT CMAKE_${lang}_COMPILER_LAUNCHER)
      set(CMAKE_${lang}_COMPILER_LAUNCHER ${CMAKE_COMMAND} -E env CCACHE_BASEDIR=${CMAKE_SOURCE_DIR}
                                          CCACHE_NOHASHDIR=1 ${TP_CCACHE})
    endif()
  endforeach()
endif()
