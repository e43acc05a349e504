// Benchmark helpers: a seeded random-weight WavTokenizer at any dims (default: the released 75 tok/s model),
// the multiply-accumulate count of each layer of a model, a core's FMA peak, and process memory readings.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "io/config.h"
#include "io/weights.h"
#include "models/model.h"
#include "models/models.h"

namespace wavtok {

// The released WavTokenizer dims: encoder n_filters 32, dimension 512, ratios [8, 5, 4, 2], 2 LSTM layers;
// one codebook 4096 x 512; backbone 768 / 2304 / 12 layers, AdaLayerNorm with 4 embeddings; n_fft 1280, hop 320.
ModelConfig released_dims_config();
// The causal variant of a WavTokenizer config (docs/STREAMING.md "Causal models"): the same sizes with a causal,
// zero-padded encoder, a causal backbone (per-channel affines, attention over the past 48 frames) and an iSTFT of
// n_fft = 2 * hop. What `bench --streaming realtime` measures when its model is the random-weight one.
ModelConfig causal_variant(ModelConfig c);

// Every inference tensor of a WavTokenizer with config `c` (names as in released checkpoints, weight norm
// folded), filled like PyTorch's default init: conv/linear/LSTM weights and biases uniform in +-1/sqrt(fan_in),
// norm scales 1 and shifts 0, layer-scale gamma 1/num_layers, codebook N(0, 1). Same seed, same weights.
WeightMap random_wavtokenizer_weights(const ModelConfig& c, uint64_t seed = 1234);
std::shared_ptr<const Model> random_wavtokenizer(const ModelConfig& c, uint64_t seed = 1234);

// One layer (or group of identical layers) of a model and its cost for an input of a given length.
struct LayerCost {
  std::string stage;  // "encoder", "vq", "backbone", "head"
  std::string name;   // e.g. "conv 32->64 k8 s4"
  std::string kind;   // "conv", "dwconv", "lstm", "linear", "attention", "vq", "istft"
  int64_t count = 1;  // identical layers at this position
  double macs = 0;    // multiply-accumulates of all `count` layers for this input
  // Shape of one of them, enough to rebuild and time it alone (time_layer):
  int cin = 0, cout = 0, k = 1, stride = 1, dilation = 1, groups = 1;
  bool channels_last = false;
  int64_t len = 0;  // conv: padded input length; linear/attention/vq/istft: rows (frames); lstm: steps
};

// Layers of a WavTokenizer (arch "wavtokenizer") for `samples` input samples (encoder side) and
// `frames` frames (decoder side). The iSTFT's FFT work is counted as 2.5 * n log2 n flops per frame (reported
// as MACs / 2 to share the unit); elementwise work (norms, activations, padding) is not counted.
std::vector<LayerCost> wavtokenizer_layer_costs(const ModelConfig& c, int64_t samples, int64_t frames);

// Builds one layer of `l`'s shape with random weights and returns the median wall time (seconds) of one
// forward call over `repeats` calls after a warm-up call (which creates the oneDNN primitive).
double time_layer(const LayerCost& l, int repeats);

struct FmaPeak {
  std::string isa;          // "avx512f" / "avx2+fma" / "scalar"
  double gflops_1core = 0;  // one thread
  double gflops_all = 0;    // `threads` threads at once (sum)
  int threads = 1;
};
// Runs independent FMA chains (12 accumulators of the widest vector the build targets) for about
// `seconds` / 2 per measurement, the best of 10 (other processes may share the core).
FmaPeak measure_fma_peak(int threads, double seconds = 0.2);

// This process's peak resident set (VmHWM) and current resident set (VmRSS) in MiB, from /proc/self/status.
double peak_rss_mib();
double current_rss_mib();
// Resets VmHWM to the current RSS (writes 5 to /proc/self/clear_refs); false where the kernel refuses.
bool reset_peak_rss();

// CPU model name and the flags that matter here (avx2, fma, avx512f, avx512_bf16, amx*), from /proc/cpuinfo.
std::string cpu_model_name();
std::vector<std::string> cpu_relevant_flags();

}  // namespace wavtok
