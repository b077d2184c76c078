# Finds the CUDA Toolkit 13 and LibTorch.
#
# LibTorch comes from CMAKE_PREFIX_PATH (the Makefile passes the venv's
# torch.utils.cmake_prefix_path) or from a user's own Torch_DIR. A pip build
# (scikit-build-core sets SKBUILD) finds it in the torch wheel installed beside
# it, as torch extension packages do: the build backend runs in an isolated
# environment, so the target interpreter is asked without that environment's
# PYTHONPATH. The path is resolved (symlinks followed) so that two venvs sharing
# one torch compile with the same flags and share ccache hits.

find_package(CUDAToolkit 13 REQUIRED)

# CUDA 13 dropped libnvToolsExt; torch's CMake still asks for it. nvtx3 is
# header-only and provides the same API.
if(NOT TARGET CUDA::nvToolsExt AND TARGET CUDA::nvtx3)
  add_library(CUDA::nvToolsExt INTERFACE IMPORTED)
  target_link_libraries(CUDA::nvToolsExt INTERFACE CUDA::nvtx3)
endif()

# Build for Hopper (the H200) and nothing else unless asked.
set(TORCH_CUDA_ARCH_LIST "9.0" CACHE STRING "CUDA architectures torch's CMake targets")
set(TP_CUDA_ARCHITECTURES "90" CACHE STRING "CUDA architectures for twistedpic's kernels")

if(SKBUILD AND NOT Torch_DIR)
  execute_process(
    COMMAND ${CMAKE_COMMAND} -E env --unset=PYTHONPATH --unset=PYTHONNOUSERSITE
            ${Python_EXECUTABLE} -c "import torch.utils; print(torch.utils.cmake_prefix_path, end='')"
    OUTPUT_VARIABLE _tp_torch_prefix ERROR_VARIABLE _tp_torch_error RESULT_VARIABLE _tp_torch_rc)
  if(NOT _tp_torch_rc EQUAL 0)
    message(FATAL_ERROR "twistedpic: the Python package needs the torch wheel installed in the environment it "
                        "installs into (pip install torch==2.11.*); ${Python_EXECUTABLE} cannot import torch:\n"
                        "${_tp_torch_error}")
  endif()
  file(REAL_PATH "${_tp_torch_prefix}" _tp_torch_prefix)
  list(PREPEND CMAKE_PREFIX_PATH "${_tp_torch_prefix}")
endif()
find_package(Torch REQUIRED)

# Set after Torch: its CMake warns when it finds CMAKE_CUDA_ARCHITECTURES already set.
if(NOT CMAKE_CUDA_ARCHITECTURES)
  set(CMAKE_CUDA_ARCHITECTURES ${TP_CUDA_ARCHITECTURES})
endif()
message(STATUS "twistedpic: Torch ${Torch_VERSION} from ${Torch_DIR}")
