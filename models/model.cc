#include "models/model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "core/error.h"
#include "core/progress.h"
#include "core/util.h"
#include "io/model_file.h"
#include "models/causal_stream.h"
#include "models/quantized.h"
#include "models/seanet_stream.h"
#include "models/vocos.h"
#include "vq/rvq.h"

namespace wavtok {

struct Model::Graph {
  SeanetEncoder encoder;
  ResidualVQ vq;
  VocosBackbone backbone;
  IstftHead head;
  SeanetDecoder decoder;
};

namespace {

constexpr const char* kWtEncoder = "feature_extractor.encodec.encoder.";
constexpr const char* kWtQuantizer = "feature_extractor.encodec.quantizer.vq.layers.";

uint64_t fnv1a(const void* data, size_t n, uint64_t h = 1469598103934665603ull) {
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

bool is_wavtokenizer_weights(const WeightMap& w) {
  for (const auto& [k, v] : w.all())
    if (k.rfind(kWtEncoder, 0) == 0) return true;
  return false;
}

std::string quantizer_prefix(const ModelConfig& c) {
  return c.arch == Arch::WavTokenizer ? kWtQuantizer : "quantizer.vq.layers.";
}

// Number of consecutive NAME.N entries that exist.
int count_indexed(const WeightMap& w, const std::string& prefix, const std::string& suffix) {
  int n = 0;
  while (w.has(prefix + std::to_string(n) + suffix)) ++n;
  return n;
}

}  // namespace

std::string codebook_tensor_name(const ModelConfig& cfg, int level) {
  return quantizer_prefix(cfg) + std::to_string(level) + "._codebook.embed";
}

void infer_dims_from_weights(ModelConfig& cfg, const WeightMap& w) {
  const std::string enc = encoder_weight_prefix(cfg.arch);
  const Tensor& first = w.get(enc + "model.0.conv.conv.weight");
  if (first.ndim() != 3) throw Error(w.origin() + ": encoder first conv is not 3-D");
  cfg.encoder.n_filters = static_cast<int>(first.dim(0));
  cfg.encoder.channels = static_cast<int>(first.dim(1));
  cfg.encoder.kernel_size = static_cast<int>(first.dim(2));
  // Last encoder conv: the highest model.N.conv.conv.weight index.
  int last = -1;
  for (int i = 0; i < 256; ++i)
    if (w.has(enc + "model." + std::to_string(i) + ".conv.conv.weight")) last = i;
  const Tensor& lastw = w.get(enc + "model." + std::to_string(last) + ".conv.conv.weight");
  cfg.encoder.dimension = static_cast<int>(lastw.dim(0));
  cfg.encoder.last_kernel_size = static_cast<int>(lastw.dim(2));
  const std::string q = quantizer_prefix(cfg);
  const int nq = count_indexed(w, q, "._codebook.embed");
  if (nq == 0) throw Error(w.origin() + ": no codebooks found (" + q + "0._codebook.embed)");
  const Tensor& cb = w.get(q + "0._codebook.embed");
  if (cb.ndim() != 2) throw Error(w.origin() + ": codebook is not 2-D");
  if (cfg.arch == Arch::EnCodec) {
    cfg.quantizer.n_q = nq;
    cfg.quantizer.bins = static_cast<int>(cb.dim(0));
  }
  cfg.quantizer.dim = static_cast<int>(cb.dim(1));
  if (cfg.quantizer.n_q > nq)
    throw Error(w.origin() + ": config asks for " + std::to_string(cfg.quantizer.n_q) + " codebooks, checkpoint has " +
                std::to_string(nq));
  if (cb.dim(0) != cfg.quantizer.bins)
    throw Error(w.origin() + ": config says " + std::to_string(cfg.quantizer.bins) +
                " codebook entries, checkpoint has " + std::to_string(cb.dim(0)));
  if (cfg.quantizer.dim != cfg.encoder.dimension)
    throw Error(w.origin() + ": codebook width " + std::to_string(cfg.quantizer.dim) +
                " differs from the encoder output " + std::to_string(cfg.encoder.dimension));
}

namespace {

// EnCodec plain state dicts come without a config: infer the SEANet layout from the tensors.
ModelConfig infer_encodec_config(const WeightMap& w) {
  ModelConfig c;
  c.arch = Arch::EnCodec;
  c.encoder.causal = true;
  c.encoder.pad_mode = "reflect";  // EnCodec's default pad_mode, also for its causal convs
  // Strided encoder convs have kernel 2 * ratio; their order gives the (reversed) ratios.
  std::vector<int> enc_ratios;
  for (int i = 1; i < 256; ++i) {
    const std::string n = "encoder.model." + std::to_string(i) + ".conv.conv.weight";
    if (!w.has(n)) continue;
    const Tensor& t = w.get(n);
    if (t.dim(0) == 2 * t.dim(1) && t.dim(2) % 2 == 0) enc_ratios.push_back(static_cast<int>(t.dim(2) / 2));
  }
  if (enc_ratios.empty()) throw Error(w.origin() + ": cannot find the encoder's strided convs");
  c.encoder.ratios.assign(enc_ratios.rbegin(), enc_ratios.rend());
  c.encoder.lstm_layers = 0;
  for (int i = 0; i < 256; ++i)
    if (w.has("encoder.model." + std::to_string(i) + ".lstm.weight_ih_l0"))
      c.encoder.lstm_layers = count_indexed(w, "encoder.model." + std::to_string(i) + ".lstm.weight_ih_l", "");
  c.encoder.true_skip = !w.has("encoder.model.1.shortcut.conv.conv.weight");
  infer_dims_from_weights(c, w);
  c.decoder = c.encoder;
  c.sample_rate = 24000;
  for (int nq = 2; nq <= c.quantizer.n_q; nq *= 2) c.bandwidths.push_back(std::round(c.kbps(nq) * 100) / 100);
  return c;
}

}  // namespace

std::shared_ptr<const Model> Model::load(const std::string& path, const LoadOptions& opts) {
  if (!std::filesystem::exists(path)) throw Error(path + ": model file not found");
  ModelConfig cfg;
  WeightMap w;
  if (is_model_file(path)) {
    read_model_file(path, cfg, w);
  } else {
    w = load_checkpoint_weights(path);
    w.fold_weight_norm();
    if (is_wavtokenizer_weights(w)) {
      std::string cfg_path = opts.config_path;
      if (cfg_path.empty()) {
        auto beside = std::filesystem::path(path).parent_path() / "config.yaml";
        if (!std::filesystem::exists(beside))
          throw Error(path + ": WavTokenizer checkpoint needs its config.yaml (give --config)");
        cfg_path = beside.string();
      }
      cfg = parse_release_config(cfg_path);
      infer_dims_from_weights(cfg, w);
      // Keep only the inference model's tensors.
      WeightMap kept(path);
      for (auto& [k, v] : w.all()) {
        const bool enc = k.rfind(kWtEncoder, 0) == 0;
        const bool cb = k.rfind(kWtQuantizer, 0) == 0 && ends_with(k, "._codebook.embed");
        if (enc || cb || k.rfind("backbone.", 0) == 0 || k.rfind("head.out.", 0) == 0) kept.set(k, std::move(v));
      }
      w = std::move(kept);
    } else if (w.has("encoder.model.0.conv.conv.weight") && w.has("quantizer.vq.layers.0._codebook.embed")) {
      cfg = infer_encodec_config(w);
      if (!opts.config_path.empty()) {
        ModelConfig over = ModelConfig::from_yaml(
            [&] {
              std::ifstream f(opts.config_path);
              if (!f) throw Error(opts.config_path + ": cannot open config");
              return std::string(std::istreambuf_iterator<char>(f), {});
            }(),
            opts.config_path);
        over.arch = Arch::EnCodec;
        infer_dims_from_weights(over, w);
        cfg = over;
      }
      WeightMap kept(path);
      for (auto& [k, v] : w.all()) {
        const bool cb = ends_with(k, "._codebook.embed");
        if (k.rfind("encoder.", 0) == 0 || k.rfind("decoder.", 0) == 0 || (k.rfind("quantizer.", 0) == 0 && cb))
          kept.set(k, std::move(v));
      }
      w = std::move(kept);
    } else {
      throw Error(path + ": checkpoint holds neither a WavTokenizer nor an EnCodec model (no encoder tensors found)");
    }
    validate_config(cfg, path);
  }
  return from_weights(std::move(cfg), std::move(w));
}

std::shared_ptr<const Model> Model::from_weights(ModelConfig config, WeightMap weights) {
  std::shared_ptr<Model> m(new Model());
  m->cfg_ = std::move(config);
  m->weights_ = std::move(weights);
  m->weights_.make_read_only();  // the layers share these buffers rather than copy them
  m->build();
  return m;
}

void Model::build() {
  validate_config(cfg_, weights_.origin());
  const bool wt = cfg_.arch == Arch::WavTokenizer;
  // Adapter tensors only on the layers that take them (models/quantized.h), checked before any layer reads its own:
  // the decoder's Linear layers, backbone.embed and the pos_net ResnetBlock convs.
  if (wt) {
    const int layers = cfg_.vocos.num_layers;
    check_adapters_used(weights_, [layers](const std::string& n) {
      if (n == "head.out" || n == "backbone.embed") return true;
      for (int i = 0; i < layers; ++i)
        for (const char* p : {".pwconv1", ".pwconv2"})
          if (n == "backbone.convnext." + std::to_string(i) + p) return true;
      for (const char* b : {"0", "1", "3", "4"})
        for (const char* c : {".conv1", ".conv2"})
          if (n == std::string("backbone.pos_net.") + b + c) return true;
      return false;
    });
  } else {
    check_adapters_used(weights_, [](const std::string&) { return false; });
  }
  // Per-token activation markers only on convolutions (each Conv1d then checks its own layout).
  check_act_dynamic_used(weights_, [this](const std::string& n) {
    return weights_.has(n + ".weight") && weights_.get(n + ".weight").ndim() == 3 && !is_transposed_conv_layer(n);
  });
  g_->encoder = SeanetEncoder(weights_, encoder_weight_prefix(cfg_.arch), cfg_.encoder);
  std::vector<Tensor> books;
  for (int i = 0; i < cfg_.quantizer.n_q; ++i)
    books.push_back(
        Tensor::share_or_copy(weights_.get(codebook_tensor_name(cfg_, i), {cfg_.quantizer.bins, cfg_.quantizer.dim})));
  g_->vq = ResidualVQ(std::move(books));
  setup_vq_search(g_->vq, weights_);  // int8 search when a quantized file asks for it (models/quantized.h)
  if (wt) {
    if (cfg_.vocos.input_channels != cfg_.quantizer.dim)
      throw Error(weights_.origin() + ": backbone input_channels " + std::to_string(cfg_.vocos.input_channels) +
                  " differs from the codebook width " + std::to_string(cfg_.quantizer.dim));
    g_->backbone = VocosBackbone(weights_, "backbone.", cfg_.vocos);
    g_->head = IstftHead(weights_, "head.", cfg_.vocos);
  } else {
    g_->decoder = SeanetDecoder(weights_, "decoder.", cfg_.decoder);
  }
  // Fingerprint: config + codebooks, identical for a checkpoint and its converted file.
  const std::string y = cfg_.to_yaml();
  uint64_t h = fnv1a(y.data(), y.size());
  for (int i = 0; i < g_->vq.n_q(); ++i)
    h = fnv1a(g_->vq.codebook(i).data(), g_->vq.codebook(i).numel() * sizeof(float), h);
  fingerprint_ = h;
}

int64_t Model::parameter_count() const { return weights_.parameter_count(); }

void Model::set_decode_window_frames(int64_t w) const {
  if (w < 16) throw Error("decode window must be at least 16 frames");
  decode_window_ = w;
}

struct Model::EncodeStream {
  explicit EncodeStream(const SeanetEncoder& enc) : stream(enc) {}
  SeanetEncoderStream stream;
  Tensor part;  // [frames, D] that became final in one chunk
};

Model::Model() : g_(std::make_unique<Graph>()) {}
Model::~Model() = default;
const ResidualVQ& Model::quantizer() const { return g_->vq; }
const SeanetEncoder& Model::seanet_encoder() const { return g_->encoder; }
bool Model::encoder_bf16_convs() const { return g_->encoder.bf16_convs(); }
std::string encoder_weight_prefix(Arch arch) { return arch == Arch::WavTokenizer ? kWtEncoder : "encoder."; }
const VocosBackbone& Model::backbone() const { return g_->backbone; }
const IstftHead& Model::head() const { return g_->head; }
const SeanetDecoder& Model::seanet_decoder() const { return g_->decoder; }

struct DecodeScratch::Buffers {
  IstftHead::Scratch head;
  EmbedReuse embed;
};

DecodeScratch::DecodeScratch() : buffers(std::make_unique<Buffers>()) {}
DecodeScratch::~DecodeScratch() = default;
DecodeScratch::DecodeScratch(DecodeScratch&&) noexcept = default;
DecodeScratch& DecodeScratch::operator=(DecodeScratch&&) noexcept = default;
size_t DecodeScratch::capacity_floats() const {
  return hidden.capacity() + buffers->embed.rows.capacity() + buffers->head.spec.capacity() +
         buffers->head.re.capacity() + buffers->head.im.capacity();
}
void DecodeScratch::new_stream() { buffers->embed.n = 0; }

void Model::set_encode_chunk_frames(int64_t f) const {
  if (f < 0) throw Error("encode chunk must be 0 (one pass) or a positive number of frames");
  encode_chunk_ = f;
}

void check_finite_audio(const float* audio, int64_t n, const std::string& what, int64_t first_index) {
  bool bad = false;
  for (int64_t i = 0; i < n; ++i) bad |= !(std::fabs(audio[i]) <= 3.4e38f);  // NaN compares false
  if (!bad) return;
  int64_t i = 0;
  while (std::fabs(audio[i]) <= 3.4e38f) ++i;
  throw Error(what + ": sample " + std::to_string(first_index + i) + " is " +
              (std::isnan(audio[i]) ? "NaN" : "infinite") + "; audio must be finite");
}

Tensor Model::encode_latents(const float* audio, int64_t samples) const {
  if (samples < 1) throw Error("cannot encode empty audio");
  check_finite_audio(audio, samples, "encode");
  const bool stepped = frame_stepped();  // a causal WavTokenizer: one hop per step, as its streams (causal_stream.h)
  const int64_t chunk = (stepped ? std::max<int64_t>(encode_chunk_.load(), 1) : encode_chunk_.load()) * hop();
  if (!stepped && (chunk == 0 || samples <= 8 * chunk)) return g_->encoder.forward(audio, samples);
  std::unique_ptr<EncodeStream> es;
  {
    std::lock_guard<std::mutex> lock(encode_pool_mu_);
    if (!encode_pool_.empty()) {
      es = std::move(encode_pool_.back());
      encode_pool_.pop_back();
    }
  }
  if (!es) es = std::make_unique<EncodeStream>(g_->encoder);
  std::vector<float> lat;  // [F, D], all chunks
  lat.reserve(size_t(samples / hop() + 2) * size_t(cfg_.encoder.dimension));
  // A run that throws leaves its stream mid-way: it is dropped (es goes out of scope), not returned to the pool.
  for (int64_t pos = 0; pos < samples;) {
    const int64_t n = std::min(chunk, samples - pos);
    pos += n;
    if (stepped) {
      encode_per_hop(es->stream, audio + pos - n, n, pos == samples, hop(), es->part, lat);
    } else {
      es->stream.run(audio + pos - n, n, pos == samples, es->part);
      lat.insert(lat.end(), es->part.data(), es->part.data() + es->part.numel());
    }
    report_progress("encode", double(pos) / double(samples));
  }
  {
    std::lock_guard<std::mutex> lock(encode_pool_mu_);
    encode_pool_.push_back(std::move(es));
  }
  const int64_t D = cfg_.encoder.dimension, F = int64_t(lat.size()) / D;
  Tensor out({D, F});
  for (int64_t f = 0; f < F; ++f)
    for (int64_t d = 0; d < D; ++d) out[d * F + f] = lat[size_t(f * D + d)];
  return out;
}

Tokens Model::quantize(const Tensor& latents, int n_q, Tensor* quantized) const {
  if (latents.ndim() != 2 || latents.dim(0) != g_->vq.dim())
    throw Error("latent has shape " + shape_str(latents.shape()) + ", this model expects [" +
                std::to_string(g_->vq.dim()) + ", frames]");
  Tokens t;
  t.n_q = n_q;
  t.frames = latents.dim(1);
  t.codes.resize(size_t(n_q) * t.frames);
  if (quantized) quantized->resize({g_->vq.dim(), t.frames});
  if (frame_stepped()) {  // frame by frame, as its streams search
    std::vector<float> column;
    quantize_per_frame(g_->vq, latents.data(), t.frames, n_q, t.codes.data(), quantized ? quantized->data() : nullptr,
                       column);
    return t;
  }
  g_->vq.encode(latents.data(), t.frames, n_q, t.codes.data(), quantized ? quantized->data() : nullptr);
  return t;
}

Tensor Model::dequantize(const Tokens& tokens) const {
  if (tokens.n_q > g_->vq.n_q())
    throw Error("tokens use " + std::to_string(tokens.n_q) + " codebooks, this model has " +
                std::to_string(g_->vq.n_q()));
  Tensor out({g_->vq.dim(), tokens.frames});
  g_->vq.decode(tokens.codes.data(), tokens.frames, tokens.n_q, out.data());
  return out;
}

namespace {

void check_latent_shape(const Tensor& features, int dim) {
  if (features.ndim() != 2 || features.dim(0) != dim)
    throw Error("latent has shape " + shape_str(features.shape()) + ", this model expects [" + std::to_string(dim) +
                ", frames]");
  if (features.dim(1) < 1) throw Error("cannot decode zero frames");
}

}  // namespace

void Model::decode_latents(const Tensor& features, int bandwidth_id, std::vector<float>& audio,
                           DecodeScratch& scratch) const {
  check_latent_shape(features, g_->vq.dim());
  const int64_t F = features.dim(1);
  if (cfg_.arch == Arch::EnCodec || F > decode_window_.load() || frame_stepped()) {
    audio = decode_latents(features, bandwidth_id);
    return;
  }
  g_->backbone.forward(features.data(), F, bandwidth_id, scratch.hidden);
  g_->head.forward(scratch.hidden.data(), F, audio, scratch.buffers->head);
}

int64_t Model::decode_latents_from(const Tensor& features, int bandwidth_id, int64_t need_from, int64_t need_to,
                                   std::vector<float>& audio, DecodeScratch& scratch, int64_t window_start) const {
  check_latent_shape(features, g_->vq.dim());
  const int64_t F = features.dim(1);
  if (need_from < 0 || need_from >= need_to || need_to > F)
    throw Error("decode: wanted frames [" + std::to_string(need_from) + ", " + std::to_string(need_to) + ") of a " +
                std::to_string(F) + "-frame window");
  if (cfg_.arch == Arch::EnCodec || F > decode_window_.load() || frame_stepped()) {
    audio = decode_latents(features, bandwidth_id);
    return 0;
  }
  // The head's overlap-add needs its reach of hidden rows beyond the wanted frames; the backbone adds its own.
  const int64_t from = std::max<int64_t>(0, need_from - g_->head.reach()), to = std::min(F, need_to + g_->head.reach());
  g_->backbone.forward(features.data(), F, bandwidth_id, scratch.hidden, from, to,
                       window_start >= 0 ? &scratch.buffers->embed : nullptr, std::max<int64_t>(window_start, 0));
  g_->head.forward(scratch.hidden.data(), to - from, audio, scratch.buffers->head);
  return from;
}

std::vector<float> Model::decode_latents(const Tensor& features, int bandwidth_id) const {
  check_latent_shape(features, g_->vq.dim());
  const int64_t F = features.dim(1);
  if (cfg_.arch == Arch::EnCodec) {
    Tensor y = g_->decoder.forward(features.data(), F);
    return std::vector<float>(y.data(), y.data() + y.numel());
  }
  if (frame_stepped()) {  // causal: frame by frame, exactly as a stream decodes (no window limit: memory is bounded)
    CausalDecoderStream stream(g_->backbone, g_->head, bandwidth_id);
    std::vector<float> out;
    out.reserve(size_t(F * cfg_.hop()));
    stream.run_channels_first(features.data(), F, true, out);
    return out;
  }
  const int64_t window = decode_window_.load();
  if (F <= window) {
    Tensor h = g_->backbone.forward(features.data(), F, bandwidth_id);
    return g_->head.forward(h.data(), F);
  }
  // Long inputs: windows of decode_window_ frames overlapping by `ov` frames on each side; each
  // window's audio is cross-faded (linear) with its neighbour over the overlap.
  const int64_t D = g_->vq.dim(), hop = cfg_.hop();
  const int64_t ov = std::max<int64_t>(8, window / 16);
  const int64_t step = window - 2 * ov;
  std::vector<float> out(F * hop, 0.0f), weight(F * hop, 0.0f);
  const int64_t windows = (F + step - 1) / step;
  for (int64_t start = 0; start < F; start += step) {
    const int64_t wi = start / step;
    // Within a window, progress counts as that window's share of the whole.
    ProgressScope scaled([wi, windows, outer = current_progress()](const char* phase, double f) {
      if (outer) outer(phase, (double(wi) + f) / double(windows));
    });
    const int64_t a = std::max<int64_t>(0, start - ov), b = std::min<int64_t>(F, start + step + ov);
    Tensor win({D, b - a});
    for (int64_t d = 0; d < D; ++d)
      std::copy(features.data() + d * F + a, features.data() + d * F + b, win.data() + d * (b - a));
    Tensor h = g_->backbone.forward(win.data(), b - a, bandwidth_id);
    std::vector<float> y = g_->head.forward(h.data(), b - a);
    const int64_t fade = 2 * ov * hop;
    for (int64_t i = 0; i < (b - a) * hop; ++i) {
      const int64_t pos = a * hop + i;
      float wgt = 1.0f;
      if (a > 0 && i < fade) wgt = float(i + 1) / float(fade + 1);
      const int64_t from_end = (b - a) * hop - 1 - i;
      if (b < F && from_end < fade) wgt = std::min(wgt, float(from_end + 1) / float(fade + 1));
      out[pos] += wgt * y[i];
      weight[pos] += wgt;
    }
    if (b == F) break;
  }
  for (size_t i = 0; i < out.size(); ++i) out[i] /= weight[i];
  return out;
}

Tokens Model::encode(const float* audio, int64_t samples, int n_q) const {
  Tensor lat = encode_latents(audio, samples);
  return quantize(lat, n_q);
}

std::vector<float> Model::decode(const Tokens& tokens, int bandwidth_id) const {
  return decode_latents(dequantize(tokens), bandwidth_id);
}

TokenFile token_file_for(const Model& m, Tokens tokens) {
  TokenFile tf;
  tf.tokens = std::move(tokens);
  tf.fingerprint = m.fingerprint();
  tf.parent_fingerprint = m.parent_fingerprint();
  tf.sample_rate = m.sample_rate();
  tf.hop = m.hop();
  tf.bins = m.config().quantizer.bins;
  return tf;
}

std::string check_tokens_for_model(const TokenFile& t, const Model& m, const std::string& path) {
  std::string warning;
  if (t.fingerprint != 0) {
    const TokenLineage l = token_lineage(t.fingerprint, t.parent_fingerprint, m.fingerprint(), m.parent_fingerprint());
    if (l == TokenLineage::Unrelated) throw Error(path + ": " + lineage_message(l, t.fingerprint, m.fingerprint()));
    if (l != TokenLineage::Same) warning = path + ": " + lineage_message(l, t.fingerprint, m.fingerprint());
  }
  if (t.sample_rate && (t.sample_rate != m.sample_rate() || t.hop != m.hop()))
    throw Error(path + ": tokens are at " + std::to_string(t.sample_rate) + " Hz / hop " + std::to_string(t.hop) +
                ", this model runs at " + std::to_string(m.sample_rate()) + " Hz / hop " + std::to_string(m.hop()));
  if (t.tokens.n_q > m.max_n_q())
    throw Error(path + ": tokens use " + std::to_string(t.tokens.n_q) + " codebooks, this model has only " +
                std::to_string(m.max_n_q()));
  if (t.tokens.frames < 1) throw Error(path + ": token file holds no frames");
  const int bins = m.config().quantizer.bins;
  for (size_t i = 0; i < t.tokens.codes.size(); ++i)
    if (t.tokens.codes[i] < 0 || t.tokens.codes[i] >= bins)
      throw Error(path + ": token " + std::to_string(t.tokens.codes[i]) + " at index " + std::to_string(i) +
                  " is outside this model's codebook (0.." + std::to_string(bins - 1) + ")");
  return warning;
}

}  // namespace wavtok
