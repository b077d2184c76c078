# Finds the CUDA Toolkit 13 and LibTorch.
#
# LibTorch comes from CMAKE_PREFIX_PATH (the Makefile passes the venv's
# torch.utils.cmake_prefix_path) or from a user's own Torch_DIR.

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

find_package(Torch REQUIRED)

# Set after Torch: its CMake warns when it finds CMAKE_CUDA_ARCHITECTURES already set.
if(NOT CMAKE_CUDA_ARCHITECTURES)
  set(CMAKE_CUDA_ARCHITECTURES ${TP_CUDA_ARCHITECTURES})
endif()
message(STATUS "twistedpic: Torch ${Torch_VERSION} from ${Torch_DIR}")
