// TensorWeights and the transfer engine; TensorWeightBackend.
#include "weights/tensor_weights.h"

#include <algorithm>
#include <atomic>
#include <map>
#include <set>
#include <thread>

#include "weights/diffusers_folder.h"
#include "weights/hf_cache.h"
#include "twistedpic/log.h"
#include "weights/safetensors.h"
#include "util/file.h"

namespace tp {
inline namespace v0 {
namespace {

constexpr uint64_t kAlign = 256;

uint64_t align_up(uint64_t v) { return (v + kAlign - 1) / kAlign * kAlign; }

bool is_float(DType t) { return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16; }

// Where a piece to convert starts in the staging and scratch buffers: typed
// loads on a GPU need their element size, and 16 covers every dtype (and
// vector loads).
constexpr uint64_t kStageAlign = 16;

// A piece of one tensor inside a chunk.
struct Piece {
  size_t tensor;
  uint64_t chunk_offset;   // where it starts in the chunk's file bytes
  uint64_t stage_offset;   // where it starts in the staging buffer (kStageAlign-aligned when it converts)
  uint64_t tensor_offset;  // where it starts in the tensor, file side
  uint64_t length;         // file-side bytes
};

// A contiguous range of one file, read into a staging buffer with one pread
// per run of pieces that keep their relative places.
struct Chunk {
  size_t file;
  uint64_t begin;
  uint64_t length;        // file bytes
  uint64_t stage_length;  // staging bytes: length plus the padding that aligns converting pieces
  std::vector<Piece> pieces;
};

// Plans chunks of at most `chunk_bytes` staging bytes.
std::vector<Chunk> plan_chunks(const std::vector<WeightTensor>& tensors, uint64_t chunk_bytes) {
  std::vector<Chunk> chunks;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const WeightTensor& t = tensors[i];
    const bool converts = t.dtype != t.file_dtype;
    uint64_t file_bytes = t.bytes / dtype_size(t.dtype) * dtype_size(t.file_dtype);
    uint64_t done = 0;
    while (done < file_bytes || (file_bytes == 0 && done == 0)) {
      Chunk* c = chunks.empty() ? nullptr : &chunks.back();
      bool contiguous = c && c->file == t.file && c->begin + c->length == t.file_offset + done;
      uint64_t pad = contiguous && converts ? (kStageAlign - c->stage_length % kStageAlign) % kStageAlign : 0;
      if (!contiguous || c->stage_length + pad >= chunk_bytes) {
        chunks.push_back({t.file, t.file_offset + done, 0, 0, {}});
        c = &chunks.back();
        pad = 0;  // a staging buffer starts aligned
      }
      uint64_t take = std::min(file_bytes - done, chunk_bytes - c->stage_length - pad);
      if (take < file_bytes - done) {
        // A split tensor's pieces stay element-aligned: whole multiples of 8 bytes.
        take -= take % 8;
        if (take == 0) {
          chunks.push_back({t.file, t.file_offset + done, 0, 0, {}});
          continue;
        }
      }
      c->pieces.push_back({i, c->length, c->stage_length + pad, done, take});
      c->length += take;
      c->stage_length += pad + take;
      done += take;
      if (file_bytes == 0) break;
    }
  }
  return chunks;
}

// Reads a chunk into `buf`, each piece at its stage offset: one pread per run
// of pieces with the same shift between file and staging.
Status read_chunk(const detail::ReadOnlyFile& file, const Chunk& chunk, char* buf) {
  for (size_t a = 0; a < chunk.pieces.size();) {
    const Piece& first = chunk.pieces[a];
    size_t b = a + 1;
    uint64_t length = first.length;
    while (b < chunk.pieces.size() &&
           chunk.pieces[b].stage_offset - chunk.pieces[b].chunk_offset == first.stage_offset - first.chunk_offset) {
      length += chunk.pieces[b].length;
      ++b;
    }
    if (length) TP_TRY(file.read_at(chunk.begin + first.chunk_offset, length, buf + first.stage_offset));
    a = b;
  }
  return ok_status();
}

}  // namespace

// ---- TensorWeights ------------------------------------------------------------

Expected<std::unique_ptr<TensorWeights>> TensorWeights::open(std::vector<WeightFile> files, std::optional<DType> dtype,
                                                             std::shared_ptr<Device> device,
                                                             std::shared_ptr<PinnedPool> pool, TransferOptions options,
                                                             std::shared_ptr<ScratchPool> scratch) {
  if (!device || !pool) return invalid_argument("TensorWeights::open: a device and a pinned pool are required");
  if (files.empty()) return invalid_argument("TensorWeights::open: no weight files");
  if (options.chunk_bytes == 0 || options.chunk_bytes % 8 != 0 || options.chunk_bytes > pool->buffer_bytes())
    return invalid_argument("TransferOptions.chunk_bytes must be a positive multiple of 8, at most the pool's buffers");
  if (options.readers < 1) return invalid_argument("TransferOptions.readers must be at least 1");
  if (scratch && options.chunk_bytes > scratch->buffer_bytes())
    return invalid_argument("TransferOptions.chunk_bytes must be at most the scratch pool's buffers (" +
                            std::to_string(scratch->buffer_bytes()) + " bytes)");
  if (!scratch) scratch = std::make_shared<ScratchPool>(device, options.chunk_bytes, 2 * static_cast<size_t>(options.readers));
  if (dtype && !is_float(*dtype)) return invalid_argument("weights can be converted only to fp32, fp16 or bf16");
  std::unique_ptr<TensorWeights> w(new TensorWeights());
  std::set<std::string, std::less<>> names;
  for (size_t f = 0; f < files.size(); ++f) {
    // One open per file: the header read refuses pickles too.
    TP_ASSIGN_OR_RETURN(SafetensorsHeader header, read_safetensors_header(files[f].path));
    w->file_sizes_.push_back(header.data_offset + header.data_bytes);
    std::vector<SelectedTensor> selected;
    if (files[f].selection) {
      TP_ASSIGN_OR_RETURN(selected, select_tensors(header, *files[f].selection, files[f].path.string()));
    } else {
      for (const TensorInfo& info : header.tensors)
        selected.push_back({info.name, info.dtype, info.shape, info.begin, info.end, false});
    }
    for (SelectedTensor& info : selected) {
      WeightTensor t;
      t.name = files[f].prefix + info.name;
      t.file_dtype = info.dtype;
      t.dtype = dtype && is_float(info.dtype) ? *dtype : info.dtype;
      t.shape = std::move(info.shape);
      t.bytes = (info.end - info.begin) / dtype_size(info.dtype) * dtype_size(t.dtype);
      t.file = f;
      t.file_offset = header.data_offset + info.begin;
      t.transposed = info.transposed;
      if (!names.insert(t.name).second)
        return invalid_argument(files[f].path.string() + ": tensor '" + t.name + "' also appears in another file");
      w->tensors_.push_back(std::move(t));
    }
  }
  std::sort(w->tensors_.begin(), w->tensors_.end(), [](const WeightTensor& a, const WeightTensor& b) {
    return a.file != b.file ? a.file < b.file : a.file_offset < b.file_offset;
  });
  for (auto& t : w->tensors_) {
    t.offset = w->arena_bytes_;
    w->arena_bytes_ = align_up(w->arena_bytes_ + t.bytes);
  }
  w->files_ = std::move(files);
  w->dtype_ = dtype;
  w->device_ = std::move(device);
  w->pool_ = std::move(pool);
  w->scratch_ = std::move(scratch);
  w->options_ = options;
  return w;
}

TensorWeights::~TensorWeights() {
  drop_device();
  drop_host();
}

Expected<TensorWeights::Binding> TensorWeights::device_binding(const std::string& key,
                                                               const std::function<Expected<Binding>()>& make) const {
  std::lock_guard lock(bindings_mu_);
  if (!arena_) return failed_precondition("device_binding: the weights are not on the device");
  if (auto it = bindings_.find(key); it != bindings_.end()) return it->second;
  TP_ASSIGN_OR_RETURN(Binding made, make());
  bindings_.emplace(key, made);
  return made;
}

std::optional<DType> TensorWeights::compute_dtype() const {
  if (dtype_) return dtype_;
  for (const WeightTensor& t : tensors_)  // sorted in file order
    if (is_float(t.dtype) || t.dtype == DType::kF64) return t.dtype;
  return std::nullopt;
}

uint64_t TensorWeights::scratch_bytes_borrowed() const {
  if (device_->is_host_memory()) return 0;  // converts in place, on the host
  bool converts = false;
  for (const auto& t : tensors_) converts = converts || t.dtype != t.file_dtype;
  if (!converts) return 0;
  // As load_from_disk: one worker per chunk at most, two buffers each.
  const size_t chunks = plan_chunks(tensors_, options_.chunk_bytes).size();
  const size_t readers = std::min<size_t>(options_.readers, std::max<size_t>(chunks, 1));
  return 2 * readers * scratch_->buffer_bytes();
}

uint64_t TensorWeights::load_scratch_bytes() const {
  if (arena_ || host_) return 0;  // nothing to load, or a straight copy from the host tier
  const uint64_t borrowed = scratch_bytes_borrowed();
  return borrowed ? scratch_->missing_bytes(borrowed / scratch_->buffer_bytes()) : 0;
}

void TensorWeights::note_use(void* stream) const {
  if (arena_) device_->record_use(arena_, stream);
}

const WeightTensor* TensorWeights::find(std::string_view name) const {
  for (const auto& t : tensors_)
    if (t.name == name) return &t;
  return nullptr;
}

void TensorWeights::drop_device() {
  if (!arena_) return;
  {
    std::lock_guard lock(bindings_mu_);
    bindings_.clear();  // they point into the arena
  }
  device_->wait_for_uses(arena_);  // kernels queued by lease holders may still read it
  device_->free(arena_, arena_bytes_);
  arena_ = nullptr;
}

void TensorWeights::drop_host() {
  if (!host_) return;
  device_->free_pinned(host_, arena_bytes_);
  host_ = nullptr;
}

Status TensorWeights::copy_arena(void* dst, const void* src, bool to_device) {
  const int lanes = device_->lanes();
  const uint64_t piece = std::max<uint64_t>(align_up((arena_bytes_ + lanes - 1) / lanes), kAlign);
  Status st = ok_status();
  for (uint64_t off = 0; off < arena_bytes_ && st; off += piece) {
    uint64_t n = std::min(piece, arena_bytes_ - off);
    int lane = static_cast<int>(off / piece);
    st = to_device ? device_->copy_to_device(static_cast<char*>(dst) + off, static_cast<const char*>(src) + off, n, lane)
                   : device_->copy_to_host(static_cast<char*>(dst) + off, static_cast<const char*>(src) + off, n, lane);
  }
  for (int lane = 0; lane < lanes; ++lane) {
    Status s = device_->synchronize(lane);
    if (st && !s) st = s;
  }
  return st;
}

Status TensorWeights::load_to_device(const TransferContext& ctx) {
  if (arena_) return ok_status();
  if (ctx.cancelled()) return cancelled("loading was cancelled");
  if (!host_) return load_from_disk(ctx);
  TP_ASSIGN_OR_RETURN(arena_, device_->allocate(arena_bytes_));
  if (Status st = copy_arena(arena_, host_, true); !st) {
    drop_device();
    return st;
  }
  if (ctx.progress) ctx.progress(arena_bytes_, arena_bytes_);
  return ok_status();
}

Status TensorWeights::offload_to_host(const TransferContext& ctx) {
  if (!arena_) return failed_precondition("offload_to_host: the weights are not on the device");
  if (!host_) {
    if (ctx.cancelled()) return cancelled("offloading was cancelled");
    TP_ASSIGN_OR_RETURN(host_, device_->allocate_pinned(arena_bytes_));
    if (Status st = copy_arena(host_, arena_, false); !st) {
      drop_host();
      return st;
    }
  }
  drop_device();
  return ok_status();
}

Status TensorWeights::load_from_disk(const TransferContext& ctx) {
  std::vector<detail::ReadOnlyFile> files;
  for (size_t f = 0; f < files_.size(); ++f) {
    TP_ASSIGN_OR_RETURN(auto file, detail::ReadOnlyFile::open(files_[f].path));
    if (file.size() != file_sizes_[f])
      return data_loss(files_[f].path.string() + ": the file changed since it was opened (" +
                       std::to_string(file_sizes_[f]) + " bytes then, " + std::to_string(file.size()) + " now)");
    files.push_back(std::move(file));
  }
  TP_ASSIGN_OR_RETURN(arena_, device_->allocate(arena_bytes_));
  const std::vector<Chunk> chunks = plan_chunks(tensors_, options_.chunk_bytes);
  const bool host_memory = device_->is_host_memory();
  bool converts = false;
  for (const auto& t : tensors_) converts = converts || t.dtype != t.file_dtype;
  const int readers = static_cast<int>(std::min<size_t>(options_.readers, std::max<size_t>(chunks.size(), 1)));
  const uint64_t total = arena_bytes_;

  std::atomic<size_t> next{0};
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> done{0};
  std::mutex mu;  // guards `failure` and progress calls
  std::optional<Error> failure;
  auto fail = [&](Error e) {
    std::lock_guard<std::mutex> lock(mu);
    if (!failure) failure = std::move(e);
    stop = true;
  };

  auto worker = [&](int lane) {
    // Two staging buffers (and, to convert on a GPU, two device scratch
    // buffers from the device's pool): the read of one chunk overlaps the
    // copy of the previous one.
    void* staging[2] = {nullptr, nullptr};
    void* scratch[2] = {nullptr, nullptr};
    const bool direct = host_memory && !converts;  // read straight into the arena
    // Waits for this lane's copies before its buffers go back. Their failure
    // fails the load: for a model of one chunk this is the only wait after its copies.
    auto cleanup = [&] {
      if (Status st = device_->synchronize(lane); !st) fail(st.error());
      for (int b = 0; b < 2; ++b) {
        pool_->release(staging[b]);
        scratch_->release(scratch[b]);
      }
    };
    for (int b = 0; b < 2 && !direct; ++b) {
      auto s = pool_->acquire();
      if (!s) return fail(s.error()), cleanup();
      staging[b] = *s;
      if (converts && !host_memory) {
        auto d = scratch_->acquire();
        if (!d) return fail(d.error()), cleanup();
        scratch[b] = *d;
      }
    }
    for (int k = 0;; ++k) {
      size_t c = next.fetch_add(1);
      if (c >= chunks.size() || stop) break;
      if (ctx.cancelled()) return fail({ErrorCode::kCancelled, "loading was cancelled"}), cleanup();
      const Chunk& chunk = chunks[c];
      const detail::ReadOnlyFile& file = files[chunk.file];
      if (direct) {
        for (const Piece& p : chunk.pieces) {
          const WeightTensor& t = tensors_[p.tensor];
          Status st = file.read_at(chunk.begin + p.chunk_offset, p.length,
                                   static_cast<char*>(arena_) + t.offset + p.tensor_offset);
          if (!st) return fail(st.error()), cleanup();
        }
      } else {
        char* buf = static_cast<char*>(staging[k % 2]);
        if (Status st = read_chunk(file, chunk, buf); !st) return fail(st.error()), cleanup();
        // The previous chunk's copies (from the other buffer) finish before this one's start.
        if (Status st = device_->synchronize(lane); !st) return fail(st.error()), cleanup();
        for (const Piece& p : chunk.pieces) {
          const WeightTensor& t = tensors_[p.tensor];
          const uint64_t src_elem = dtype_size(t.file_dtype), dst_elem = dtype_size(t.dtype);
          char* dst = static_cast<char*>(arena_) + t.offset + p.tensor_offset / src_elem * dst_elem;  // element-aligned
          const char* src = buf + p.stage_offset;
          Status st = ok_status();
          if (t.dtype == t.file_dtype) {
            st = device_->copy_to_device(dst, src, p.length, lane);
          } else if (host_memory) {
            st = convert_on_host(src, t.file_dtype, dst, t.dtype, p.length / src_elem);
          } else {
            char* tmp = static_cast<char*>(scratch[k % 2]) + p.stage_offset;  // aligned for the kernel
            st = device_->copy_to_device(tmp, src, p.length, lane);
            if (st) st = device_->convert(tmp, t.file_dtype, dst, t.dtype, p.length / src_elem, lane);
          }
          if (!st) return fail(st.error()), cleanup();
        }
      }
      uint64_t now = done.fetch_add(chunk.length) + chunk.length;
      if (ctx.progress) {
        std::lock_guard<std::mutex> lock(mu);
        ctx.progress(std::min(now, total), total);
      }
    }
    cleanup();
  };

  std::vector<std::thread> threads;
  for (int r = 1; r < readers; ++r) threads.emplace_back(worker, r);
  worker(0);
  for (auto& t : threads) t.join();
  if (failure) {
    drop_device();
    return tl::unexpected(std::move(*failure));
  }
  return ok_status();
}

// ---- sources ------------------------------------------------------------------

Expected<std::vector<WeightFile>> model_weight_files(std::string_view source) {
  // One network's single weights file (ModelConfig::component_files: flux1-dev.safetensors).
  if (std::error_code file_ec; source.ends_with(".safetensors") && std::filesystem::is_regular_file(source, file_ec))
    return std::vector<WeightFile>{{std::filesystem::path(source), ""}};
  TP_ASSIGN_OR_RETURN(std::filesystem::path root, resolve_model_source(source));
  std::error_code ec;
  auto index_shards = [](const std::filesystem::path& index, const std::string& prefix) -> Expected<std::vector<WeightFile>> {
    TP_ASSIGN_OR_RETURN(ShardedIndex idx, read_safetensors_index(index));
    std::vector<WeightFile> out;
    for (const auto& shard : idx.shards) out.push_back({shard, prefix});
    return out;
  };
  if (std::filesystem::is_regular_file(root, ec)) {
    std::string name = root.filename().string();
    if (name.size() > 23 && name.ends_with(".safetensors.index.json")) return index_shards(root, "");
    return std::vector<WeightFile>{{root, ""}};  // its format is checked when its header is read
  }
  if (std::filesystem::exists(root / "model_index.json", ec)) {
    TP_ASSIGN_OR_RETURN(DiffusersFolder folder, read_diffusers_folder(root));
    std::vector<WeightFile> out;
    for (const auto& c : folder.components)
      for (const auto& f : c.weight_files) out.push_back({f, c.name + "/"});
    if (out.empty()) return not_found(root.string() + ": the diffusers folder has no component weights");
    return out;
  }
  std::vector<std::filesystem::path> plain, indexes, pickles;
  for (const auto& entry : std::filesystem::directory_iterator(root, ec)) {
    std::string name = entry.path().filename().string();
    if (name.ends_with(".safetensors.index.json")) indexes.push_back(entry.path());
    else if (name.ends_with(".safetensors")) plain.push_back(entry.path());
    else if (entry.is_regular_file(ec) && !check_weights_file_format(entry.path())) pickles.push_back(entry.path());
  }
  if (ec) return not_found(root.string() + ": cannot list the folder: " + ec.message());
  if (indexes.size() == 1) return index_shards(indexes[0], "");
  if (indexes.size() > 1) return invalid_argument(root.string() + ": more than one *.safetensors.index.json");
  if (!plain.empty()) {
    std::sort(plain.begin(), plain.end());
    std::vector<WeightFile> out;
    for (auto& p : plain) out.push_back({std::move(p), ""});
    return out;
  }
  if (!pickles.empty()) return tl::unexpected(check_weights_file_format(pickles[0]).error());
  return not_found(root.string() + ": no *.safetensors weights in the folder");
}

TensorWeightBackend::TensorWeightBackend(std::shared_ptr<Device> device, TransferOptions options)
    : device_(std::move(device)),
      options_(options),
      pool_(std::make_shared<PinnedPool>(device_, options.chunk_bytes, static_cast<size_t>(2 * options.readers))),
      scratch_(std::make_shared<ScratchPool>(device_, options.chunk_bytes, static_cast<size_t>(2 * options.readers))) {}

Expected<std::unique_ptr<ModelWeights>> TensorWeightBackend::open(const ModelConfig& config) {
  auto files = model_weight_files(config.source);
  if (!files) return make_error(files.error().code, "model '" + config.name + "': " + files.error().message);
  if (config.tensor_selection) {
    if (files->size() != 1)
      return invalid_argument("model '" + config.name + "': a tensor selection reads one file, not " +
                              std::to_string(files->size()) + " (" + config.source + ")");
    files->front().selection = config.tensor_selection;
  }
  auto weights = TensorWeights::open(std::move(*files), config.dtype, device_, pool_, options_, scratch_);
  if (!weights) return make_error(weights.error().code, "model '" + config.name + "': " + weights.error().message);
  return std::unique_ptr<ModelWeights>(std::move(*weights));
}

}  // namespace v0
}  // namespace tp
