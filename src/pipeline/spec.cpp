#include "pipeline/spec.h"

#include <cmath>

#include "util/json.h"

namespace tp {
inline namespace v0 {

constexpr uint64_t kMaxDefaultsBytes = 64 << 10;

Expected<GenerationDefaults> parse_generation_defaults(const nlohmann::json& j, std::string_view origin,
                                                       GenerationDefaults d) {
  const std::string where(origin);
  if (!j.is_object()) return invalid_argument(where + ": not a JSON object");
  if (auto it = j.find("num_inference_steps"); it != j.end()) {
    if (!it->is_number_integer() || it->get<int64_t>() < 1 || it->get<int64_t>() > 1000)
      return invalid_argument(where + ": 'num_inference_steps' must be an integer in 1..1000, not " + it->dump());
    d.steps = it->get<int>();
  }
  if (auto it = j.find("guidance_scale"); it != j.end()) {
    if (!it->is_number() || !std::isfinite(it->get<double>()))
      return invalid_argument(where + ": 'guidance_scale' must be a number, not " + it->dump());
    d.guidance_scale = it->get<double>();
  }
  return d;
}

Expected<GenerationDefaults> read_generation_defaults(const std::filesystem::path& root, GenerationDefaults defaults) {
  const std::filesystem::path file = root / "generation_defaults.json";
  auto j = detail::read_json_object_file(file, kMaxDefaultsBytes);
  if (!j) {
    if (j.error().code == ErrorCode::kNotFound) return defaults;
    return tl::unexpected(j.error());
  }
  return parse_generation_defaults(*j, file.string(), defaults);
}

}  // namespace v0
}  // namespace tp
