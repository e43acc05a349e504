// Model hyper-parameters: read from a release's config.yaml, inferred from tensor shapes, or stored
// in the engine's own model file (as YAML text).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace wavtok {

struct SeanetConfig {
  int channels = 1;
  int dimension = 512;
  int n_filters = 32;
  int n_residual_layers = 1;
  std::vector<int> ratios = {8, 5, 4, 2};  // decoder order; the encoder applies them reversed
  int kernel_size = 7;
  int last_kernel_size = 7;
  int residual_kernel_size = 3;
  int dilation_base = 2;
  int compress = 2;
  int lstm_layers = 2;
  bool causal = false;
  bool true_skip = false;
  std::string pad_mode = "reflect";  // "reflect" or "constant"
  int hop() const;
};

struct QuantizerConfig {
  int n_q = 1;
  int bins = 4096;
  int dim = 512;
};

struct VocosConfig {
  int input_channels = 512;
  int dim = 768;
  int intermediate_dim = 2304;
  int num_layers = 12;
  int adanorm_num_embeddings = 0;  // 0: plain LayerNorm
  // wavtok extensions (docs/STREAMING.md, "streamable models"); the defaults are upstream's architecture.
  std::string pos_net_norm = "group";  // "group": GroupNorm over time; "affine": per-channel x * w + b
  int attention_left = -1;             // >= 0: query t attends keys t - left .. t + right only
  int attention_right = -1;
  bool attention_windowed() const { return attention_left >= 0; }
  // A backbone without statistics or attention over the whole input: a bounded window decodes it exactly.
  bool local() const { return pos_net_norm == "affine" && attention_windowed(); }
  // Frames of past latents that can reach a frame's audio through a local backbone: embed conv (3), four
  // pos_net ResnetBlocks (1 + 1 each), the attention window, the ConvNeXt depthwise convs (3 each) and the iSTFT
  // frames overlapping a hop (n_fft / hop). Past that, more context changes nothing.
  int local_left_context() const { return 3 + 8 + attention_left + 3 * num_layers + (n_fft + hop - 1) / hop; }
  int n_fft = 1280;
  int hop = 320;
  // A causal backbone and head (docs/STREAMING.md, "Causal models"): every convolution pads on the left only,
  // attention_window is [left, 0], pos_net_norm "affine", and the iSTFT has n_fft <= 3 * hop, so frame k's audio
  // needs frames <= k + 1. Needs a causal encoder (ModelConfig::causal()).
  bool causal = false;
  int istft_pad() const { return (n_fft - hop) / 2; }  // samples the 'same'-padded iSTFT trims at the start
};

// The model architecture: WavTokenizer (SEANet + VQ + Vocos/iSTFT) or EnCodec (SEANet + RVQ + SEANet). Files
// and configs name it "wavtokenizer" / "encodec".
enum class Arch { WavTokenizer, EnCodec };
const char* arch_name(Arch a);
// The architecture named `name`; throws an Error "ORIGIN: invalid model config: unknown arch 'NAME'" otherwise.
Arch parse_arch(const std::string& name, const std::string& origin);

struct ModelConfig {
  Arch arch = Arch::WavTokenizer;
  int sample_rate = 24000;
  SeanetConfig encoder;
  QuantizerConfig quantizer;
  VocosConfig vocos;               // arch == wavtokenizer
  SeanetConfig decoder;            // arch == encodec
  std::vector<double> bandwidths;  // kbps choices (encodec) / bandwidth ids' labels (wavtokenizer)
  // Lineage (`wavtok adapt`, codec/adapt.h): the fingerprint of the model this one was adapted from, 0 for none.
  // Stored in the YAML only when set, so models without a parent keep their bytes and fingerprints.
  uint64_t parent_fingerprint = 0;

  int hop() const { return encoder.hop(); }
  // Every part looks ahead at most the iSTFT's one hop: streaming is exact (models/causal_stream.h).
  bool causal() const { return encoder.causal && (arch == Arch::WavTokenizer ? vocos.causal : decoder.causal); }
  double frame_rate() const { return double(sample_rate) / hop(); }
  // kbps of n_q codebooks at this frame rate.
  double kbps(int n_q) const;
  // Codebooks needed for a bandwidth; throws listing the available ones when absent.
  int n_q_for_bandwidth(double kbps) const;

  std::string to_yaml() const;
  static ModelConfig from_yaml(const std::string& text, const std::string& origin);
};

// Parses a WavTokenizer release config.yaml (model.init_args.feature_extractor/backbone/head).
// Encoder n_filters/dimension are not in it: the caller fills them from tensor shapes.
ModelConfig parse_release_config(const std::string& path);

// Throws naming `origin` when sizes are out of range or inconsistent.
void validate_config(const ModelConfig& c, const std::string& origin);

}  // namespace wavtok
