"""Conan 2 recipe for twistedpic. See docs/packaging.md.

LibTorch (the CUDA 13 build) and the CUDA Toolkit are not Conan packages here:
CMake finds them as in the project's own build (CMAKE_PREFIX_PATH or Torch_DIR;
nvcc on PATH). packaging/conan/profile supplies them, and declares this
machine's spdlog, tl-expected, nlohmann_json, libpng, sentencepiece and utf8proc
as [platform_requires].

    packaging/conan/create.sh     # conan create . -pr:a packaging/conan/profile
"""
import os
import re

from conan import ConanFile
from conan.errors import ConanInvalidConfiguration
from conan.tools.build import check_min_cppstd
from conan.tools.cmake import CMake, CMakeDeps, CMakeToolchain, cmake_layout
from conan.tools.files import copy, load


class TwistedpicConan(ConanFile):
    name = "twistedpic"
    description = "Embeddable GPU image generation that shares the GPU politely (C++20 on LibTorch, with a C ABI)"
    license = "Apache-2.0"
    topics = ("image-generation", "diffusion", "libtorch", "cuda", "gpu-memory")
    # Static C++ libraries (twistedpic::twistedpic) plus the shared C ABI
    # library libtwistedpic.so (twistedpic::twistedpic_c); the library types are fixed.
    package_type = "static-library"
    settings = "os", "arch", "compiler", "build_type"
    exports_sources = ("LICENSE", "CMakeLists.txt", "cmake/*", "include/*", "src/*", "capi/*", "examples/configs/*", "models/*")

    def set_version(self):
        cmakelists = load(self, os.path.join(self.recipe_folder, "CMakeLists.txt"))
        self.version = re.search(r"project\(twistedpic\s+VERSION\s+([0-9.]+)", cmakelists).group(1)

    def layout(self):
        cmake_layout(self, build_folder="build-conan")  # not build/, which `make` uses

    def requirements(self):
        self.requires("tl-expected/[>=1.0 <2]", transitive_headers=True)  # in the public headers
        self.requires("spdlog/[>=1.10 <2]")
        self.requires("nlohmann_json/[>=3.10 <4]")
        self.requires("libpng/[>=1.6 <2]")  # PNG files (src/image/png.cpp); find_package(PNG)
        # The tokenizers (src/text); found with pkg-config (pkg_check_modules).
        self.requires("sentencepiece/[>=0.1.97 <1]")
        self.requires("utf8proc/[>=2.6 <3]")
        # xxhash.h, header-only (XXH_INLINE_ALL): the weights' content digests (src/weights/weights_digest.cpp).
        self.requires("xxhash/[>=0.8 <1]", visible=False)
        # The command line (src/cli), header-only and not part of the library.
        self.requires("cli11/[>=2.1 <3]", visible=False)
        # `twistedpic serve` (src/server), linked into the command line only; found with pkg-config.
        self.requires("cpp-httplib/[>=0.11 <1]", visible=False)

    def validate(self):
        check_min_cppstd(self, 20)
        if self.settings.os != "Linux":
            raise ConanInvalidConfiguration("twistedpic is built and tested on Linux only")

    def generate(self):
        tc = CMakeToolchain(self)
        tc.cache_variables["TP_INSTALL"] = True
        tc.cache_variables["TP_BUILD_TESTS"] = False
        tc.cache_variables["TP_BUILD_EXAMPLES"] = False
        tc.cache_variables["TP_BUILD_BENCHMARKS"] = False
        # The toolchain sets CMAKE_CXX_STANDARD 20, which CUDA inherits when
        # torch's CMake enables it; CMake < 3.25.2 has no CUDA20 for nvcc.
        tc.variables["CMAKE_CUDA_STANDARD"] = "17"
        tc.generate()
        CMakeDeps(self).generate()

    def build(self):
        cmake = CMake(self)
        cmake.configure()
        cmake.build()

    def package(self):
        CMake(self).install()
        copy(self, "LICENSE", self.source_folder, os.path.join(self.package_folder, "licenses"))

    def package_info(self):
        # CMake consumers get the package's own twistedpicConfig.cmake (the
        # exported targets, find_dependency for Torch and CUDAToolkit) rather
        # than a generated one, which could not describe LibTorch.
        self.cpp_info.set_property("cmake_find_mode", "none")
        self.cpp_info.builddirs = [os.path.join("lib", "cmake", "twistedpic")]
        # Other generators (pkg-config, ...): the C ABI.
        self.cpp_info.set_property("pkg_config_name", "twistedpic")
        self.cpp_info.libs = ["twistedpic"]
