// Private (pipeline): the fields of a network's config.json, read with errors
// that name the file and the field. The JSON itself comes from the strict
// reader (util/json.h) when the folder is read; nothing here parses text.
//
// Threading: a ConfigReader is a read-only view; safe from any thread.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "twistedpic/expected.h"

namespace tp::nn {

class ConfigReader {
 public:
  // Errors: kInvalidArgument when `config` is not a JSON object.
  // REQUIRES: `config` outlives the reader.
  static Expected<ConfigReader> over(const nlohmann::json& config, std::string_view origin);

  // A positive integer (at most 2^24); `fallback` when absent (0: required).
  Expected<int64_t> positive(const char* key, int64_t fallback = 0) const;
  Expected<double> number(const char* key, double fallback) const;
  Expected<bool> boolean(const char* key, bool fallback) const;
  Expected<std::string> string(const char* key, std::string fallback) const;
  // A list of non-negative integers; empty when absent.
  Expected<std::vector<int64_t>> ints(const char* key) const;
  // kUnimplemented unless `value` (of `key`) is among `allowed`.
  Status one_of(const char* key, const std::string& value, std::initializer_list<const char*> allowed) const;

  const nlohmann::json& json() const { return *j_; }
  // "<origin>: '<key>'", for messages.
  std::string where(const char* key) const { return origin_ + ": '" + key + "'"; }

 private:
  ConfigReader(const nlohmann::json& j, std::string_view origin) : j_(&j), origin_(origin) {}
  const nlohmann::json* j_;
  std::string origin_;
};

}  // namespace tp::nn
