// Runs a fuzz target without libFuzzer, for targets that ctest runs in a GCC
// build (capi_generate_fuzz needs the torch layers, which the clang fuzz build
// does not make):
//
//   <target> [--random N] [--seed S] [--max-len L] [FILE_OR_FOLDER...]
//
// Each file named, and each file in a folder named (the committed seeds), is one
// input; then N inputs of pseudo-random bytes (std::mt19937_64 seeded with S,
// lengths up to L). A broken rule aborts, as under libFuzzer; the input that
// broke it is named first on stderr.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

void run(const std::vector<uint8_t>& input, const std::string& what) {
  std::fprintf(stderr, "running %s (%zu bytes)\n", what.c_str(), input.size());
  LLVMFuzzerTestOneInput(input.data(), input.size());
}

void run_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "error: cannot read %s\n", path.c_str());
    std::exit(2);
  }
  run(std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {}), path.string());
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t random_inputs = 0, seed = 1;
  size_t max_len = 256;
  size_t files = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--random" && i + 1 < argc) {
      random_inputs = std::strtoull(argv[++i], nullptr, 10);
    } else if (arg == "--seed" && i + 1 < argc) {
      seed = std::strtoull(argv[++i], nullptr, 10);
    } else if (arg == "--max-len" && i + 1 < argc) {
      max_len = std::strtoull(argv[++i], nullptr, 10);
    } else if (std::filesystem::is_directory(arg)) {
      for (const auto& entry : std::filesystem::directory_iterator(arg))
        if (entry.is_regular_file()) run_file(entry.path()), ++files;
    } else {
      run_file(arg), ++files;
    }
  }
  std::mt19937_64 rng(seed);
  for (uint64_t n = 0; n < random_inputs; ++n) {
    std::vector<uint8_t> input(rng() % (max_len + 1));
    for (auto& b : input) b = static_cast<uint8_t>(rng());
    run(input, "random input " + std::to_string(n) + " (seed " + std::to_string(seed) + ")");
  }
  std::fprintf(stderr, "done: %zu files, %llu random inputs\n", files, static_cast<unsigned long long>(random_inputs));
  return 0;
}
