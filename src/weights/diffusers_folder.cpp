// Reading a diffusers model folder: model_index.json, component configs and
// the choice of each component's weight files.
#include "weights/diffusers_folder.h"

#include <algorithm>
#include <array>

#include "weights/safetensors.h"
#include "util/file.h"
#include "util/json.h"
#include "weights/weights_format.h"

namespace tp {
inline namespace v0 {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr uint64_t kMaxJsonFileBytes = 16ull << 20;
constexpr std::array<std::string_view, 4> kConfigFiles{"config.json", "scheduler_config.json",
                                                       "preprocessor_config.json", "tokenizer_config.json"};
constexpr std::array<std::string_view, 2> kPreferredStems{"diffusion_pytorch_model", "model"};
constexpr std::string_view kSingle = ".safetensors";
constexpr std::string_view kIndex = ".safetensors.index.json";

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

// Component names are Python identifiers; anything else could leave the folder.
bool is_component_name(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) return false;
  return true;
}

// Prefixes an error from a lower layer with the component it concerns.
Status in_component(Status s, const std::string& where) {
  if (!s) return make_error(s.error().code, where + ": " + s.error().message);
  return s;
}

Status read_config(DiffusersComponent& c) {
  std::error_code ec;
  for (std::string_view name : kConfigFiles) {
    const fs::path path = c.folder / name;
    if (!fs::is_regular_file(path, ec)) continue;
    TP_ASSIGN_OR_RETURN(c.config, detail::read_json_object_file(path, kMaxJsonFileBytes));
    c.config_file = name;
    return ok_status();
  }
  return ok_status();
}

// Picks the weight files of a model component (see the header for the order).
Status choose_weights(DiffusersComponent& c, const std::string& where) {
  std::vector<std::string> singles, indexes, pickles;
  std::error_code ec;
  for (fs::directory_iterator it(c.folder, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code entry_ec;  // a dangling link is skipped, not an error
    if (!it->is_regular_file(entry_ec)) continue;
    const std::string name = it->path().filename().string();
    if (name.ends_with(kIndex))
      indexes.push_back(name);
    else if (name.ends_with(kSingle))
      singles.push_back(name);
    else if (detail::has_pickle_extension(name))
      pickles.push_back(name);
  }
  if (ec) return tl::unexpected(detail::file_error(ec.value(), c.folder, "list"));
  std::sort(singles.begin(), singles.end());
  std::sort(indexes.begin(), indexes.end());
  std::sort(pickles.begin(), pickles.end());

  std::string single, index;
  for (std::string_view stem : kPreferredStems)
    if (single.empty() && contains(singles, std::string(stem) + std::string(kSingle)))
      single = std::string(stem) + std::string(kSingle);
  for (std::string_view stem : kPreferredStems)
    if (single.empty() && index.empty() && contains(indexes, std::string(stem) + std::string(kIndex)))
      index = std::string(stem) + std::string(kIndex);
  if (single.empty() && index.empty()) {
    if (indexes.size() == 1)
      index = indexes[0];
    else if (indexes.empty() && singles.size() == 1)
      single = singles[0];
  }

  if (!single.empty()) {
    c.weight_files = {c.folder / single};
    return ok_status();
  }
  if (!index.empty()) {
    c.weights_index = c.folder / index;
    auto sharded = read_safetensors_index(c.weights_index);
    if (!sharded) return in_component(tl::unexpected(std::move(sharded).error()), where);
    c.weight_files = std::move(sharded->shards);
    return ok_status();
  }
  if (!singles.empty() || !indexes.empty()) {
    std::vector<std::string> all = indexes;
    all.insert(all.end(), singles.begin(), singles.end());
    return invalid_argument(where + ": ambiguous weights in " + c.folder.string() + ": " + join(all) +
                            " (expected diffusion_pytorch_model.safetensors or model.safetensors)");
  }
  if (!pickles.empty()) {
    Status refused = check_weights_file_format(c.folder / pickles[0]);
    return invalid_argument(where + ": only pickle weights (" + join(pickles) +
                            "): " + (refused ? std::string("refused") : refused.error().message));
  }
  return not_found(where + ": no weights in " + c.folder.string() +
                   " (expected diffusion_pytorch_model.safetensors, model.safetensors or a *.safetensors.index.json)");
}

}  // namespace

const DiffusersComponent* DiffusersFolder::find(std::string_view name) const {
  auto it = std::lower_bound(components.begin(), components.end(), name,
                             [](const DiffusersComponent& c, std::string_view n) { return c.name < n; });
  return it != components.end() && it->name == name ? &*it : nullptr;
}

Expected<DiffusersFolder> read_diffusers_folder(const fs::path& root, bool require_weights) {
  const std::string r = root.string();
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return not_found(r + ": diffusers model folder does not exist");
  const fs::path index_path = root / "model_index.json";
  if (!fs::is_regular_file(index_path, ec))
    return not_found(r + ": not a diffusers model folder: " + index_path.string() + " does not exist");
  TP_ASSIGN_OR_RETURN(json index, detail::read_json_object_file(index_path, kMaxJsonFileBytes));

  DiffusersFolder out;
  out.root = root;
  auto class_it = index.find("_class_name");
  if (class_it == index.end() || !class_it->is_string())
    return invalid_argument(index_path.string() + ": \"_class_name\" is missing or not a string");
  out.class_name = class_it->get<std::string>();
  if (auto v = index.find("_diffusers_version"); v != index.end() && v->is_string())
    out.diffusers_version = v->get<std::string>();

  for (const auto& [name, entry] : index.items()) {  // std::map order: sorted by name
    if (name.starts_with("_")) continue;
    const std::string where = r + ": component " + detail::quote(name);
    const bool is_pair = entry.is_array() && entry.size() == 2;
    if (entry.is_null() || (is_pair && entry[0].is_null() && entry[1].is_null())) {
      out.absent_components.push_back(name);
      continue;
    }
    if (!entry.is_array()) continue;  // a pipeline option such as "requires_safety_checker": true
    if (!is_pair || !entry[0].is_string() || !entry[1].is_string())
      return invalid_argument(where + ": model_index.json entry must be [library, class] or null");
    if (!is_component_name(name)) return invalid_argument(where + ": not a valid component name");

    DiffusersComponent c;
    c.name = name;
    c.library = entry[0].get<std::string>();
    c.class_name = entry[1].get<std::string>();
    c.folder = root / name;
    if (!fs::is_directory(c.folder, ec))
      return not_found(where + " (class " + detail::quote(c.class_name) + " from " + detail::quote(c.library) +
                       ") is listed in model_index.json but " + c.folder.string() + " does not exist");
    TP_TRY(in_component(read_config(c), where));
    if (c.config_file == "config.json") {
      Status chosen = choose_weights(c, where);
      if (!chosen && (require_weights || chosen.error().code != ErrorCode::kNotFound))
        return tl::unexpected(std::move(chosen).error());
    }
    out.components.push_back(std::move(c));
  }
  return out;
}

}  // namespace v0
}  // namespace tp
