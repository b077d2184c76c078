#include "util/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>
#include <utility>

namespace tp::detail {

Error file_error(int err, const std::filesystem::path& path, std::string_view action) {
  ErrorCode code = ErrorCode::kUnavailable;
  if (err == ENOENT || err == ENOTDIR) code = ErrorCode::kNotFound;
  if (err == EACCES || err == EPERM) code = ErrorCode::kFailedPrecondition;
  return Error{code, path.string() + ": cannot " + std::string(action) + ": " +
                         std::error_code(err, std::generic_category()).message()};
}

namespace {

// What a non-regular file is, for messages.
const char* file_kind(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a named pipe (FIFO)";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "a special file";
}

}  // namespace

Expected<ReadOnlyFile> ReadOnlyFile::open(const std::filesystem::path& path) {
  // O_NONBLOCK: opening a FIFO without it blocks until a writer appears (and a
  // device may block too). It has no effect on regular files, and it is
  // cleared below once fstat has shown a regular file.
  int fd;
  do {
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return tl::unexpected(file_error(errno, path, "open"));
  ReadOnlyFile file(fd, 0, path.string());  // closes fd on every return below
  struct stat st {};
  if (::fstat(fd, &st) != 0) return tl::unexpected(file_error(errno, path, "stat"));
  if (!S_ISREG(st.st_mode))
    return invalid_argument(path.string() + ": is " + file_kind(st.st_mode) + ", not a regular file");
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0)
    return tl::unexpected(file_error(errno, path, "clear O_NONBLOCK on"));
  file.size_ = static_cast<uint64_t>(st.st_size);
  return file;
}

ReadOnlyFile::ReadOnlyFile(ReadOnlyFile&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), size_(other.size_), name_(std::move(other.name_)) {}

ReadOnlyFile& ReadOnlyFile::operator=(ReadOnlyFile&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    size_ = other.size_;
    name_ = std::move(other.name_);
  }
  return *this;
}

ReadOnlyFile::~ReadOnlyFile() {
  if (fd_ >= 0) ::close(fd_);
}

Status ReadOnlyFile::read_at(uint64_t offset, size_t n, char* out) const {
  TP_ASSERT(offset <= size_ && n <= size_ - offset);
  size_t done = 0;
  while (done < n) {
    ssize_t got = ::pread(fd_, out + done, n - done, static_cast<off_t>(offset + done));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return tl::unexpected(file_error(errno, name_, "read"));
    if (got == 0)
      return data_loss(name_ + ": file ended at byte " + std::to_string(offset + done) + " while reading " +
                       std::to_string(n) + " bytes at " + std::to_string(offset) + " (truncated while being read?)");
    done += static_cast<size_t>(got);
  }
  return ok_status();
}

Expected<std::string> read_text_file(const std::filesystem::path& path, uint64_t max_bytes) {
  TP_ASSIGN_OR_RETURN(ReadOnlyFile file, ReadOnlyFile::open(path));
  if (file.size() > max_bytes)
    return invalid_argument(path.string() + ": file is " + std::to_string(file.size()) + " bytes, over the limit of " +
                            std::to_string(max_bytes));
  std::string text(file.size(), '\0');
  TP_TRY(file.read_at(0, text.size(), text.data()));
  return text;
}

}  // namespace tp::detail
