// Resolution of Hugging Face model ids inside the local hub cache.
#include "weights/hf_cache.h"

#include <cctype>
#include <cstdlib>
#include <string>

#include "util/file.h"

namespace tp {
inline namespace v0 {
namespace {

namespace fs = std::filesystem;

// A set, non-empty environment variable, or nullptr.
const char* env(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? v : nullptr;
}

bool is_word_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

bool is_commit_hash(std::string_view s) {
  if (s.size() != 40) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

// "" when `part` (one side of org/name) is well formed, else why not.
std::string check_id_part(std::string_view part) {
  if (part.empty()) return "an empty name part";
  if (part.size() > 96) return "a name part longer than 96 characters";
  for (char c : part)
    if (!is_word_char(c) && c != '-' && c != '.') return std::string("the character '") + c + "'";
  if (!is_word_char(part.front()) || !is_word_char(part.back()))
    return "a name part that starts or ends with '-' or '.'";
  if (part.find("--") != std::string_view::npos || part.find("..") != std::string_view::npos) return "'--' or '..'";
  return "";
}

Status validate_revision(std::string_view revision) {
  const std::string r(revision);
  bool ok = !r.empty() && r.size() <= 255 && r.front() != '/' && r.back() != '/' && r.find("..") == std::string::npos &&
            r.find("//") == std::string::npos;
  for (char c : r) ok = ok && (is_word_char(c) || c == '-' || c == '.' || c == '/');
  if (!ok) return invalid_argument("'" + r + "' is not a valid revision (a branch, tag or commit hash)");
  return ok_status();
}

}  // namespace

Expected<fs::path> hf_hub_cache_dir() {
  if (const char* v = env("HF_HUB_CACHE")) return fs::path(v);
  if (const char* v = env("HUGGINGFACE_HUB_CACHE")) return fs::path(v);
  if (const char* v = env("HF_HOME")) return fs::path(v) / "hub";
  if (const char* v = env("XDG_CACHE_HOME")) return fs::path(v) / "huggingface" / "hub";
  if (const char* v = env("HOME")) return fs::path(v) / ".cache" / "huggingface" / "hub";
  return failed_precondition(
      "cannot locate the Hugging Face cache: none of HF_HUB_CACHE, HF_HOME, XDG_CACHE_HOME or HOME is set");
}

Status validate_hf_model_id(std::string_view model_id) {
  const std::string id(model_id);
  const size_t slash = id.find('/');
  if (slash != std::string::npos && id.find('/', slash + 1) != std::string::npos)
    return invalid_argument("'" + id + "' is not a valid Hugging Face model id: it has more than one '/'");
  std::string why = check_id_part(slash == std::string::npos ? model_id : model_id.substr(0, slash));
  if (why.empty() && slash != std::string::npos) why = check_id_part(model_id.substr(slash + 1));
  if (!why.empty()) return invalid_argument("'" + id + "' is not a valid Hugging Face model id: it has " + why);
  return ok_status();
}

Expected<fs::path> resolve_hf_snapshot(std::string_view model_id, std::string_view revision) {
  TP_TRY(validate_hf_model_id(model_id));
  TP_TRY(validate_revision(revision));
  TP_ASSIGN_OR_RETURN(fs::path cache, hf_hub_cache_dir());
  const std::string id(model_id), rev(revision);
  std::string folder_name = "models--" + id;
  if (size_t slash = folder_name.find('/'); slash != std::string::npos) folder_name.replace(slash, 1, "--");
  const fs::path repo = cache / folder_name;

  std::error_code ec;
  if (!fs::is_directory(repo, ec))
    return not_found("model '" + id + "' is not in the Hugging Face cache: " + repo.string() +
                     " does not exist (twistedpic never downloads; fetch it with `huggingface-cli download " + id +
                     "`)");

  std::string commit = rev;
  if (!is_commit_hash(rev)) {
    const fs::path ref = repo / "refs" / rev;
    if (!fs::is_regular_file(ref, ec))
      return not_found("model '" + id + "': revision '" + rev + "' is not in the cache: " + ref.string() +
                       " does not exist");
    TP_ASSIGN_OR_RETURN(commit, detail::read_text_file(ref, 4096));
    while (!commit.empty() && std::isspace(static_cast<unsigned char>(commit.back()))) commit.pop_back();
    if (!is_commit_hash(commit))
      return data_loss("model '" + id + "': " + ref.string() + " does not hold a commit hash (corrupt cache?)");
  }
  const fs::path snapshot = repo / "snapshots" / commit;
  if (!fs::is_directory(snapshot, ec))
    return not_found("model '" + id + "': snapshot of revision '" + rev +
                     "' is not in the cache: " + snapshot.string() + " does not exist");
  return snapshot;
}

Expected<fs::path> resolve_model_source(std::string_view source) {
  if (source.empty()) return invalid_argument("empty model source: give a model folder or a Hugging Face model id");
  const fs::path path(source);
  std::error_code ec;
  if (fs::is_directory(path, ec)) return path;
  if (fs::exists(path, ec))
    return invalid_argument("model source '" + path.string() + "' is a file; give the model's folder or a model id");
  if (source.front() == '/' || source.front() == '.' || source.front() == '~')
    return not_found("model folder '" + path.string() + "' does not exist");
  if (Status id = validate_hf_model_id(source); !id)
    return invalid_argument("model source '" + std::string(source) +
                            "' is neither an existing folder nor a Hugging Face model id (" + id.error().message + ")");
  return resolve_hf_snapshot(source, "main");
}

}  // namespace v0
}  // namespace tp
