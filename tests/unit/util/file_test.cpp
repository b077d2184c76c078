// src/util/file.cpp: POSIX file reading with errors as values that name the path.
#include "util/file.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cerrno>
#include <string>
#include <thread>
#include <vector>

#include "support/weights_test_util.h"

namespace tp::detail {
namespace {

using ::testing::HasSubstr;
using testing_util::ScratchDir;
using testing_util::write_file;

TEST(ReadOnlyFileTest, MissingFileIsNotFoundNamingThePath) {
  ScratchDir dir;
  auto f = ReadOnlyFile::open(dir / "nope.bin");
  ASSERT_FALSE(f);
  EXPECT_EQ(f.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(f.error().message, HasSubstr((dir / "nope.bin").string() + ": cannot open"));
  // A path through a missing folder too (ENOENT), and through a file (ENOTDIR).
  EXPECT_EQ(ReadOnlyFile::open(dir / "no" / "such.bin").error().code, ErrorCode::kNotFound);
  write_file(dir / "plain", "x");
  EXPECT_EQ(ReadOnlyFile::open(dir / "plain" / "below").error().code, ErrorCode::kNotFound);
}

TEST(ReadOnlyFileTest, DirectoryIsInvalidArgument) {
  ScratchDir dir;
  auto f = ReadOnlyFile::open(dir.path());
  ASSERT_FALSE(f);
  EXPECT_EQ(f.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(f.error().message, dir.path().string() + ": is a directory, not a regular file");
}

TEST(ReadOnlyFileTest, NamedPipeIsInvalidArgumentWithoutBlocking) {
  ScratchDir dir;
  ASSERT_EQ(::mkfifo((dir / "fifo").c_str(), 0600), 0);
  auto f = ReadOnlyFile::open(dir / "fifo");  // would hang without O_NONBLOCK: no writer
  ASSERT_FALSE(f);
  EXPECT_EQ(f.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(f.error().message, HasSubstr("is a named pipe (FIFO), not a regular file"));
}

TEST(ReadOnlyFileTest, ReadAtReadsTheBytes) {
  ScratchDir dir;
  const std::string bytes = "0123456789abcdef";
  write_file(dir / "f.bin", bytes);
  auto f = ReadOnlyFile::open(dir / "f.bin");
  ASSERT_TRUE(f) << f.error().to_string();
  EXPECT_EQ(f->size(), bytes.size());
  EXPECT_EQ(f->name(), (dir / "f.bin").string());
  std::string out(4, '?');
  ASSERT_TRUE(f->read_at(10, 4, out.data()));
  EXPECT_EQ(out, "abcd");
  ASSERT_TRUE(f->read_at(0, 0, out.data()));  // nothing at all is fine
  ASSERT_TRUE(f->read_at(16, 0, out.data()));  // nor at the end
  // A move keeps the file open in its target.
  ReadOnlyFile moved = std::move(*f);
  std::string all(bytes.size(), '\0');
  ASSERT_TRUE(moved.read_at(0, all.size(), all.data()));
  EXPECT_EQ(all, bytes);
}

TEST(ReadOnlyFileTest, ReadAtFromManyThreads) {
  ScratchDir dir;
  std::string bytes;
  for (int i = 0; i < 4096; ++i) bytes.push_back(static_cast<char>(i * 7));
  write_file(dir / "f.bin", bytes);
  auto f = ReadOnlyFile::open(dir / "f.bin");
  ASSERT_TRUE(f) << f.error().to_string();
  std::vector<int> bad(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::string out(64, '\0');
      for (size_t off = static_cast<size_t>(t); off + out.size() <= bytes.size(); off += 61) {
        bad[t] += !f->read_at(off, out.size(), out.data()) || out != bytes.substr(off, out.size());
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < 4; ++t) EXPECT_EQ(bad[t], 0) << "thread " << t;
}

TEST(ReadOnlyFileTest, FileThatShrinksWhileReadIsDataLoss) {
  ScratchDir dir;
  write_file(dir / "f.bin", std::string(100, 'x'));
  auto f = ReadOnlyFile::open(dir / "f.bin");
  ASSERT_TRUE(f) << f.error().to_string();
  write_file(dir / "f.bin", std::string(10, 'x'));  // truncates the same inode
  std::string out(50, '\0');
  Status s = f->read_at(0, out.size(), out.data());
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, ErrorCode::kDataLoss);
  EXPECT_THAT(s.error().message, HasSubstr((dir / "f.bin").string() + ": file ended at byte 10 while reading 50"));
}

TEST(ReadTextFileTest, ReadsUpToTheLimit) {
  ScratchDir dir;
  write_file(dir / "t.txt", "hello");
  auto exact = read_text_file(dir / "t.txt", 5);
  ASSERT_TRUE(exact) << exact.error().to_string();
  EXPECT_EQ(*exact, "hello");
  auto over = read_text_file(dir / "t.txt", 4);
  ASSERT_FALSE(over);
  EXPECT_EQ(over.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(over.error().message, (dir / "t.txt").string() + ": file is 5 bytes, over the limit of 4");
  write_file(dir / "empty.txt", "");
  EXPECT_EQ(read_text_file(dir / "empty.txt", 0).value(), "");
  EXPECT_EQ(read_text_file(dir / "missing.txt", 10).error().code, ErrorCode::kNotFound);
}

TEST(FileErrorTest, MapsErrnoToCodes) {
  EXPECT_EQ(file_error(ENOENT, "p", "open").code, ErrorCode::kNotFound);
  EXPECT_EQ(file_error(ENOTDIR, "p", "open").code, ErrorCode::kNotFound);
  EXPECT_EQ(file_error(EACCES, "p", "open").code, ErrorCode::kFailedPrecondition);
  EXPECT_EQ(file_error(EPERM, "p", "open").code, ErrorCode::kFailedPrecondition);
  EXPECT_EQ(file_error(EIO, "p", "read").code, ErrorCode::kUnavailable);
  EXPECT_EQ(file_error(ENOENT, "/x/y.json", "open").message, "/x/y.json: cannot open: No such file or directory");
}

}  // namespace
}  // namespace tp::detail
