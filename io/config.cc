#include "io/config.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <yaml-cpp/yaml.h>

#include "core/error.h"

namespace wavtok {

int SeanetConfig::hop() const {
  int h = 1;
  for (int r : ratios) h *= r;
  return h;
}

double ModelConfig::kbps(int n_q) const { return n_q * std::log2(double(quantizer.bins)) * frame_rate() / 1000.0; }

int ModelConfig::n_q_for_bandwidth(double kb) const {
  std::string avail;
  int best = 0;
  for (int nq = 1; nq <= quantizer.n_q; ++nq)
    if (std::abs(kbps(nq) - kb) < 0.02 * kb && (!best || std::abs(kbps(nq) - kb) < std::abs(kbps(best) - kb)))
      best = nq;
  if (best) return best;
  for (int nq = 1; nq <= quantizer.n_q; nq *= 2) {
    std::ostringstream s;
    s << kbps(nq);
    avail += (avail.empty() ? "" : ", ") + s.str();
  }
  std::ostringstream msg;
  msg << "bandwidth " << kb << " kbps is not available for this model (" << quantizer.n_q << " codebooks of "
      << quantizer.bins << " at " << frame_rate() << " Hz); choose one of: " << avail;
  throw Error(msg.str());
}

namespace {

YAML::Node seanet_node(const SeanetConfig& c) {
  YAML::Node n;
  n["channels"] = c.channels;
  n["dimension"] = c.dimension;
  n["n_filters"] = c.n_filters;
  n["n_residual_layers"] = c.n_residual_layers;
  n["ratios"] = c.ratios;
  n["ratios"].SetStyle(YAML::EmitterStyle::Flow);
  n["kernel_size"] = c.kernel_size;
  n["last_kernel_size"] = c.last_kernel_size;
  n["residual_kernel_size"] = c.residual_kernel_size;
  n["dilation_base"] = c.dilation_base;
  n["compress"] = c.compress;
  n["lstm_layers"] = c.lstm_layers;
  n["causal"] = c.causal;
  n["true_skip"] = c.true_skip;
  n["pad_mode"] = c.pad_mode;
  return n;
}

template <class T>
void get(const YAML::Node& n, const char* key, T& out) {
  if (n && n[key]) out = n[key].as<T>();
}

SeanetConfig seanet_from(const YAML::Node& n) {
  SeanetConfig c;
  get(n, "channels", c.channels);
  get(n, "dimension", c.dimension);
  get(n, "n_filters", c.n_filters);
  get(n, "n_residual_layers", c.n_residual_layers);
  get(n, "ratios", c.ratios);
  get(n, "kernel_size", c.kernel_size);
  get(n, "last_kernel_size", c.last_kernel_size);
  get(n, "residual_kernel_size", c.residual_kernel_size);
  get(n, "dilation_base", c.dilation_base);
  get(n, "compress", c.compress);
  get(n, "lstm_layers", c.lstm_layers);
  get(n, "causal", c.causal);
  get(n, "true_skip", c.true_skip);
  get(n, "pad_mode", c.pad_mode);
  return c;
}

void validate(const ModelConfig& c, const std::string& origin) {
  auto bad = [&](const std::string& what) { throw Error(origin + ": invalid model config: " + what); };
  if (c.sample_rate < 1000 || c.sample_rate > 192000) bad("sample_rate out of range");
  auto check_seanet = [&](const SeanetConfig& s, const char* name) {
    if (s.ratios.empty() || s.ratios.size() > 8) bad(std::string(name) + ".ratios must have 1..8 entries");
    for (int r : s.ratios)
      if (r < 1 || r > 64) bad(std::string(name) + ".ratios out of range");
    if (s.n_filters < 1 || s.dimension < 1 || s.n_filters > 4096 || s.dimension > 8192)
      bad(std::string(name) + " widths out of range");
    if (s.compress < 1 || s.n_residual_layers < 0 || s.n_residual_layers > 8 || s.lstm_layers < 0 || s.lstm_layers > 8)
      bad(std::string(name) + " layer counts out of range");
    if (s.pad_mode != "reflect" && s.pad_mode != "constant")
      bad(std::string(name) + ".pad_mode must be reflect or constant");
  };
  check_seanet(c.encoder, "encoder");
  if (c.quantizer.n_q < 1 || c.quantizer.n_q > 1024 || c.quantizer.bins < 2 || c.quantizer.bins > (1 << 20))
    bad("quantizer sizes out of range");
  if (c.arch == Arch::WavTokenizer) {
    const auto& v = c.vocos;
    if (v.dim < 1 || v.intermediate_dim < 1 || v.num_layers < 0 || v.num_layers > 256 || v.n_fft < 2 || v.hop < 1 ||
        v.n_fft % 2 || v.n_fft < v.hop || (v.n_fft - v.hop) % 2)
      bad("backbone/head sizes out of range");
    if (v.hop != c.hop())
      bad("head hop_length " + std::to_string(v.hop) + " differs from the encoder hop " + std::to_string(c.hop()));
    if (v.dim % 32) bad("backbone dim must be a multiple of 32 (GroupNorm with 32 groups)");
    if (v.pos_net_norm != "group" && v.pos_net_norm != "affine")
      bad("backbone pos_net_norm must be 'group' or 'affine', not '" + v.pos_net_norm + "'");
    if ((v.attention_left < 0) != (v.attention_right < 0) || v.attention_left > (1 << 24) ||
        v.attention_right > (1 << 24))
      bad("backbone attention_window must be [left, right] with 0 <= left, right <= 2^24");
    if (v.causal) {
      if (!c.encoder.causal) bad("a causal backbone needs a causal encoder (encoder.causal: true)");
      if (v.pos_net_norm != "affine")
        bad("a causal backbone needs pos_net_norm 'affine' (GroupNorm over time sees the future)");
      if (!v.attention_windowed() || v.attention_right != 0) bad("a causal backbone needs attention_window [left, 0]");
      if (v.n_fft > 3 * v.hop)
        bad("a causal model needs n_fft <= 3 * hop_length (its audio then needs one frame ahead)");
    }
  } else {
    check_seanet(c.decoder, "decoder");
  }
}

// pos_net_norm and attention_window (wavtok's streamable backbone, python/wavtok_ref/vocos.py): absent in
// upstream configs, which keep the defaults.
void read_backbone_extensions(const YAML::Node& b, VocosConfig& v, const std::string& origin) {
  get(b, "pos_net_norm", v.pos_net_norm);
  get(b, "causal", v.causal);
  if (v.pos_net_norm != "group" && v.pos_net_norm != "affine")
    throw Error(origin + ": backbone pos_net_norm must be 'group' or 'affine', not '" + v.pos_net_norm + "'");
  const YAML::Node w = b["attention_window"];
  if (w && !w.IsNull()) {
    if (!w.IsSequence() || w.size() != 2)
      throw Error(origin + ": backbone attention_window must be a list [left, right]");
    v.attention_left = w[0].as<int>();
    v.attention_right = w[1].as<int>();
    if (v.attention_left < 0 || v.attention_right < 0)
      throw Error(origin + ": backbone attention_window entries must be >= 0");
  }
}

}  // namespace

const char* arch_name(Arch a) { return a == Arch::EnCodec ? "encodec" : "wavtokenizer"; }

Arch parse_arch(const std::string& name, const std::string& origin) {
  if (name == "wavtokenizer") return Arch::WavTokenizer;
  if (name == "encodec") return Arch::EnCodec;
  throw Error(origin + ": invalid model config: unknown arch '" + name + "'");
}

std::string ModelConfig::to_yaml() const {
  YAML::Node n;
  n["arch"] = std::string(arch_name(arch));
  n["sample_rate"] = sample_rate;
  n["encoder"] = seanet_node(encoder);
  n["quantizer"]["n_q"] = quantizer.n_q;
  n["quantizer"]["bins"] = quantizer.bins;
  n["quantizer"]["dim"] = quantizer.dim;
  if (arch == Arch::WavTokenizer) {
    n["backbone"]["input_channels"] = vocos.input_channels;
    n["backbone"]["dim"] = vocos.dim;
    n["backbone"]["intermediate_dim"] = vocos.intermediate_dim;
    n["backbone"]["num_layers"] = vocos.num_layers;
    n["backbone"]["adanorm_num_embeddings"] = vocos.adanorm_num_embeddings;
    if (vocos.pos_net_norm != "group") n["backbone"]["pos_net_norm"] = vocos.pos_net_norm;
    if (vocos.causal) n["backbone"]["causal"] = true;
    if (vocos.attention_windowed()) {
      n["backbone"]["attention_window"].push_back(vocos.attention_left);
      n["backbone"]["attention_window"].push_back(vocos.attention_right);
      n["backbone"]["attention_window"].SetStyle(YAML::EmitterStyle::Flow);
    }
    n["head"]["n_fft"] = vocos.n_fft;
    n["head"]["hop_length"] = vocos.hop;
  } else {
    n["decoder"] = seanet_node(decoder);
  }
  n["bandwidths"] = bandwidths;
  n["bandwidths"].SetStyle(YAML::EmitterStyle::Flow);
  if (parent_fingerprint != 0) {
    char hex[24];
    std::snprintf(hex, sizeof hex, "0x%016llx", static_cast<unsigned long long>(parent_fingerprint));
    n["parent_fingerprint"] = std::string(hex);
  }
  YAML::Emitter e;
  e << n;
  return e.c_str();
}

ModelConfig ModelConfig::from_yaml(const std::string& text, const std::string& origin) {
  ModelConfig c;
  try {
    YAML::Node n = YAML::Load(text);
    if (!n.IsMap()) throw Error(origin + ": model config is not a YAML mapping");
    std::string arch = arch_name(c.arch);
    get(n, "arch", arch);
    c.arch = parse_arch(arch, origin);
    get(n, "sample_rate", c.sample_rate);
    c.encoder = seanet_from(n["encoder"]);
    get(n["quantizer"], "n_q", c.quantizer.n_q);
    get(n["quantizer"], "bins", c.quantizer.bins);
    get(n["quantizer"], "dim", c.quantizer.dim);
    if (c.arch == Arch::WavTokenizer) {
      auto b = n["backbone"];
      get(b, "input_channels", c.vocos.input_channels);
      get(b, "dim", c.vocos.dim);
      get(b, "intermediate_dim", c.vocos.intermediate_dim);
      get(b, "num_layers", c.vocos.num_layers);
      get(b, "adanorm_num_embeddings", c.vocos.adanorm_num_embeddings);
      read_backbone_extensions(b, c.vocos, origin);
      get(n["head"], "n_fft", c.vocos.n_fft);
      get(n["head"], "hop_length", c.vocos.hop);
    } else {
      c.decoder = seanet_from(n["decoder"]);
    }
    get(n, "bandwidths", c.bandwidths);
    if (const YAML::Node p = n["parent_fingerprint"]; p && !p.IsNull()) {
      // "0x" + 16 hex digits as written above; a decimal integer as a YAML 1.1 reader (PyYAML) re-writes it.
      const std::string s = p.as<std::string>();
      const bool hex = s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
      const std::string digits = hex ? s.substr(2) : s;
      const char* allowed = hex ? "0123456789abcdefABCDEF" : "0123456789";
      if (digits.empty() || digits.size() > (hex ? 16u : 20u) || digits.find_first_not_of(allowed) != std::string::npos)
        throw Error(origin + ": parent_fingerprint '" + s + "' is not a fingerprint (0x and 16 hex digits)");
      errno = 0;
      c.parent_fingerprint = std::strtoull(digits.c_str(), nullptr, hex ? 16 : 10);
      if (errno == ERANGE) throw Error(origin + ": parent_fingerprint '" + s + "' is out of range");
    }
  } catch (const YAML::Exception& e) {
    throw Error(origin + ": cannot parse model config: " + e.what());
  }
  validate(c, origin);
  return c;
}

ModelConfig parse_release_config(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw Error(path + ": cannot open config file");
  ModelConfig c;
  try {
    YAML::Node root = YAML::LoadFile(path);
    YAML::Node m = root["model"]["init_args"];
    if (!m || !m["feature_extractor"] || !m["backbone"] || !m["head"])
      throw Error(path + ": not a WavTokenizer config (model.init_args.feature_extractor/backbone/head missing)");
    c.arch = Arch::WavTokenizer;
    get(m, "sample_rate", c.sample_rate);
    YAML::Node fe = m["feature_extractor"]["init_args"];
    std::string cls = m["feature_extractor"]["class_path"].as<std::string>("");
    if (cls.find("EncodecFeatures") == std::string::npos)
      throw Error(path + ": feature extractor '" + cls + "' is not supported (only EncodecFeatures)");
    get(fe, "dowmsamples", c.encoder.ratios);
    get(fe, "num_quantizers", c.quantizer.n_q);
    get(fe, "vq_bins", c.quantizer.bins);
    get(fe, "bandwidths", c.bandwidths);
    // Upstream hard-codes these for the WavTokenizer encoder; wavtok's causal models (python/wavtok_ref) add
    // causal and pad_mode to the feature extractor's init_args.
    c.encoder.causal = false;
    c.encoder.pad_mode = "reflect";
    get(fe, "causal", c.encoder.causal);
    get(fe, "pad_mode", c.encoder.pad_mode);
    if (c.encoder.pad_mode == "zero") c.encoder.pad_mode = "constant";
    c.encoder.n_residual_layers = 1;
    c.encoder.lstm_layers = 2;
    c.encoder.true_skip = false;
    c.encoder.compress = 2;
    YAML::Node bb = m["backbone"]["init_args"];
    std::string bcls = m["backbone"]["class_path"].as<std::string>("");
    if (bcls.find("VocosBackbone") == std::string::npos)
      throw Error(path + ": backbone '" + bcls + "' is not supported (only VocosBackbone)");
    get(bb, "input_channels", c.vocos.input_channels);
    get(bb, "dim", c.vocos.dim);
    get(bb, "intermediate_dim", c.vocos.intermediate_dim);
    get(bb, "num_layers", c.vocos.num_layers);
    if (bb["adanorm_num_embeddings"] && !bb["adanorm_num_embeddings"].IsNull())
      c.vocos.adanorm_num_embeddings = bb["adanorm_num_embeddings"].as<int>();
    read_backbone_extensions(bb, c.vocos, path);
    YAML::Node hd = m["head"]["init_args"];
    std::string hcls = m["head"]["class_path"].as<std::string>("");
    if (hcls.find("ISTFTHead") == std::string::npos)
      throw Error(path + ": head '" + hcls + "' is not supported (only ISTFTHead)");
    get(hd, "n_fft", c.vocos.n_fft);
    get(hd, "hop_length", c.vocos.hop);
    std::string padding = "same";
    get(hd, "padding", padding);
    if (padding != "same") throw Error(path + ": ISTFT head padding '" + padding + "' is not supported (only 'same')");
  } catch (const YAML::Exception& e) {
    throw Error(path + ": cannot parse config: " + e.what());
  }
  return c;
}

void validate_config(const ModelConfig& c, const std::string& origin) { validate(c, origin); }

}  // namespace wavtok
