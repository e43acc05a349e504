#include "apps/bench/bench_model.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>

#include "core/error.h"
#include "dsp/istft.h"
#include "nn/layers.h"
#include "vq/rvq.h"

namespace wavtok {
namespace {

// splitmix64: tiny, fast and identical on every platform (std:: distributions are not).
struct Rng {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  float uniform() { return float((next() >> 40) * (1.0 / 16777216.0)); }  // [0, 1)
  float sym(float bound) { return (2.0f * uniform() - 1.0f) * bound; }
  float normal() {
    const double u1 = ((next() >> 11) + 1.0) * (1.0 / 9007199254740993.0),
                 u2 = (next() >> 11) * (1.0 / 9007199254740992.0);
    return float(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
  }
};

class Filler {
 public:
  Filler(WeightMap& w, uint64_t seed) : w_(w), rng_{seed} {}
  // Weight of fan_in inputs per output and its bias: uniform +-1/sqrt(fan_in) (PyTorch's default init).
  void layer(const std::string& name, std::vector<int64_t> wshape, int64_t fan_in, bool bias = true) {
    const float b = 1.0f / std::sqrt(float(fan_in));
    uniform(name + ".weight", std::move(wshape), b);
    if (bias) uniform(name + ".bias", {w_.get(name + ".weight").dim(0)}, b);
  }
  void uniform(const std::string& name, std::vector<int64_t> shape, float bound) {
    Tensor t(std::move(shape));
    for (int64_t i = 0; i < t.numel(); ++i) t[i] = rng_.sym(bound);
    w_.set(name, std::move(t));
  }
  void constant(const std::string& name, std::vector<int64_t> shape, float v) {
    Tensor t(std::move(shape));
    std::fill(t.data(), t.data() + t.numel(), v);
    w_.set(name, std::move(t));
  }
  void normal(const std::string& name, std::vector<int64_t> shape) {
    Tensor t(std::move(shape));
    for (int64_t i = 0; i < t.numel(); ++i) t[i] = rng_.normal();
    w_.set(name, std::move(t));
  }

 private:
  WeightMap& w_;
  Rng rng_;
};

}  // namespace

ModelConfig released_dims_config() {
  ModelConfig c;
  c.arch = Arch::WavTokenizer;
  c.sample_rate = 24000;
  c.encoder = SeanetConfig{};  // n_filters 32, dimension 512, ratios [8, 5, 4, 2], 2 LSTM layers, reflect
  c.quantizer = QuantizerConfig{1, 4096, 512};
  c.vocos = VocosConfig{};
  c.vocos.input_channels = 512;
  c.vocos.dim = 768;
  c.vocos.intermediate_dim = 2304;
  c.vocos.num_layers = 12;
  c.vocos.adanorm_num_embeddings = 4;
  c.vocos.n_fft = 1280;
  c.vocos.hop = 320;
  c.bandwidths = {6.6, 6.6, 6.6, 6.6};
  return c;
}

ModelConfig causal_variant(ModelConfig c) {
  c.encoder.causal = true;
  c.encoder.pad_mode = "constant";
  c.vocos.causal = true;
  c.vocos.pos_net_norm = "affine";
  c.vocos.attention_left = 48;
  c.vocos.attention_right = 0;
  c.vocos.n_fft = 2 * c.vocos.hop;
  return c;
}

WeightMap random_wavtokenizer_weights(const ModelConfig& c, uint64_t seed) {
  if (c.arch != Arch::WavTokenizer) throw Error("random model: only arch wavtokenizer is supported");
  WeightMap w("random WavTokenizer (seed " + std::to_string(seed) + ")");
  Filler f(w, seed);
  const SeanetConfig& e = c.encoder;
  const std::string enc = "feature_extractor.encodec.encoder.model.";
  int idx = 0, mult = 1;
  auto conv = [&](int i, int cin, int cout, int k) {
    f.layer(enc + std::to_string(i) + ".conv.conv", {cout, cin, k}, int64_t(cin) * k);
  };
  conv(idx++, e.channels, e.n_filters, e.kernel_size);
  for (auto it = e.ratios.rbegin(); it != e.ratios.rend(); ++it) {
    const int dim = mult * e.n_filters;
    for (int j = 0; j < e.n_residual_layers; ++j) {
      const std::string n = enc + std::to_string(idx++);
      const int hidden = dim / e.compress;
      f.layer(n + ".block.1.conv.conv", {hidden, dim, e.residual_kernel_size}, int64_t(dim) * e.residual_kernel_size);
      f.layer(n + ".block.3.conv.conv", {dim, hidden, 1}, hidden);
      if (!e.true_skip) f.layer(n + ".shortcut.conv.conv", {dim, dim, 1}, dim);
    }
    idx++;  // ELU
    conv(idx++, dim, 2 * dim, *it * 2);
    mult *= 2;
  }
  const int top = mult * e.n_filters;
  if (e.lstm_layers > 0) {
    const std::string n = enc + std::to_string(idx++) + ".lstm.";
    const float b = 1.0f / std::sqrt(float(top));
    for (int l = 0; l < e.lstm_layers; ++l) {
      const std::string s = std::to_string(l);
      f.uniform(n + "weight_ih_l" + s, {4 * top, top}, b);
      f.uniform(n + "weight_hh_l" + s, {4 * top, top}, b);
      f.uniform(n + "bias_ih_l" + s, {4 * top}, b);
      f.uniform(n + "bias_hh_l" + s, {4 * top}, b);
    }
  }
  idx++;  // ELU
  conv(idx++, top, e.dimension, e.last_kernel_size);
  for (int q = 0; q < c.quantizer.n_q; ++q)
    f.normal("feature_extractor.encodec.quantizer.vq.layers." + std::to_string(q) + "._codebook.embed",
             {c.quantizer.bins, c.quantizer.dim});

  const VocosConfig& v = c.vocos;
  const int D = v.dim;
  f.layer("backbone.embed", {D, v.input_channels, 7}, int64_t(v.input_channels) * 7);
  auto norm = [&](const std::string& n) {
    f.constant(n + ".weight", {D}, 1.0f);
    f.constant(n + ".bias", {D}, 0.0f);
  };
  auto adanorm = [&](const std::string& n) {
    if (v.adanorm_num_embeddings > 0) {
      f.constant(n + ".scale.weight", {v.adanorm_num_embeddings, D}, 1.0f);
      f.constant(n + ".shift.weight", {v.adanorm_num_embeddings, D}, 0.0f);
    } else {
      norm(n);
    }
  };
  for (int i : {0, 1, 3, 4}) {
    const std::string n = "backbone.pos_net." + std::to_string(i);
    norm(n + ".norm1");
    norm(n + ".norm2");
    f.layer(n + ".conv1", {D, D, 3}, int64_t(D) * 3);
    f.layer(n + ".conv2", {D, D, 3}, int64_t(D) * 3);
  }
  norm("backbone.pos_net.2.norm");
  for (const char* p : {"q", "k", "v", "proj_out"}) f.layer(std::string("backbone.pos_net.2.") + p, {D, D, 1}, D);
  norm("backbone.pos_net.5");
  adanorm("backbone.norm");
  for (int i = 0; i < v.num_layers; ++i) {
    const std::string n = "backbone.convnext." + std::to_string(i);
    f.layer(n + ".dwconv", {D, 1, 7}, 7);
    adanorm(n + ".norm");
    f.layer(n + ".pwconv1", {v.intermediate_dim, D}, D);
    f.layer(n + ".pwconv2", {D, v.intermediate_dim}, v.intermediate_dim);
    f.constant(n + ".gamma", {D}, 1.0f / std::max(1, v.num_layers));
  }
  norm("backbone.final_layer_norm");
  f.layer("head.out", {v.n_fft + 2, D}, D);
  return w;
}

std::shared_ptr<const Model> random_wavtokenizer(const ModelConfig& c, uint64_t seed) {
  return Model::from_weights(c, random_wavtokenizer_weights(c, seed));
}

std::vector<LayerCost> wavtokenizer_layer_costs(const ModelConfig& c, int64_t samples, int64_t frames) {
  std::vector<LayerCost> out;
  auto conv = [&](const std::string& stage, const std::string& suffix, int cin, int cout, int k, int s, int d,
                  int groups, bool cl, int64_t padded_len, int64_t count) {
    LayerCost l;
    l.stage = stage;
    l.kind = groups > 1 ? "dwconv" : "conv";
    l.name =
        (groups > 1 ? "dwconv " + std::to_string(cin) : "conv " + std::to_string(cin) + "->" + std::to_string(cout)) +
        " k" + std::to_string(k) + (s > 1 ? " s" + std::to_string(s) : "") + (d > 1 ? " d" + std::to_string(d) : "") +
        suffix;
    l.cin = cin, l.cout = cout, l.k = k, l.stride = s, l.dilation = d, l.groups = groups, l.channels_last = cl;
    l.len = padded_len;
    l.count = count;
    const int64_t tout = (padded_len - int64_t(d) * (k - 1) - 1) / s + 1;
    l.macs = double(count) * double(cin / groups) * k * cout * tout;
    out.push_back(l);
  };
  auto other = [&](const std::string& stage, const std::string& name, const std::string& kind, int cin, int cout,
                   int64_t len, int64_t count, double macs) {
    LayerCost l;
    l.stage = stage, l.name = name, l.kind = kind, l.cin = cin, l.cout = cout, l.len = len, l.count = count,
    l.macs = macs;
    out.push_back(l);
  };
  // SConv1d (non-causal or causal, same amount): pads k_eff - stride, plus extra so the windows cover the input.
  auto sconv_padded = [](int64_t T, int k, int s, int d) {
    const int64_t keff = int64_t(d) * (k - 1) + 1;
    const int64_t frames = (T - s + s - 1) / s + 1;  // ceil((T - keff + (keff - s)) / s) + 1
    return (frames - 1) * s + keff;
  };
  const SeanetConfig& e = c.encoder;
  int64_t T = samples;
  conv("encoder", "", e.channels, e.n_filters, e.kernel_size, 1, 1, 1, false, sconv_padded(T, e.kernel_size, 1, 1), 1);
  int mult = 1;
  for (auto it = e.ratios.rbegin(); it != e.ratios.rend(); ++it) {
    const int dim = mult * e.n_filters, hidden = dim / e.compress;
    int dil = 1;
    for (int j = 0; j < e.n_residual_layers; ++j, dil *= e.dilation_base) {
      conv("encoder", "", dim, hidden, e.residual_kernel_size, 1, dil, 1, false,
           sconv_padded(T, e.residual_kernel_size, 1, dil), 1);
      conv("encoder", "", hidden, dim, 1, 1, 1, 1, false, T, 1);
      if (!e.true_skip) conv("encoder", " (shortcut)", dim, dim, 1, 1, 1, 1, false, T, 1);
    }
    const int64_t padded = sconv_padded(T, 2 * *it, *it, 1);
    conv("encoder", "", dim, 2 * dim, 2 * *it, *it, 1, 1, false, padded, 1);
    T = (padded - 2 * *it) / *it + 1;
    mult *= 2;
  }
  const int top = mult * e.n_filters;
  if (e.lstm_layers > 0)
    other("encoder", "lstm " + std::to_string(top) + " x" + std::to_string(e.lstm_layers) + " layers", "lstm", top, top,
          T, 1, double(e.lstm_layers) * 4.0 * top * (2.0 * top) * T);
  conv("encoder", "", top, e.dimension, e.last_kernel_size, 1, 1, 1, false, sconv_padded(T, e.last_kernel_size, 1, 1),
       1);
  other("vq", "vq search " + std::to_string(c.quantizer.bins) + " x " + std::to_string(c.quantizer.dim), "vq",
        c.quantizer.dim, c.quantizer.bins, T, c.quantizer.n_q,
        double(c.quantizer.n_q) * c.quantizer.bins * c.quantizer.dim * T);

  const VocosConfig& v = c.vocos;
  const int64_t F = frames;
  const int D = v.dim;
  conv("backbone", " (embed)", v.input_channels, D, 7, 1, 1, 1, true, F + 6, 1);
  conv("backbone", " (pos_net)", D, D, 3, 1, 1, 1, true, F + 2, 8);
  other("backbone", "linear " + std::to_string(D) + "->" + std::to_string(D) + " (q,k,v,proj)", "linear", D, D, F, 4,
        4.0 * D * D * F);
  other("backbone", "attention core T x T", "attention", D, D, F, 1, 2.0 * double(F) * F * D);
  conv("backbone", "", D, D, 7, 1, 1, D, true, F + 6, v.num_layers);
  other("backbone", "linear " + std::to_string(D) + "->" + std::to_string(v.intermediate_dim) + " +gelu", "linear", D,
        v.intermediate_dim, F, v.num_layers, double(v.num_layers) * D * v.intermediate_dim * F);
  other("backbone", "linear " + std::to_string(v.intermediate_dim) + "->" + std::to_string(D), "linear",
        v.intermediate_dim, D, F, v.num_layers, double(v.num_layers) * D * v.intermediate_dim * F);
  other("head", "linear " + std::to_string(D) + "->" + std::to_string(v.n_fft + 2), "linear", D, v.n_fft + 2, F, 1,
        double(D) * (v.n_fft + 2) * F);
  other("head", "istft n_fft " + std::to_string(v.n_fft) + " hop " + std::to_string(v.hop), "istft", v.n_fft, v.hop, F,
        1, 0.5 * 2.5 * v.n_fft * std::log2(double(v.n_fft)) * F);
  return out;
}

double time_layer(const LayerCost& l, int repeats) {
  Rng rng{777};
  auto rnd = [&](std::vector<int64_t> shape, float bound) {
    Tensor t(std::move(shape));
    for (int64_t i = 0; i < t.numel(); ++i) t[i] = rng.sym(bound);
    return t;
  };
  std::function<void()> fn;
  std::vector<std::shared_ptr<void>> keep;  // objects the closure uses
  auto hold = [&](auto p) {
    keep.push_back(p);
    return p.get();
  };
  if (l.kind == "conv" || l.kind == "dwconv") {
    auto* conv = hold(
        std::make_shared<Conv1d>(rnd({l.cout, l.cin / l.groups, l.k}, 1.0f / std::sqrt(float(l.cin / l.groups * l.k))),
                                 rnd({l.cout}, 0.1f), l.stride, l.dilation, l.groups, l.channels_last));
    auto* x = hold(std::make_shared<Tensor>(rnd({l.cin, l.len}, 1.0f)));
    auto* y = hold(std::make_shared<Tensor>(std::vector<int64_t>{l.cout, conv->out_len(l.len)}));
    fn = [=] { conv->forward(x->data(), l.len, y->data()); };
  } else if (l.kind == "linear") {
    const bool gelu = l.name.find("gelu") != std::string::npos;
    auto* lin = hold(std::make_shared<Linear>(rnd({l.cout, l.cin}, 1.0f / std::sqrt(float(l.cin))), rnd({l.cout}, 0.1f),
                                              gelu ? Act::Gelu : Act::None));
    auto* x = hold(std::make_shared<Tensor>(rnd({l.len, l.cin}, 1.0f)));
    auto* y = hold(std::make_shared<Tensor>(std::vector<int64_t>{l.len, l.cout}));
    fn = [=] { lin->forward(x->data(), l.len, y->data()); };
  } else if (l.kind == "lstm") {
    const int layers = 2;
    std::vector<Tensor> wih, whh, bih, bhh;
    const float b = 1.0f / std::sqrt(float(l.cout));
    for (int i = 0; i < layers; ++i) {
      wih.push_back(rnd({4 * l.cout, l.cin}, b));
      whh.push_back(rnd({4 * l.cout, l.cout}, b));
      bih.push_back(rnd({4 * l.cout}, b));
      bhh.push_back(rnd({4 * l.cout}, b));
    }
    auto* lstm = hold(std::make_shared<Lstm>(wih, whh, bih, bhh));
    auto* x = hold(std::make_shared<Tensor>(rnd({l.len, l.cin}, 1.0f)));
    auto* y = hold(std::make_shared<Tensor>(std::vector<int64_t>{l.len, l.cout}));
    fn = [=] { lstm->forward(x->data(), l.len, y->data()); };
  } else if (l.kind == "attention") {
    auto* core = hold(std::make_shared<AttentionCore>());
    auto* q = hold(std::make_shared<Tensor>(rnd({l.len, l.cin}, 1.0f)));
    auto* k = hold(std::make_shared<Tensor>(rnd({l.len, l.cin}, 1.0f)));
    auto* v = hold(std::make_shared<Tensor>(rnd({l.len, l.cin}, 1.0f)));
    auto* o = hold(std::make_shared<Tensor>(std::vector<int64_t>{l.len, l.cin}));
    auto* scratch = hold(std::make_shared<Tensor>());
    fn = [=] { core->forward(q->data(), k->data(), v->data(), l.len, l.cin, o->data(), *scratch); };
  } else if (l.kind == "vq") {
    std::vector<Tensor> books;
    for (int64_t q = 0; q < l.count; ++q) books.push_back(rnd({l.cout, l.cin}, 1.0f));
    auto* vq = hold(std::make_shared<ResidualVQ>(std::move(books)));
    auto* x = hold(std::make_shared<Tensor>(rnd({l.cin, l.len}, 1.0f)));
    auto* codes = hold(std::make_shared<std::vector<int32_t>>(size_t(l.count * l.len)));
    const int nq = int(l.count);
    fn = [=] { vq->encode(x->data(), l.len, nq, codes->data()); };
  } else if (l.kind == "istft") {
    const int n_fft = l.cin, hop = l.cout, bins = n_fft / 2 + 1;
    auto* y = hold(std::make_shared<Tensor>(rnd({l.len, 2 * bins}, 1.0f)));
    auto* re = hold(std::make_shared<std::vector<float>>(size_t(l.len * bins)));
    auto* im = hold(std::make_shared<std::vector<float>>(size_t(l.len * bins)));
    auto* audio = hold(std::make_shared<std::vector<float>>());
    fn = [=] {
      for (int64_t t = 0; t < l.len; ++t) {
        const float* r = y->data() + t * 2 * bins;
        magphase_to_complex(r, r + bins, bins, re->data() + t * bins, im->data() + t * bins);
      }
      Istft istft(n_fft, hop);
      audio->resize(size_t(istft.output_length(l.len)));
      istft.inverse(re->data(), im->data(), l.len, audio->data());
    };
  } else {
    throw Error("time_layer: unknown kind " + l.kind);
  }
  fn();  // warm-up: primitive creation, weight reorder
  std::vector<double> t;
  for (int r = 0; r < std::max(1, repeats); ++r) {
    auto t0 = std::chrono::steady_clock::now();
    fn();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// ---------------------------------------------------------------- FMA peak

namespace {

constexpr int kAcc = 12;

#if defined(__AVX512F__)
constexpr const char* kIsa = "avx512f";
constexpr int kLanes = 16;
double fma_kernel(int64_t iters, float seed) {
  __m512 acc[kAcc];
  for (int i = 0; i < kAcc; ++i) acc[i] = _mm512_set1_ps(seed + i);
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(seed * 1e-7f);
  for (int64_t n = 0; n < iters; ++n) {
    for (int i = 0; i < kAcc; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
  }
  __m512 s = acc[0];
  for (int i = 1; i < kAcc; ++i) s = _mm512_add_ps(s, acc[i]);
  return _mm512_reduce_add_ps(s);
}
#elif defined(__AVX2__) && defined(__FMA__)
constexpr const char* kIsa = "avx2+fma";
constexpr int kLanes = 8;
double fma_kernel(int64_t iters, float seed) {
  __m256 acc[kAcc];
  for (int i = 0; i < kAcc; ++i) acc[i] = _mm256_set1_ps(seed + i);
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(seed * 1e-7f);
  for (int64_t n = 0; n < iters; ++n)
    for (int i = 0; i < kAcc; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
  __m256 s = acc[0];
  for (int i = 1; i < kAcc; ++i) s = _mm256_add_ps(s, acc[i]);
  alignas(32) float t[8];
  _mm256_store_ps(t, s);
  double r = 0;
  for (float x : t) r += x;
  return r;
}
#else
constexpr const char* kIsa = "scalar";
constexpr int kLanes = 1;
double fma_kernel(int64_t iters, float seed) {
  float acc[kAcc];
  for (int i = 0; i < kAcc; ++i) acc[i] = seed + i;
  for (int64_t n = 0; n < iters; ++n)
    for (int i = 0; i < kAcc; ++i) acc[i] = std::fma(acc[i], 0.999999f, seed * 1e-7f);
  double r = 0;
  for (float x : acc) r += x;
  return r;
}
#endif

std::atomic<double> g_sink{0};

// GFLOP/s of `threads` threads running the kernel together (total), best of 3.
double run_fma(int threads, double seconds) {
  // Calibrate the iteration count on one thread.
  int64_t iters = 1 << 20;
  for (;;) {
    auto t0 = std::chrono::steady_clock::now();
    g_sink = g_sink + fma_kernel(iters, 1.0f);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (s > seconds / 4) {
      iters = int64_t(iters * seconds / s);
      break;
    }
    iters *= 4;
  }
  double best = 0;
  for (int rep = 0; rep < 10; ++rep) {  // best of 10: the core may be shared
    std::atomic<int> ready{0};
    std::atomic<bool> go{false};
    std::vector<std::thread> pool;
    std::vector<double> secs(threads);
    for (int t = 0; t < threads; ++t)
      pool.emplace_back([&, t] {
        ready++;
        while (!go.load()) std::this_thread::yield();
        auto t0 = std::chrono::steady_clock::now();
        const double r = fma_kernel(iters, 1.0f + t);
        secs[t] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        g_sink = g_sink + r;
      });
    while (ready.load() < threads) std::this_thread::yield();
    go = true;
    for (auto& th : pool) th.join();
    const double wall = *std::max_element(secs.begin(), secs.end());
    best = std::max(best, double(threads) * iters * kAcc * kLanes * 2.0 / wall / 1e9);
  }
  return best;
}

double status_field_mib(const char* key) {
  std::ifstream f("/proc/self/status");
  std::string line;
  const std::string k = key;
  while (std::getline(f, line))
    if (line.compare(0, k.size(), k) == 0) {
      std::istringstream is(line.substr(k.size() + 1));
      double kb = 0;
      is >> kb;
      return kb / 1024.0;
    }
  return 0;
}

}  // namespace

FmaPeak measure_fma_peak(int threads, double seconds) {
  seconds /= 2;
  FmaPeak p;
  p.isa = kIsa;
  p.threads = std::max(1, threads);
  p.gflops_1core = run_fma(1, seconds);
  p.gflops_all = p.threads == 1 ? p.gflops_1core : run_fma(p.threads, seconds);
  return p;
}

double peak_rss_mib() { return status_field_mib("VmHWM:"); }
double current_rss_mib() { return status_field_mib("VmRSS:"); }

bool reset_peak_rss() {
  std::ofstream f("/proc/self/clear_refs");
  if (!f) return false;
  f << "5";
  f.flush();
  return bool(f);
}

std::string cpu_model_name() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("model name", 0) == 0) {
      auto p = line.find(':');
      return p == std::string::npos ? "" : line.substr(p + 2);
    }
  return "unknown";
}

std::vector<std::string> cpu_relevant_flags() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  std::vector<std::string> out;
  while (std::getline(f, line))
    if (line.rfind("flags", 0) == 0) {
      std::istringstream is(line.substr(line.find(':') + 1));
      std::string fl;
      while (is >> fl)
        if (fl == "avx2" || fl == "fma" || fl == "f16c" || fl.rfind("avx512", 0) == 0 || fl.rfind("amx", 0) == 0 ||
            fl == "avx_vnni")
          out.push_back(fl);
      break;
    }
  return out;
}

}  // namespace wavtok
