// Private (util): POSIX file reading with errors as values.
//
// ReadOnlyFile wraps an fd opened O_RDONLY|O_CLOEXEC on a regular file and
// reads with pread, so one object may serve concurrent readers. Errors name the
// path. errno maps to codes as: ENOENT/ENOTDIR -> kNotFound, EACCES/EPERM ->
// kFailedPrecondition, anything else -> kUnavailable; a non-regular file
// (directory, FIFO, device, socket) is kInvalidArgument ("<path>: is a
// directory, not a regular file"), refused without blocking: the open uses
// O_NONBLOCK, cleared once fstat shows a regular file. A file that ends early
// while being read is kDataLoss.
//
// Threading: a ReadOnlyFile is immutable after open(); read_at() is safe from
// any number of threads at once.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "twistedpic/expected.h"

namespace tp::detail {

class ReadOnlyFile {
 public:
  static Expected<ReadOnlyFile> open(const std::filesystem::path& path);

  ReadOnlyFile(ReadOnlyFile&& other) noexcept;
  ReadOnlyFile& operator=(ReadOnlyFile&& other) noexcept;
  ReadOnlyFile(const ReadOnlyFile&) = delete;
  ReadOnlyFile& operator=(const ReadOnlyFile&) = delete;
  ~ReadOnlyFile();

  uint64_t size() const { return size_; }
  const std::string& name() const { return name_; }

  // Reads exactly `n` bytes at `offset` into `out`.
  // REQUIRES: offset + n <= size().
  Status read_at(uint64_t offset, size_t n, char* out) const;

 private:
  ReadOnlyFile(int fd, uint64_t size, std::string name) : fd_(fd), size_(size), name_(std::move(name)) {}

  int fd_ = -1;
  uint64_t size_ = 0;
  std::string name_;
};

// Reads a whole file of at most `max_bytes` (a larger one is kInvalidArgument).
Expected<std::string> read_text_file(const std::filesystem::path& path, uint64_t max_bytes);

// The error for a failed system call on `path`: "<path>: cannot <action>: <strerror>".
Error file_error(int err, const std::filesystem::path& path, std::string_view action);

}  // namespace tp::detail
