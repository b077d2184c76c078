#include "weights/hf_cache.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <initializer_list>
#include <map>
#include <optional>

#include "support/weights_test_util.h"

namespace tp {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing_util::ScratchDir;
using testing_util::write_file;

constexpr const char* kCacheVars[] = {"HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME", "HOME"};
constexpr const char* kCommit = "0123456789abcdef0123456789abcdef01234567";

// Sets the cache variables for one test (unset unless given) and restores them.
class CacheEnv {
 public:
  explicit CacheEnv(std::initializer_list<std::pair<std::string, std::string>> list) {
    const std::map<std::string, std::string> vars(list.begin(), list.end());
    for (const char* name : kCacheVars) {
      const char* old = std::getenv(name);
      saved_[name] = old ? std::optional<std::string>(old) : std::nullopt;
      auto it = vars.find(name);
      if (it != vars.end())
        ::setenv(name, it->second.c_str(), 1);
      else
        ::unsetenv(name);
    }
  }
  CacheEnv(const CacheEnv&) = delete;
  CacheEnv& operator=(const CacheEnv&) = delete;
  ~CacheEnv() {
    for (const auto& [name, value] : saved_) {
      if (value)
        ::setenv(name.c_str(), value->c_str(), 1);
      else
        ::unsetenv(name.c_str());
    }
  }

 private:
  std::map<std::string, std::optional<std::string>> saved_;
};

// <cache>/models--org--name with refs/main -> kCommit and that snapshot.
fs::path make_cached_model(const fs::path& cache, const std::string& folder) {
  const fs::path repo = cache / folder;
  write_file(repo / "refs" / "main", kCommit);
  fs::create_directories(repo / "snapshots" / kCommit);
  return repo / "snapshots" / kCommit;
}

TEST(HfCacheTest, CacheDirFollowsHuggingFaceOrder) {
  {
    CacheEnv env({{"HF_HUB_CACHE", "/a"}, {"HF_HOME", "/b"}, {"HOME", "/h"}});
    EXPECT_EQ(hf_hub_cache_dir().value(), fs::path("/a"));
  }
  {
    CacheEnv env({{"HF_HUB_CACHE", ""}, {"HF_HOME", "/b"}, {"HOME", "/h"}});  // empty counts as unset
    EXPECT_EQ(hf_hub_cache_dir().value(), fs::path("/b/hub"));
  }
  {
    CacheEnv env({{"XDG_CACHE_HOME", "/x"}, {"HOME", "/h"}});
    EXPECT_EQ(hf_hub_cache_dir().value(), fs::path("/x/huggingface/hub"));
  }
  {
    CacheEnv env({{"HOME", "/h"}});
    EXPECT_EQ(hf_hub_cache_dir().value(), fs::path("/h/.cache/huggingface/hub"));
  }
  {
    CacheEnv env({});
    EXPECT_EQ(hf_hub_cache_dir().error().code, ErrorCode::kFailedPrecondition);
  }
}

TEST(HfCacheTest, ResolvesSnapshotThroughRefs) {
  ScratchDir dir;
  CacheEnv env({{"HF_HUB_CACHE", dir.path().string()}});
  const fs::path snapshot = make_cached_model(dir.path(), "models--stabilityai--stable-diffusion-3.5-large");
  auto p = resolve_hf_snapshot("stabilityai/stable-diffusion-3.5-large");
  ASSERT_TRUE(p) << p.error().to_string();
  EXPECT_EQ(*p, snapshot);

  // A commit hash is used directly; a trailing newline in refs is tolerated.
  EXPECT_EQ(resolve_hf_snapshot("stabilityai/stable-diffusion-3.5-large", kCommit).value(), snapshot);
  const fs::path other = make_cached_model(dir.path(), "models--gpt2");
  write_file(dir / "models--gpt2/refs/main", std::string(kCommit) + "\n");
  EXPECT_EQ(resolve_hf_snapshot("gpt2").value(), other);
}

TEST(HfCacheTest, NotFoundErrorsNameTheIdAndPath) {
  ScratchDir dir;
  CacheEnv env({{"HF_HUB_CACHE", dir.path().string()}});
  auto missing = resolve_hf_snapshot("org/absent");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(missing.error().message, HasSubstr("model 'org/absent' is not in the Hugging Face cache"));
  EXPECT_THAT(missing.error().message, HasSubstr((dir / "models--org--absent").string()));

  make_cached_model(dir.path(), "models--org--m");
  auto no_ref = resolve_hf_snapshot("org/m", "v2");
  ASSERT_FALSE(no_ref);
  EXPECT_EQ(no_ref.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(no_ref.error().message, HasSubstr("revision 'v2'"));
  EXPECT_THAT(no_ref.error().message, HasSubstr((dir / "models--org--m/refs/v2").string()));

  auto no_snapshot = resolve_hf_snapshot("org/m", "ffffffffffffffffffffffffffffffffffffffff");
  ASSERT_FALSE(no_snapshot);
  EXPECT_EQ(no_snapshot.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(no_snapshot.error().message, HasSubstr("snapshots/ffffffffffffffffffffffffffffffffffffffff"));

  write_file(dir / "models--org--m/refs/main", "not a hash");
  auto corrupt = resolve_hf_snapshot("org/m");
  ASSERT_FALSE(corrupt);
  EXPECT_EQ(corrupt.error().code, ErrorCode::kDataLoss);
  EXPECT_THAT(corrupt.error().message, HasSubstr("does not hold a commit hash"));
}

TEST(HfCacheTest, ValidatesIdsAndRevisions) {
  EXPECT_TRUE(validate_hf_model_id("stabilityai/stable-diffusion-3.5-large"));
  EXPECT_TRUE(validate_hf_model_id("gpt2"));
  EXPECT_TRUE(validate_hf_model_id("black-forest-labs/FLUX.1-dev"));
  const std::map<std::string, std::string> bad = {
      {"../etc", "'-' or '.'"},        {"a/../b", "more than one '/'"},
      {"a/b/c", "more than one '/'"},  {"org/", "an empty name part"},
      {"/abs", "an empty name part"},  {"a b", "the character ' '"},
      {"org/na..me", "'--' or '..'"},  {"org--x/name", "'--' or '..'"},
      {"-org/name", "starts or ends"}, {std::string(97, 'a'), "longer than 96"},
  };
  for (const auto& [id, why] : bad) {
    SCOPED_TRACE(id);
    Status s = validate_hf_model_id(id);
    ASSERT_FALSE(s);
    EXPECT_EQ(s.error().code, ErrorCode::kInvalidArgument);
    EXPECT_THAT(s.error().message, HasSubstr("'" + id + "' is not a valid Hugging Face model id: it has "));
    EXPECT_THAT(s.error().message, HasSubstr(why));
  }
  // Malformed revisions never reach the file system.
  EXPECT_EQ(resolve_hf_snapshot("org/m", "../../x").error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(resolve_hf_snapshot("org/m", "/etc").error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(resolve_hf_snapshot("org/m", "").error().code, ErrorCode::kInvalidArgument);
}

TEST(HfCacheTest, ResolveModelSource) {
  ScratchDir dir;
  CacheEnv env({{"HF_HUB_CACHE", (dir / "cache").string()}});
  const fs::path snapshot = make_cached_model(dir / "cache", "models--org--m");
  fs::create_directories(dir / "local");
  write_file(dir / "file.safetensors", "x");

  EXPECT_EQ(resolve_model_source((dir / "local").string()).value(), dir / "local");
  EXPECT_EQ(resolve_model_source("org/m").value(), snapshot);

  auto file = resolve_model_source((dir / "file.safetensors").string());
  ASSERT_FALSE(file);
  EXPECT_EQ(file.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(file.error().message, HasSubstr("is a file"));

  auto missing_dir = resolve_model_source((dir / "nope").string());
  ASSERT_FALSE(missing_dir);
  EXPECT_EQ(missing_dir.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(missing_dir.error().message, HasSubstr("model folder"));

  auto bad = resolve_model_source("a/b/c");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(bad.error().message, HasSubstr("neither an existing folder nor a Hugging Face model id"));

  EXPECT_EQ(resolve_model_source("org/absent").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(resolve_model_source("").error().code, ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace tp
