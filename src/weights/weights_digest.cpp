// Header and content digests of weight files, the content ones cached. See weights_digest.h.
#include "weights/weights_digest.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>

#define XXH_INLINE_ALL  // header-only: no library to link, nothing to ship
#include <xxhash.h>

#include "util/file.h"

namespace tp::detail {
namespace {

namespace fs = std::filesystem;

constexpr size_t kChunkBytes = 8u << 20;
constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // as kMaxSafetensorsHeaderBytes
constexpr std::string_view kCacheMagic = "twistedpic-digest 1";

std::string hex128(XXH128_hash_t h) {
  XXH128_canonical_t c;
  XXH128_canonicalFromHash(&c, h);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char b : c.digest) out += {kHex[b >> 4], kHex[b & 15]};
  return out;
}

// The facts that make a cache entry current.
struct FileStamp {
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  uint64_t inode = 0;
  bool operator==(const FileStamp&) const = default;
};

Expected<FileStamp> stamp_of(const fs::path& file) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) return tl::unexpected(file_error(errno, file, "stat"));
  if (!S_ISREG(st.st_mode)) return invalid_argument(file.string() + ": not a regular file");
  return FileStamp{static_cast<uint64_t>(st.st_size),
                   static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec,
                   static_cast<uint64_t>(st.st_ino)};
}

std::string entry_text(const FileStamp& s, const std::string& digest) {
  return std::string(kCacheMagic) + "\n" + std::to_string(s.size) + " " + std::to_string(s.mtime_ns) + " " +
         std::to_string(s.inode) + " " + digest + "\n";
}

fs::path entry_path(const fs::path& dir, const fs::path& file) {
  std::error_code ec;
  fs::path absolute = fs::weakly_canonical(file, ec);
  if (ec) absolute = fs::absolute(file, ec);
  const std::string key = absolute.string();
  return dir / hex128(XXH3_128bits(key.data(), key.size()));
}

std::optional<std::string> cached(const fs::path& entry, const FileStamp& stamp) {
  auto text = read_text_file(entry, 4096);
  if (!text) return std::nullopt;
  std::istringstream in(*text);
  std::string magic;
  std::getline(in, magic);
  FileStamp s;
  std::string digest;
  if (magic != kCacheMagic || !(in >> s.size >> s.mtime_ns >> s.inode >> digest) || !(s == stamp))
    return std::nullopt;
  return digest;
}

// Best effort: a cache that cannot be written only costs a recomputation.
void store(const fs::path& entry, const std::string& text) {
  static std::atomic<uint64_t> counter{0};
  std::error_code ec;
  fs::create_directories(entry.parent_path(), ec);
  const fs::path tmp = entry.string() + ".tmp." + std::to_string(::getpid()) + "." +
                       std::to_string(std::hash<std::thread::id>()(std::this_thread::get_id())) + "." +
                       std::to_string(counter++);
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out.good()) {
      out.close();
      fs::remove(tmp, ec);
      return;
    }
  }
  fs::rename(tmp, entry, ec);
  if (ec) fs::remove(tmp, ec);
}

Expected<std::string> hash_file(const fs::path& file) {
  TP_ASSIGN_OR_RETURN(ReadOnlyFile f, ReadOnlyFile::open(file));
  XXH3_state_t* state = XXH3_createState();
  if (!state) return resource_exhausted(file.string() + ": out of memory for the digest");
  XXH3_128bits_reset(state);
  std::string buffer(std::min<uint64_t>(kChunkBytes, f.size()), '\0');
  Status status = ok_status();
  for (uint64_t offset = 0; offset < f.size() && status;) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(buffer.size(), f.size() - offset));
    status = f.read_at(offset, n, buffer.data());
    if (status) XXH3_128bits_update(state, buffer.data(), n);
    offset += n;
  }
  const XXH128_hash_t h = XXH3_128bits_digest(state);
  XXH3_freeState(state);
  if (!status) return tl::unexpected(status.error());
  return "xxh3-128:" + hex128(h);
}

}  // namespace

std::optional<fs::path> digest_cache_dir() {
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg == '/') return fs::path(xdg) / "twistedpic" / "digests";
  if (const char* home = std::getenv("HOME"); home && *home)
    return fs::path(home) / ".cache" / "twistedpic" / "digests";
  return std::nullopt;
}

Expected<std::string> file_content_digest(const fs::path& file) {
  TP_ASSIGN_OR_RETURN(FileStamp before, stamp_of(file));
  const std::optional<fs::path> dir = digest_cache_dir();
  const fs::path entry = dir ? entry_path(*dir, file) : fs::path();
  if (dir)
    if (auto digest = cached(entry, before)) return *digest;
  TP_ASSIGN_OR_RETURN(std::string digest, hash_file(file));
  // Cache it only when the file did not change while it was read.
  if (auto after = stamp_of(file); dir && after && *after == before) store(entry, entry_text(before, digest));
  return digest;
}

Expected<std::string> weights_content_digest(const std::vector<fs::path>& files) {
  if (files.size() == 1) return file_content_digest(files[0]);
  std::string all;
  for (const fs::path& f : files) {
    TP_ASSIGN_OR_RETURN(std::string d, file_content_digest(f));
    all += d + "\n";
  }
  return "xxh3-128:" + hex128(XXH3_128bits(all.data(), all.size()));
}

Expected<std::string> weights_header_digest(const std::vector<fs::path>& files) {
  XXH3_state_t* state = XXH3_createState();
  if (!state) return resource_exhausted("out of memory for a weights digest");
  XXH3_128bits_reset(state);
  auto digest_one = [&](const fs::path& file) -> Status {
    TP_ASSIGN_OR_RETURN(ReadOnlyFile f, ReadOnlyFile::open(file));
    const uint64_t size = f.size();
    XXH3_128bits_update(state, &size, sizeof size);
    char length_bytes[8] = {};
    if (size < 8) return invalid_argument(file.string() + ": " + std::to_string(size) + " bytes, not a safetensors file");
    TP_TRY(f.read_at(0, 8, length_bytes));
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(length_bytes[i]);
    if (n > kMaxHeaderBytes || n > size - 8)
      return invalid_argument(file.string() + ": a safetensors header of " + std::to_string(n) +
                              " bytes does not fit the file");
    std::string header(n, '\0');
    TP_TRY(f.read_at(8, n, header.data()));
    XXH3_128bits_update(state, length_bytes, 8);
    XXH3_128bits_update(state, header.data(), header.size());
    return ok_status();
  };
  Status status = ok_status();
  for (const fs::path& f : files) {
    status = digest_one(f);
    if (!status) break;
  }
  const XXH128_hash_t h = XXH3_128bits_digest(state);
  XXH3_freeState(state);
  if (!status) return tl::unexpected(status.error());
  return "xxh3-128:" + hex128(h);
}

}  // namespace tp::detail
