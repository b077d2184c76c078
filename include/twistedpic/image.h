// twistedpic: images in memory and as PNG files.
//
// An Image is 8-bit RGB, row-major, without padding: pixel (x, y) starts at
// rgb[(y * width + x) * 3]. The PNG functions go through libpng's simplified
// API (Debian's libpng 1.6).
//
//   tp::Image image{512, 512, std::vector<uint8_t>(512 * 512 * 3)};
//   TP_TRY(tp::write_png(image, "out.png"));
//   TP_ASSIGN_OR_RETURN(tp::Image back, tp::read_png("out.png"));
//
// Threading: Image is a plain value type. write_png and read_png keep no
// state; they may run on any threads at once (on distinct output paths).
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

#include "twistedpic/export.h"
#include "twistedpic/expected.h"

namespace tp {
inline namespace v0 {

struct Image {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> rgb;  // RGB8, row-major, width * height * 3 bytes
};

// The largest width or height write_png and read_png accept.
inline constexpr int kMaxImageSide = 65535;
// The most pixels read_png decodes (16384 x 16384): a few bytes of PNG can
// declare a huge image, and decoding allocates width * height * 4 bytes.
inline constexpr uint64_t kMaxReadPixels = uint64_t{1} << 28;

// Writes `image` as an 8-bit RGB PNG (sRGB). The file appears whole or not at
// all: the PNG goes to a temporary file in the same folder, which is flushed
// to disk and then renamed over `path`.
// Errors: kInvalidArgument for an impossible image (width or height not in
// 1..kMaxImageSide, rgb.size() != width * height * 3); for a failed system
// call, the code of its errno (ENOENT: kNotFound, EACCES: kFailedPrecondition,
// else kUnavailable), naming `path`; kInternal when libpng fails.
[[nodiscard]] TP_EXPORT Status write_png(const Image& image, const std::filesystem::path& path);

// The PNG bytes of `image` (8-bit RGB), for a server's response or a caller's
// buffer. Errors: kInvalidArgument for an impossible image (as write_png);
// kResourceExhausted when memory runs out; kInternal when libpng fails.
[[nodiscard]] TP_EXPORT Expected<std::vector<uint8_t>> encode_png(const Image& image);

// Reads any PNG as RGB8: gray becomes RGB, a palette is expanded, 16-bit
// channels are scaled to 8 bits (16-bit data without gAMA/sRGB is taken as
// sRGB-encoded), and an alpha channel is dropped (the stored colors are kept,
// as PIL's convert("RGB") does); other gamma is converted to sRGB.
// Errors: kNotFound for a missing file; kInvalidArgument for a path that is
// not a regular file, for a corrupt PNG and for an image over kMaxImageSide
// or kMaxReadPixels; kDataLoss for a file that ends early (truncated); each
// names `path`.
[[nodiscard]] TP_EXPORT Expected<Image> read_png(const std::filesystem::path& path);

}  // namespace v0
}  // namespace tp
