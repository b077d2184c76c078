#include "pipeline/common/config_reader.h"

namespace tp::nn {

Expected<ConfigReader> ConfigReader::over(const nlohmann::json& config, std::string_view origin) {
  if (!config.is_object()) return invalid_argument(std::string(origin) + ": not a JSON object");
  return ConfigReader(config, origin);
}

Expected<int64_t> ConfigReader::positive(const char* key, int64_t fallback) const {
  auto it = j_->find(key);
  if (it == j_->end() || it->is_null()) {
    if (fallback > 0) return fallback;
    return invalid_argument(where(key) + " is missing");
  }
  if (!it->is_number_integer() || it->get<int64_t>() <= 0 || it->get<int64_t>() > (int64_t{1} << 24))
    return invalid_argument(where(key) + " must be a positive integer, not " + it->dump());
  return it->get<int64_t>();
}

Expected<double> ConfigReader::number(const char* key, double fallback) const {
  auto it = j_->find(key);
  if (it == j_->end() || it->is_null()) return fallback;
  if (!it->is_number()) return invalid_argument(where(key) + " must be a number, not " + it->dump());
  return it->get<double>();
}

Expected<bool> ConfigReader::boolean(const char* key, bool fallback) const {
  auto it = j_->find(key);
  if (it == j_->end() || it->is_null()) return fallback;
  if (!it->is_boolean()) return invalid_argument(where(key) + " must be true or false, not " + it->dump());
  return it->get<bool>();
}

Expected<std::string> ConfigReader::string(const char* key, std::string fallback) const {
  auto it = j_->find(key);
  if (it == j_->end() || it->is_null()) return fallback;
  if (!it->is_string()) return invalid_argument(where(key) + " must be a string, not " + it->dump());
  return it->get<std::string>();
}

Expected<std::vector<int64_t>> ConfigReader::ints(const char* key) const {
  std::vector<int64_t> out;
  auto it = j_->find(key);
  if (it == j_->end() || it->is_null()) return out;
  if (!it->is_array()) return invalid_argument(where(key) + " must be a list of integers, not " + it->dump());
  for (const auto& v : *it) {
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > (int64_t{1} << 24))
      return invalid_argument(where(key) + " must be a list of non-negative integers, not " + it->dump());
    out.push_back(v.get<int64_t>());
  }
  return out;
}

Status ConfigReader::one_of(const char* key, const std::string& value,
                            std::initializer_list<const char*> allowed) const {
  for (const char* a : allowed)
    if (value == a) return {};
  std::string list;
  for (const char* a : allowed) list += std::string(list.empty() ? "" : ", ") + "'" + a + "'";
  return unimplemented(where(key) + " is '" + value + "'; supported: " + list);
}

}  // namespace tp::nn
