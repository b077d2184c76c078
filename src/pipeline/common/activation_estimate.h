// Private (pipeline): the device bytes a request's activations take on one
// network, estimated from the network's config, the request's shape and the
// dtype, for admission (AcquireOptions::workspace_bytes). Torch-free.
//
// The model: each estimate replays the network's forward pass as our C++
// networks run it (src/pipeline/common, sd3/, flux/, sdxl/), op by op, in a
// PeakTracker: every tensor an op allocates is added when it is made and
// dropped when the C++ code lets it go (a named local at the end of its scope,
// a temporary at the end of its full-expression). Views (reshape of a
// contiguous tensor, transpose, slice, chunk) cost nothing. Attention is
// scaled_dot_product_attention's flash kernel (CPU and CUDA): no L x L
// scores, only the output, the log-sum-exp and, on the CPU, per-thread
// blocks. The estimate of a stage counts what the stage allocates beyond what
// is live when its lease begins, the persistent tensors it leaves behind
// (embeddings, latents) included; the weights are not in it.
// docs/architecture.md ("Activations in admission") has the measured error.
//
// Threading: plain values and pure functions; PeakTracker is a value used by
// one thread.
#pragma once

#include <algorithm>
#include <cstdint>

#include "pipeline/common/network_configs.h"

namespace tp::nn {

// Where the activations live and in what element size.
struct ActivationTarget {
  int64_t elem_bytes = 2;  // the network's activations: 2 (fp16, bf16) or 4 (fp32)
  bool cpu = false;        // CPU kernels (per-thread attention blocks, convolution scratch)
  int64_t threads = 1;     // intra-op threads on the CPU (at::get_num_threads())
};

// The shape of a request, as the pipelines batch it.
struct RequestShape {
  int64_t width = 0, height = 0;
  int64_t prompts = 1, images_per_prompt = 1;  // batch = prompts x images_per_prompt
  bool cfg = false;                            // the denoiser runs twice the batch (negatives first)
  bool encode_negatives = false;               // the text encoders run on the negatives too
  int64_t max_sequence_length = 0;             // T5's tokens
  int64_t batch() const { return prompts * images_per_prompt; }
  int64_t texts() const { return prompts * (encode_negatives ? 2 : 1); }
  int64_t runs() const { return batch() * (cfg ? 2 : 1); }
};

// A simulated allocator: the bytes live now and the most ever live.
class PeakTracker {
 public:
  uint64_t add(uint64_t bytes) {
    live_ += bytes;
    peak_ = std::max(peak_, live_);
    return bytes;
  }
  void drop(uint64_t bytes) { live_ -= std::min(live_, bytes); }
  // Allocated and freed at once (an op's scratch).
  void spike(uint64_t bytes) {
    add(bytes);
    drop(bytes);
  }
  uint64_t live() const { return live_; }
  uint64_t peak() const { return peak_; }

 private:
  uint64_t live_ = 0, peak_ = 0;
};

// The estimate handed to admission: the replayed peak plus 1/16 and 8 KiB,
// for what the replay leaves out (small tensors, kernels' own scratch).
inline uint64_t with_margin(uint64_t peak) { return peak + peak / 16 + 8192; }

// Bytes of `n` elements of `elem` bytes.
inline uint64_t bytes_of(int64_t n, int64_t elem) { return static_cast<uint64_t>(n) * static_cast<uint64_t>(elem); }

// Flash attention over (B, H, Lq, D) x (B, H, Lk, D): adds the output (left
// live, returned) and, as a spike, the log-sum-exp and the CPU blocks.
uint64_t attention_into(PeakTracker& t, int64_t batch, int64_t heads, int64_t lq, int64_t lk, int64_t head_dim,
                        const ActivationTarget& target);

// A linear layer on a (rows, in) slice of a larger tensor, as the joint
// attentions' slices are: the input made contiguous (a spike) and the output
// (added, returned).
uint64_t sliced_linear_into(PeakTracker& t, int64_t rows, int64_t in, int64_t out, const ActivationTarget& target);
// rms_norm (layers.cpp) over `elements`: the output (added, returned) and its fp32 temporaries.
uint64_t rms_into(PeakTracker& t, int64_t elements, const ActivationTarget& target);
// x * (1 + scale) + shift: the output (added, returned).
uint64_t modulate_into(PeakTracker& t, uint64_t bytes);
// x + gate * y, the old x dropped: the new x (added, returned).
uint64_t gated_residual_into(PeakTracker& t, uint64_t x, uint64_t bytes);
// The flow-matching Euler update of one step after the denoiser's output
// (`out` bytes, live): the guidance mix, the fp32 update, the new latents.
// Leaves the new latents live in place of `latents`.
void euler_update_into(PeakTracker& t, uint64_t out, uint64_t latents, int64_t latent_elements, bool cfg,
                       const ActivationTarget& target);

// LayerNorm / GroupNorm on the CPU and CUDA: the output (added, returned)
// plus the per-row mean and rstd (a spike).
uint64_t norm_into(PeakTracker& t, int64_t elements, int64_t rows, const ActivationTarget& target);

// A convolution's output (added, returned) and its scratch (a spike): im2col
// or the oneDNN reorders on the CPU.
// h, w: the output's; the input is `stride` times larger.
uint64_t conv_into(PeakTracker& t, int64_t batch, int64_t in_ch, int64_t out_ch, int64_t h, int64_t w, int64_t kernel,
                   const ActivationTarget& target, int64_t stride = 1);

// CLIP text encoder on (batch, length) ids, its penultimate state and pooled
// output left live (the ids too, as the pipelines make them in the stage).
uint64_t clip_activation_bytes(const ClipConfig& c, int64_t batch, int64_t length, const ActivationTarget& target);
// The bytes of what CLIP leaves live: its penultimate state and pooled output.
uint64_t clip_output_bytes(const ClipConfig& c, int64_t batch, int64_t length, const ActivationTarget& target);
// T5 encoder on (batch, length) ids, its last state left live.
uint64_t t5_activation_bytes(const T5Config& c, int64_t batch, int64_t length, const ActivationTarget& target);
// The VAE decoder on (batch, latent_channels, h, w) latents, the pixels and
// the RGB8 images left live. `latents_elem_bytes`: the latents' element size
// as the denoiser leaves them (a VAE in another dtype converts them).
uint64_t vae_decode_activation_bytes(const VaeConfig& c, int64_t batch, int64_t h, int64_t w,
                                     int64_t latents_elem_bytes, const ActivationTarget& target);

}  // namespace tp::nn
