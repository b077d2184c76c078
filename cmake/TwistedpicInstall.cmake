# Install rules: the libraries, the headers, the CMake package
# (find_package(twistedpic)), twistedpic.pc and the example configs.
# Included only when TP_INSTALL is ON (default: top level), so a project that
# uses add_subdirectory() gets no install rules of ours.

include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(TP_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/twistedpic"
    CACHE STRING "Where twistedpicConfig.cmake is installed, relative to the prefix")

set(_tp_targets twistedpic_log twistedpic_util twistedpic_core twistedpic_text twistedpic_pipeline_spec)
if(TP_WITH_TORCH)
  list(APPEND _tp_targets twistedpic_cuda twistedpic_torch twistedpic_pipeline twistedpic twistedpic_c)
  # libtwistedpic.so needs LibTorch and the CUDA runtime from where it was
  # built (the venv's wheel, /usr/local/cuda), as the build tree's copy does.
  set_target_properties(twistedpic_c PROPERTIES
    INSTALL_RPATH "${TORCH_INSTALL_PREFIX}/lib;${CUDAToolkit_LIBRARY_DIR}")
endif()
# Same name as the in-tree alias twistedpic::core.
set_target_properties(twistedpic_core PROPERTIES EXPORT_NAME core)
set_target_properties(twistedpic_util PROPERTIES EXPORT_NAME util)
set_target_properties(twistedpic_text PROPERTIES EXPORT_NAME text)  # twistedpic::text

install(TARGETS ${_tp_targets}
  EXPORT twistedpicTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT Development
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT Runtime NAMELINK_COMPONENT Development
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT Runtime)

install(DIRECTORY include/twistedpic DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
  COMPONENT Development FILES_MATCHING PATTERN "*.h")
install(FILES ${PROJECT_BINARY_DIR}/generated/include/twistedpic/version.h
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/twistedpic COMPONENT Development)
if(TP_WITH_TORCH)
  install(FILES capi/include/twistedpic/tp.h
    DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/twistedpic COMPONENT Development)
endif()

install(EXPORT twistedpicTargets
  NAMESPACE twistedpic::
  DESTINATION ${TP_INSTALL_CMAKEDIR}
  COMPONENT Development)
configure_package_config_file(cmake/twistedpicConfig.cmake.in
  ${PROJECT_BINARY_DIR}/package/twistedpicConfig.cmake
  INSTALL_DESTINATION ${TP_INSTALL_CMAKEDIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/package/twistedpicConfigVersion.cmake
  VERSION ${PROJECT_VERSION}
  COMPATIBILITY SameMajorVersion)
install(FILES
  ${PROJECT_BINARY_DIR}/package/twistedpicConfig.cmake
  ${PROJECT_BINARY_DIR}/package/twistedpicConfigVersion.cmake
  DESTINATION ${TP_INSTALL_CMAKEDIR} COMPONENT Development)

# twistedpic.pc for the C ABI (C hosts, cgo, the Rust build script).
if(TP_WITH_TORCH)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}" OR IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
    set(TP_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
    set(TP_PC_LIBDIR "${CMAKE_INSTALL_FULL_LIBDIR}")
    set(TP_PC_INCLUDEDIR "${CMAKE_INSTALL_FULL_INCLUDEDIR}")
  else()
    # Relocatable: the prefix is found from the .pc file's own directory.
    file(RELATIVE_PATH _tp_up "/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/")
    string(REGEX REPLACE "/$" "" _tp_up "${_tp_up}")
    set(TP_PC_PREFIX "\${pcfiledir}/${_tp_up}")
    set(TP_PC_LIBDIR "\${prefix}/${CMAKE_INSTALL_LIBDIR}")
    set(TP_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
  endif()
  configure_file(cmake/twistedpic.pc.in ${PROJECT_BINARY_DIR}/package/twistedpic.pc @ONLY)
  install(FILES ${PROJECT_BINARY_DIR}/package/twistedpic.pc
    DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig COMPONENT Development)
endif()

# Data: the example registry configs.
install(DIRECTORY examples/configs/ DESTINATION ${CMAKE_INSTALL_DATADIR}/twistedpic
  COMPONENT Runtime FILES_MATCHING PATTERN "*.json")
# The command line, and its default model.
if(TARGET twistedpic_cli)
  install(TARGETS twistedpic_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT Runtime)
  install(DIRECTORY models/tiny-sd3 DESTINATION ${CMAKE_INSTALL_DATADIR}/twistedpic/models COMPONENT Runtime)
endif()
