# Overlay port, built from the twistedpic checkout that contains it:
#   vcpkg install twistedpic --overlay-ports=<repo>/ports
# For a registry, replace SOURCE_PATH with vcpkg_from_github(... REF "v${VERSION}").
# Untested end to end (vcpkg cannot be bootstrapped on the development machines):
# see docs/packaging.md.
get_filename_component(SOURCE_PATH "${CMAKE_CURRENT_LIST_DIR}/../.." ABSOLUTE)

# The library types are fixed whatever the triplet: the C++ API is static
# libraries, the C ABI is always the shared libtwistedpic.so.
set(VCPKG_POLICY_DLLS_IN_STATIC_LIBRARY enabled)

vcpkg_cmake_configure(
  SOURCE_PATH "${SOURCE_PATH}"
  OPTIONS
    -DTP_INSTALL=ON
    -DTP_BUILD_TESTS=OFF
    -DTP_BUILD_EXAMPLES=OFF
    -DTP_BUILD_BENCHMARKS=OFF)
vcpkg_cmake_install()
vcpkg_cmake_config_fixup(CONFIG_PATH lib/cmake/twistedpic)
vcpkg_fixup_pkgconfig()

file(REMOVE_RECURSE "${CURRENT_PACKAGES_DIR}/debug/include" "${CURRENT_PACKAGES_DIR}/debug/share")
file(INSTALL "${CMAKE_CURRENT_LIST_DIR}/usage" DESTINATION "${CURRENT_PACKAGES_DIR}/share/${PORT}")
vcpkg_install_copyright(FILE_LIST "${SOURCE_PATH}/LICENSE")
