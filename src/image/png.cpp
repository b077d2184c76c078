// PNG files through libpng's simplified API (png_image_*).
//
// The simplified API does its own setjmp/longjmp inside libpng and reports
// failures as a return value plus png_image::message, so no longjmp ever
// crosses a C++ frame of ours. Reading decodes from memory (the file is read
// with detail::ReadOnlyFile, which refuses FIFOs and folders without
// blocking); writing goes to stdio on a temporary file that is renamed into
// place once it is complete and on disk.
#include "twistedpic/image.h"

#include <fcntl.h>
#include <png.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <new>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include "util/file.h"

namespace tp {
inline namespace v0 {
namespace {

namespace fs = std::filesystem;

// Larger files are refused before being read (a PNG of kMaxReadPixels RGBA
// pixels at 16 bits, stored uncompressed, is 2 GiB).
constexpr uint64_t kMaxPngFileBytes = uint64_t{4} << 30;

// Frees what libpng allocated for `image`, on every path out.
class PngImageGuard {
 public:
  explicit PngImageGuard(png_image& image) : image_(image) {}
  ~PngImageGuard() { png_image_free(&image_); }
  PngImageGuard(const PngImageGuard&) = delete;
  PngImageGuard& operator=(const PngImageGuard&) = delete;

 private:
  png_image& image_;
};

png_image new_png_image() {
  png_image image;
  std::memset(&image, 0, sizeof image);
  image.version = PNG_IMAGE_VERSION;
  image.opaque = nullptr;
  return image;
}

std::string size_text(int64_t width, int64_t height) { return std::to_string(width) + "x" + std::to_string(height); }

// libpng's message for a failed read, mapped to a code: running out of input
// is a truncated file (kDataLoss); anything else is a corrupt file.
Error read_failure(const fs::path& path, const png_image& image) {
  const std::string message = image.message[0] ? image.message : "unknown libpng error";
  if (message.find("read beyond end of data") != std::string::npos)
    return {ErrorCode::kDataLoss, path.string() + ": the PNG ends early (truncated file?): " + message};
  if (message.find("ut of memory") != std::string::npos || message.find("nsufficient memory") != std::string::npos)
    return {ErrorCode::kResourceExhausted, path.string() + ": out of memory decoding the PNG: " + message};
  return {ErrorCode::kInvalidArgument, path.string() + ": not a valid PNG: " + message};
}

Expected<Image> read_png_impl(const fs::path& path) {
  TP_ASSIGN_OR_RETURN(detail::ReadOnlyFile file, detail::ReadOnlyFile::open(path));
  if (file.size() == 0) return data_loss(path.string() + ": empty file, not a PNG");
  if (file.size() > kMaxPngFileBytes)
    return invalid_argument(path.string() + ": file is " + std::to_string(file.size()) + " bytes, over the limit of " +
                            std::to_string(kMaxPngFileBytes) + " for a PNG");
  std::vector<uint8_t> bytes(file.size());
  TP_TRY(file.read_at(0, bytes.size(), reinterpret_cast<char*>(bytes.data())));

  const size_t sig = std::min<size_t>(bytes.size(), 8);
  if (png_sig_cmp(bytes.data(), 0, sig) != 0)
    return invalid_argument(path.string() + ": not a PNG file (no PNG signature)");
  if (bytes.size() <= 8) return data_loss(path.string() + ": the PNG ends after " + std::to_string(bytes.size()) +
                                          " bytes (truncated file?)");

  png_image png = new_png_image();
  PngImageGuard guard(png);
  if (!png_image_begin_read_from_memory(&png, bytes.data(), bytes.size()))
    return tl::unexpected(read_failure(path, png));
  if (png.width > static_cast<png_uint_32>(kMaxImageSide) || png.height > static_cast<png_uint_32>(kMaxImageSide) ||
      uint64_t{png.width} * png.height > kMaxReadPixels)
    return invalid_argument(path.string() + ": the PNG is " + size_text(png.width, png.height) +
                            ", over the limits of " + std::to_string(kMaxImageSide) + " per side and " +
                            std::to_string(kMaxReadPixels) + " pixels");

  // With alpha, decode RGBA (8-bit sRGB formats are not premultiplied) and
  // drop A afterwards: asking libpng for RGB would composite onto a background.
  const bool alpha = (png.format & PNG_FORMAT_FLAG_ALPHA) != 0;
  png.format = alpha ? PNG_FORMAT_RGBA : PNG_FORMAT_RGB;
  png.flags |= PNG_IMAGE_FLAG_16BIT_sRGB;  // 16-bit data without gamma information: sRGB, as most tools write it
  const uint64_t channels = alpha ? 4 : 3;
  const uint64_t pixels = uint64_t{png.width} * png.height;
  std::vector<uint8_t> buffer(pixels * channels);
  const auto stride = static_cast<png_int_32>(png.width * channels);
  if (!png_image_finish_read(&png, /*background=*/nullptr, buffer.data(), stride, /*colormap=*/nullptr))
    return tl::unexpected(read_failure(path, png));
  if (alpha) {
    for (uint64_t i = 0; i < pixels; ++i) std::memmove(&buffer[i * 3], &buffer[i * 4], 3);
    buffer.resize(pixels * 3);
    buffer.shrink_to_fit();
  }
  Image image;
  image.width = static_cast<int>(png.width);
  image.height = static_cast<int>(png.height);
  image.rgb = std::move(buffer);
  return image;
}

Status check_image(const Image& image, const fs::path& path) {
  const std::string what = path.string() + ": cannot write a " + size_text(image.width, image.height) + " image";
  if (image.width <= 0 || image.height <= 0) return invalid_argument(what + ": width and height must be positive");
  if (image.width > kMaxImageSide || image.height > kMaxImageSide)
    return invalid_argument(what + ": width and height must be at most " + std::to_string(kMaxImageSide));
  const uint64_t expected = uint64_t(image.width) * uint64_t(image.height) * 3;
  if (image.rgb.size() != expected)
    return invalid_argument(what + ": rgb holds " + std::to_string(image.rgb.size()) + " bytes, expected " +
                            std::to_string(expected) + " (width * height * 3)");
  return ok_status();
}

// Creates a new, empty file next to `path` (same folder, so that the rename
// stays on one file system) and returns its descriptor and name.
Expected<std::pair<int, fs::path>> create_temp_next_to(const fs::path& path) {
  static std::atomic<uint64_t> counter{0};
  const fs::path folder = path.parent_path().empty() ? fs::path(".") : path.parent_path();
  int err = 0;
  for (int attempt = 0; attempt < 100; ++attempt) {
    const fs::path temp = folder / ("." + path.filename().string() + ".tmp-" + std::to_string(::getpid()) + "-" +
                                    std::to_string(counter.fetch_add(1)));
    int fd;
    do {
      fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    } while (fd < 0 && errno == EINTR);
    if (fd >= 0) return std::make_pair(fd, temp);
    err = errno;
    if (err != EEXIST) break;
  }
  return tl::unexpected(detail::file_error(err, path, "create a temporary file in " + folder.string() + " to write"));
}

// Writes the PNG stream of `image` to `out`, flushes it and syncs it to disk.
// Returns the failure, if any; `out` stays open.
Status write_stream(const Image& image, const fs::path& path, std::FILE* out) {
  png_image png = new_png_image();
  PngImageGuard guard(png);
  png.width = static_cast<png_uint_32>(image.width);
  png.height = static_cast<png_uint_32>(image.height);
  png.format = PNG_FORMAT_RGB;
  errno = 0;
  const int ok = png_image_write_to_stdio(&png, out, /*convert_to_8_bit=*/0, image.rgb.data(),
                                          static_cast<png_int_32>(image.width * 3), /*colormap=*/nullptr);
  const int write_errno = errno;
  if (!ok) {
    if (std::ferror(out) && write_errno != 0) return tl::unexpected(detail::file_error(write_errno, path, "write"));
    return internal_error(path.string() + ": libpng cannot write the PNG: " +
                          (png.message[0] ? std::string(png.message) : std::string("unknown libpng error")));
  }
  if (std::fflush(out) != 0) return tl::unexpected(detail::file_error(errno, path, "write"));
  if (::fsync(::fileno(out)) != 0) return tl::unexpected(detail::file_error(errno, path, "sync"));
  return ok_status();
}

Status write_png_impl(const Image& image, const fs::path& path) {
  TP_TRY(check_image(image, path));
  std::error_code ec;
  if (fs::is_directory(path, ec)) return invalid_argument(path.string() + ": is a folder; cannot write a PNG over it");
  TP_ASSIGN_OR_RETURN(auto created, create_temp_next_to(path));
  auto [fd, temp] = std::move(created);
  std::FILE* out = ::fdopen(fd, "wb");
  if (!out) {
    const int err = errno;
    ::close(fd);
    ::unlink(temp.c_str());
    return tl::unexpected(detail::file_error(err, path, "write"));
  }
  Status written = write_stream(image, path, out);
  if (std::fclose(out) != 0 && written) written = tl::unexpected(detail::file_error(errno, path, "close"));
  if (written && ::rename(temp.c_str(), path.c_str()) != 0)
    written = tl::unexpected(detail::file_error(errno, path, "rename the temporary file " + temp.string() + " onto it"));
  if (!written) ::unlink(temp.c_str());
  return written;
}

}  // namespace

Status write_png(const Image& image, const fs::path& path) {
  try {
    return write_png_impl(image, path);
  } catch (const std::bad_alloc&) {
    return resource_exhausted(path.string() + ": out of memory writing the PNG");
  } catch (const std::exception& e) {
    return internal_error(path.string() + ": cannot write the PNG: " + e.what());
  }
}

Expected<std::vector<uint8_t>> encode_png(const Image& image) {
  try {
    TP_TRY(check_image(image, "<memory>"));
    png_image png = new_png_image();
    PngImageGuard guard(png);
    png.width = static_cast<png_uint_32>(image.width);
    png.height = static_cast<png_uint_32>(image.height);
    png.format = PNG_FORMAT_RGB;
    const auto stride = static_cast<png_int_32>(image.width * 3);
    png_alloc_size_t size = 0;  // first call: the size the PNG needs
    if (!png_image_write_to_memory(&png, nullptr, &size, /*convert_to_8_bit=*/0, image.rgb.data(), stride, nullptr))
      return internal_error(std::string("libpng cannot encode the PNG: ") + png.message);
    std::vector<uint8_t> out(size);
    if (!png_image_write_to_memory(&png, out.data(), &size, 0, image.rgb.data(), stride, nullptr))
      return internal_error(std::string("libpng cannot encode the PNG: ") + png.message);
    out.resize(size);
    return out;
  } catch (const std::bad_alloc&) {
    return resource_exhausted("out of memory encoding a PNG");
  }
}

Expected<Image> read_png(const fs::path& path) {
  try {
    return read_png_impl(path);
  } catch (const std::bad_alloc&) {
    return resource_exhausted(path.string() + ": out of memory reading the PNG");
  } catch (const std::exception& e) {
    return internal_error(path.string() + ": cannot read the PNG: " + e.what());
  }
}

}  // namespace v0
}  // namespace tp
