# The Python wheel (pyproject.toml at the root, built by scikit-build-core):
# libtwistedpic.so and the default model inside the package folder, next to the
# ctypes binding (bindings/python/twistedpic), which loads the library from
# there. The library finds LibTorch and the CUDA runtime in the wheels
# installed beside it in site-packages (torch/lib, nvidia/cu13/lib), as torch's
# own libraries find theirs; spdlog, fmt, libpng, sentencepiece and utf8proc
# come from the system, as for any build from source.
#
# One file, no SONAME symlinks (a wheel stores links as copies), linked with its
# final run path because it is copied rather than installed as a target.

set_target_properties(twistedpic_c PROPERTIES
  BUILD_WITH_INSTALL_RPATH ON
  INSTALL_RPATH "$ORIGIN/../torch/lib;$ORIGIN/../nvidia/cu13/lib")
install(FILES $<TARGET_FILE:twistedpic_c> DESTINATION twistedpic RENAME libtwistedpic.so COMPONENT python)
install(DIRECTORY models/tiny-sd3 DESTINATION twistedpic/models COMPONENT python)
