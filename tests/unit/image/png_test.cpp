// tp::write_png and tp::read_png: round trips at odd sizes, every PNG colour
// type and bit depth read as RGB8, refusals (bad sizes, missing, corrupt and
// truncated files) with their codes and the path in the message, and the
// atomic replacement of the output file. The malformed-file corpus
// (tests/data/bad/png) is checked by tests/unit/reliability/bad_inputs_test.cpp.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "twistedpic/image.h"

namespace tp {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class ScratchDir {
 public:
  ScratchDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = fs::temp_directory_path() /
            ("tp-png-" + std::to_string(::getpid()) + "-" + info->test_suite_name() + "-" + info->name());
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  fs::path operator/(const std::string& name) const { return path_ / name; }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

Image pattern(int width, int height, uint32_t seed = 1) {
  Image image;
  image.width = width;
  image.height = height;
  image.rgb.resize(static_cast<size_t>(width) * height * 3);
  uint32_t x = seed * 2654435761u + 12345;
  for (auto& b : image.rgb) {
    x = x * 1664525u + 1013904223u;
    b = static_cast<uint8_t>(x >> 24);
  }
  return image;
}

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << p;
}

// Names in `dir` other than `keep`: leftovers such as temporary files.
std::vector<std::string> others(const fs::path& dir, const std::string& keep) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename() != keep) out.push_back(e.path().filename().string());
  return out;
}

// ---- round trips -------------------------------------------------------------------

TEST(PngTest, RoundTripKeepsEveryByte) {
  ScratchDir dir;
  const Image image = pattern(64, 48);
  ASSERT_TRUE(write_png(image, dir / "out.png"));
  const std::string bytes = read_bytes(dir / "out.png");
  ASSERT_GE(bytes.size(), 8u);
  EXPECT_EQ(bytes.substr(1, 3), "PNG");
  auto back = read_png(dir / "out.png");
  ASSERT_TRUE(back) << back.error().to_string();
  EXPECT_EQ(back->width, 64);
  EXPECT_EQ(back->height, 48);
  EXPECT_EQ(back->rgb, image.rgb);
  EXPECT_TRUE(others(dir.path(), "out.png").empty());  // no temporary file left
}

class PngSizeTest : public ::testing::TestWithParam<std::pair<int, int>> {};

TEST_P(PngSizeTest, RoundTripsAtOddSizes) {
  ScratchDir dir;
  const auto [w, h] = GetParam();
  const Image image = pattern(w, h, static_cast<uint32_t>(w * 31 + h));
  ASSERT_TRUE(write_png(image, dir / "odd.png"));
  auto back = read_png(dir / "odd.png");
  ASSERT_TRUE(back) << back.error().to_string();
  EXPECT_EQ(back->width, w);
  EXPECT_EQ(back->height, h);
  EXPECT_EQ(back->rgb, image.rgb);
}

INSTANTIATE_TEST_SUITE_P(Sizes, PngSizeTest,
                         ::testing::Values(std::pair{1, 1}, std::pair{1, 7}, std::pair{7, 1}, std::pair{3, 5},
                                           std::pair{13, 17}, std::pair{257, 3}, std::pair{511, 129},
                                           std::pair{65535, 1}, std::pair{1, 2000}),
                         [](const auto& info) {
                           return std::to_string(info.param.first) + "x" + std::to_string(info.param.second);
                         });

TEST(PngTest, RelativePathInTheCurrentFolder) {
  ScratchDir dir;
  const fs::path cwd = fs::current_path();
  fs::current_path(dir.path());
  Status st = write_png(pattern(5, 3), "plain.png");
  auto back = read_png("plain.png");
  fs::current_path(cwd);
  ASSERT_TRUE(st) << st.error().to_string();
  ASSERT_TRUE(back) << back.error().to_string();
  EXPECT_EQ(back->rgb, pattern(5, 3).rgb);
}

// ---- writing: refusals and atomic replacement -----------------------------------------

struct BadSize {
  const char* name;
  int width, height;
  long long bytes;  // rgb.size(); -1: width * height * 3
  const char* message;
};

class PngBadSizeTest : public ::testing::TestWithParam<BadSize> {};

TEST_P(PngBadSizeTest, RefusedAsInvalidArgumentNamingThePath) {
  ScratchDir dir;
  const BadSize& c = GetParam();
  Image image;
  image.width = c.width;
  image.height = c.height;
  image.rgb.resize(c.bytes >= 0 ? static_cast<size_t>(c.bytes) : static_cast<size_t>(c.width) * c.height * 3);
  const fs::path out = dir / "bad.png";
  Status st = write_png(image, out);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kInvalidArgument) << st.error().message;
  EXPECT_THAT(st.error().message, HasSubstr(out.string()));
  EXPECT_THAT(st.error().message, HasSubstr(c.message));
  EXPECT_TRUE(others(dir.path(), "").empty());  // nothing written
}

INSTANTIATE_TEST_SUITE_P(
    Sizes, PngBadSizeTest,
    ::testing::Values(BadSize{"zero_width", 0, 5, 0, "width and height must be positive"},
                      BadSize{"zero_height", 5, 0, 0, "width and height must be positive"},
                      BadSize{"negative_width", -3, 2, 18, "width and height must be positive"},
                      BadSize{"negative_both", -3, -2, 18, "width and height must be positive"},
                      BadSize{"width_over_65535", 65536, 1, -1, "at most 65535"},
                      BadSize{"height_over_65535", 1, 65536, -1, "at most 65535"},
                      BadSize{"int_max", 2147483647, 1, 3, "at most 65535"},
                      BadSize{"rgb_too_small", 4, 4, 47, "rgb holds 47 bytes, expected 48"},
                      BadSize{"rgb_too_large", 4, 4, 49, "rgb holds 49 bytes, expected 48"},
                      BadSize{"rgb_empty", 2, 2, 0, "rgb holds 0 bytes, expected 12"},
                      BadSize{"rgba_sized", 4, 4, 64, "expected 48"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(PngTest, MissingFolderIsNotFoundNamingThePath) {
  ScratchDir dir;
  const fs::path out = dir / "no/such/folder/out.png";
  Status st = write_png(pattern(2, 2), out);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kNotFound) << st.error().message;
  EXPECT_THAT(st.error().message, HasSubstr(out.string()));
}

TEST(PngTest, WritingOverAFolderIsRefused) {
  ScratchDir dir;
  fs::create_directories(dir / "taken.png");
  Status st = write_png(pattern(2, 2), dir / "taken.png");
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, ErrorCode::kInvalidArgument) << st.error().message;
  EXPECT_THAT(st.error().message, HasSubstr((dir / "taken.png").string()));
  EXPECT_TRUE(fs::is_directory(dir / "taken.png"));
  EXPECT_EQ(others(dir.path(), "taken.png").size(), 0u);
}

TEST(PngTest, FailedWriteLeavesTheOldFileWhole) {
  ScratchDir dir;
  const fs::path out = dir / "keep.png";
  const Image first = pattern(9, 9, 1);
  ASSERT_TRUE(write_png(first, out));
  Image bad = pattern(9, 9, 2);
  bad.rgb.pop_back();
  ASSERT_FALSE(write_png(bad, out));
  EXPECT_EQ(read_png(out).value().rgb, first.rgb);
  EXPECT_TRUE(others(dir.path(), "keep.png").empty());
}

// Replacing a file is atomic: concurrent writers of two images and a reader
// never produce or see a mixed or partial file.
TEST(PngTest, ReplacementIsAtomicUnderConcurrentWritersAndReaders) {
  ScratchDir dir;
  const fs::path out = dir / "shared.png";
  const Image a = pattern(96, 64, 1), b = pattern(96, 64, 2);
  ASSERT_TRUE(write_png(a, out));
  std::atomic<bool> stop{false};
  std::atomic<int> reads{0}, bad_reads{0};
  std::thread reader([&] {
    while (!stop) {
      auto image = read_png(out);
      if (!image || (image->rgb != a.rgb && image->rgb != b.rgb)) ++bad_reads;
      ++reads;
    }
  });
  std::atomic<int> failures{0};
  auto writer = [&](const Image& image) {
    for (int i = 0; i < 20; ++i)
      if (!write_png(image, out)) ++failures;
  };
  std::thread wa(writer, std::cref(a)), wb(writer, std::cref(b));
  wa.join();
  wb.join();
  stop = true;
  reader.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(bad_reads.load(), 0) << "of " << reads.load() << " reads";
  auto last = read_png(out);
  ASSERT_TRUE(last);
  EXPECT_TRUE(last->rgb == a.rgb || last->rgb == b.rgb);
  EXPECT_TRUE(others(dir.path(), "shared.png").empty());
}

// ---- reading: refusals ---------------------------------------------------------------

TEST(PngTest, MissingFileIsNotFoundNamingThePath) {
  ScratchDir dir;
  auto image = read_png(dir / "absent.png");
  ASSERT_FALSE(image);
  EXPECT_EQ(image.error().code, ErrorCode::kNotFound) << image.error().message;
  EXPECT_THAT(image.error().message, HasSubstr((dir / "absent.png").string()));
}

TEST(PngTest, CorruptFileIsInvalidArgumentNamingThePath) {
  ScratchDir dir;
  const fs::path p = dir / "corrupt.png";
  ASSERT_TRUE(write_png(pattern(32, 32), p));
  std::string bytes = read_bytes(p);
  const size_t idat = bytes.find("IDAT");
  ASSERT_NE(idat, std::string::npos);
  for (size_t i = idat + 8; i < idat + 24; ++i) bytes[i] = static_cast<char>(bytes[i] ^ 0x5a);  // data and CRC disagree
  write_bytes(p, bytes);
  auto image = read_png(p);
  ASSERT_FALSE(image);
  EXPECT_EQ(image.error().code, ErrorCode::kInvalidArgument) << image.error().message;
  EXPECT_THAT(image.error().message, HasSubstr(p.string()));
  EXPECT_THAT(image.error().message, HasSubstr("not a valid PNG"));

  write_bytes(p, "definitely not a PNG file");
  image = read_png(p);
  ASSERT_FALSE(image);
  EXPECT_EQ(image.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(image.error().message, HasSubstr(p.string() + ": not a PNG file"));
}

// Cut at every length from the signature to just before IEND: always an
// error, never a crash or a partial image; past the header, kDataLoss.
TEST(PngTest, TruncatedFileIsDataLossNamingThePath) {
  ScratchDir dir;
  const fs::path whole = dir / "whole.png";
  ASSERT_TRUE(write_png(pattern(10, 8), whole));  // random bytes: ~300 bytes of PNG
  const std::string bytes = read_bytes(whole);
  const size_t iend = bytes.rfind("IEND");
  ASSERT_NE(iend, std::string::npos);
  const fs::path cut = dir / "cut.png";
  for (size_t n = 1; n < iend - 4; ++n) {
    SCOPED_TRACE(n);
    write_bytes(cut, bytes.substr(0, n));
    auto image = read_png(cut);
    ASSERT_FALSE(image);
    EXPECT_EQ(image.error().code, ErrorCode::kDataLoss) << image.error().message;
    EXPECT_THAT(image.error().message, HasSubstr(cut.string()));
  }
}

TEST(PngTest, FolderIsInvalidArgument) {
  ScratchDir dir;
  auto image = read_png(dir.path());
  ASSERT_FALSE(image);
  EXPECT_EQ(image.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(image.error().message, HasSubstr(dir.path().string() + ": is a directory"));
}

// ---- reading: every colour type and bit depth becomes RGB8 -----------------------------

// A PNG written by hand (no gAMA, sRGB, or other ancillary chunks unless
// given), so that every colour type and bit depth can be made.
std::string chunk(const std::string& type, const std::string& data) {
  auto be32 = [](uint32_t v) {
    return std::string{static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
                       static_cast<char>(v)};
  };
  const std::string body = type + data;
  const uint32_t crc = static_cast<uint32_t>(
      ::crc32(0, reinterpret_cast<const Bytef*>(body.data()), static_cast<uInt>(body.size())));
  return be32(static_cast<uint32_t>(data.size())) + body + be32(crc);
}

// `rows`: each row's raw bytes without the filter byte (filter 0 is added).
std::string make_png(uint32_t width, uint32_t height, int depth, int color, const std::vector<std::string>& rows,
                     const std::string& extra_chunks = "") {
  std::string ihdr(13, '\0');
  for (int i = 0; i < 4; ++i) {
    ihdr[i] = static_cast<char>(width >> (24 - 8 * i));
    ihdr[4 + i] = static_cast<char>(height >> (24 - 8 * i));
  }
  ihdr[8] = static_cast<char>(depth);
  ihdr[9] = static_cast<char>(color);
  std::string raw;
  for (const auto& r : rows) raw += '\0' + r;
  uLongf size = compressBound(static_cast<uLong>(raw.size()));
  std::string z(size, '\0');
  EXPECT_EQ(::compress(reinterpret_cast<Bytef*>(z.data()), &size, reinterpret_cast<const Bytef*>(raw.data()),
                       static_cast<uLong>(raw.size())),
            Z_OK);
  z.resize(size);
  return std::string("\x89PNG\r\n\x1a\n", 8) + chunk("IHDR", ihdr) + extra_chunks + chunk("IDAT", z) +
         chunk("IEND", "");
}

std::string bytes_of(std::initializer_list<int> v) {
  std::string s;
  for (int b : v) s.push_back(static_cast<char>(b));
  return s;
}

Image read_crafted(const std::string& png) {
  ScratchDir dir;
  const fs::path p = dir / "crafted.png";
  write_bytes(p, png);
  auto image = read_png(p);
  EXPECT_TRUE(image) << image.error().to_string();
  return image ? *image : Image{};
}

std::vector<uint8_t> rgb(std::initializer_list<int> v) { return std::vector<uint8_t>(v.begin(), v.end()); }

TEST(PngConversionTest, Gray8) {
  Image image = read_crafted(make_png(3, 1, 8, 0, {bytes_of({0, 128, 255})}));
  EXPECT_EQ(image.width, 3);
  EXPECT_EQ(image.rgb, rgb({0, 0, 0, 128, 128, 128, 255, 255, 255}));
}

TEST(PngConversionTest, GrayBelow8Bits) {
  // 1 bit: 0b10100000 -> 255 0 255 0; 2 bits: 0 1 2 3 -> 0 85 170 255; 4 bits: 0x0f, 0x80 -> 0 255 136 0
  EXPECT_EQ(read_crafted(make_png(4, 1, 1, 0, {bytes_of({0xa0})})).rgb,
            rgb({255, 255, 255, 0, 0, 0, 255, 255, 255, 0, 0, 0}));
  EXPECT_EQ(read_crafted(make_png(4, 1, 2, 0, {bytes_of({0x1b})})).rgb,
            rgb({0, 0, 0, 85, 85, 85, 170, 170, 170, 255, 255, 255}));
  EXPECT_EQ(read_crafted(make_png(4, 1, 4, 0, {bytes_of({0x0f, 0x80})})).rgb,
            rgb({0, 0, 0, 255, 255, 255, 136, 136, 136, 0, 0, 0}));
}

TEST(PngConversionTest, Gray16ScalesTo8Bits) {
  // 0x0000, 0x8080 (= 128 * 257), 0xffff; no gAMA: taken as sRGB, so only the scale changes.
  Image image = read_crafted(make_png(3, 1, 16, 0, {bytes_of({0x00, 0x00, 0x80, 0x80, 0xff, 0xff})}));
  EXPECT_EQ(image.rgb, rgb({0, 0, 0, 128, 128, 128, 255, 255, 255}));
}

TEST(PngConversionTest, GrayAlphaDropsAlpha) {
  Image image = read_crafted(make_png(3, 1, 8, 4, {bytes_of({10, 255, 200, 128, 77, 0})}));
  ASSERT_EQ(image.rgb.size(), 9u);
  EXPECT_EQ(image.rgb[0], 10);
  EXPECT_EQ(image.rgb[3], 200);  // half transparent: the stored gray, not composited
  EXPECT_EQ(image.rgb[4], 200);
  EXPECT_EQ(image.rgb[6], 77);  // fully transparent: still the stored gray
}

TEST(PngConversionTest, Rgb16ScalesTo8Bits) {
  Image image =
      read_crafted(make_png(2, 1, 16, 2, {bytes_of({0xff, 0xff, 0x00, 0x00, 0x40, 0x40, 0x01, 0x01, 0x02, 0x02,
                                                    0xfe, 0xfe})}));
  EXPECT_EQ(image.rgb, rgb({255, 0, 64, 1, 2, 254}));
}

TEST(PngConversionTest, RgbaDropsAlphaKeepingTheStoredColors) {
  Image image = read_crafted(make_png(3, 1, 8, 6, {bytes_of({1, 2, 3, 255, 40, 50, 60, 128, 70, 80, 90, 255})}));
  EXPECT_EQ(image.width, 3);
  EXPECT_EQ(image.height, 1);
  EXPECT_EQ(image.rgb, rgb({1, 2, 3, 40, 50, 60, 70, 80, 90}));
}

TEST(PngConversionTest, Rgba16) {
  Image image = read_crafted(
      make_png(1, 2, 16, 6, {bytes_of({0xff, 0xff, 0x80, 0x80, 0x00, 0x00, 0xff, 0xff}),
                             bytes_of({0x10, 0x10, 0x20, 0x20, 0x30, 0x30, 0xff, 0xff})}));
  EXPECT_EQ(image.rgb, rgb({255, 128, 0, 16, 32, 48}));
}

TEST(PngConversionTest, PaletteIsExpanded) {
  const std::string plte = chunk("PLTE", bytes_of({255, 0, 0, 0, 255, 0, 0, 0, 255, 12, 34, 56}));
  Image image = read_crafted(make_png(4, 1, 8, 3, {bytes_of({3, 2, 1, 0})}, plte));
  EXPECT_EQ(image.rgb, rgb({12, 34, 56, 0, 0, 255, 0, 255, 0, 255, 0, 0}));
  // 2-bit indices, with tRNS (alpha): the colours are kept.
  const std::string trns = chunk("tRNS", bytes_of({0, 128}));
  image = read_crafted(make_png(4, 1, 2, 3, {bytes_of({0x1b})}, plte + trns));
  EXPECT_EQ(image.rgb, rgb({255, 0, 0, 0, 255, 0, 0, 0, 255, 12, 34, 56}));
}

TEST(PngConversionTest, RgbWithTrnsHasAlphaDropped) {
  const std::string trns = chunk("tRNS", bytes_of({0, 1, 0, 2, 0, 3}));  // the colour (1, 2, 3) is transparent
  Image image = read_crafted(make_png(2, 1, 8, 2, {bytes_of({1, 2, 3, 4, 5, 6})}, trns));
  EXPECT_EQ(image.rgb, rgb({1, 2, 3, 4, 5, 6}));
}

TEST(PngConversionTest, FileGammaIsConvertedToSrgb) {
  // gAMA 1.0 (linear): 0 and 255 stay, the middle brightens (linear 0.5 is sRGB 188).
  const std::string gama = chunk("gAMA", bytes_of({0x00, 0x01, 0x86, 0xa0}));  // 100000
  Image image = read_crafted(make_png(3, 1, 8, 0, {bytes_of({0, 128, 255})}, gama));
  ASSERT_EQ(image.rgb.size(), 9u);
  EXPECT_EQ(image.rgb[0], 0);
  EXPECT_NEAR(image.rgb[3], 188, 2);
  EXPECT_EQ(image.rgb[6], 255);
}

}  // namespace
}  // namespace tp
