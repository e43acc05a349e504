// `wavtok bench`: speed and memory of encode, decode and round trip on a model (default: random weights at the
// released WavTokenizer dims), per input length and thread count; optional per-stage / per-layer profile with
// GFLOP/s against the core's measured FMA peak, and the PyTorch reference timed side by side (--baseline).
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <functional>
#include <map>
#include <optional>
#include <regex>
#include <sstream>
#include <thread>

#include "apps/bench_model.h"
#include "apps/commands.h"
#include "codec/dnnl_util.h"
#include "codec/error.h"
#include "codec/file_util.h"
#include "codec/streaming.h"
#include "codec/vocos.h"

#include <filesystem>

#ifndef WAVTOK_BENCH_SOURCE_DIR
#define WAVTOK_BENCH_SOURCE_DIR ""
#endif

namespace wavtok {
namespace {

// printf into a std::string of any length (JSON lines carry user-given names, e.g. a preset's file path).
std::string strf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string strf(const char* fmt, ...) {
  va_list a, b;
  va_start(a, fmt);
  va_copy(b, a);
  const int n = std::vsnprintf(nullptr, 0, fmt, a);
  va_end(a);
  std::string s(size_t(std::max(n, 0)), '\0');
  std::vsnprintf(s.data(), s.size() + 1, fmt, b);
  va_end(b);
  return s;
}

using Clock = std::chrono::steady_clock;

struct BenchOpts {
  bool released = false;
  int threads = 0;  // 0: all hardware threads
  double seconds = 0;
  std::string lengths = "1,10,60";
  int repeats = 3;
  bool json = false;
  std::string json_out;
  bool profile = false;
  double profile_seconds = 10;
  bool baseline = false;
  bool no_memory = false;
  uint64_t seed = 1234;
  std::string phases = "encode,decode,roundtrip";
  std::string streaming;  // comma-separated presets (or YAML files) for per-chunk latency
  bool bf16 = false;      // float32 vs bfloat16 round trip, interleaved, 1 thread
  double stream_seconds = 10;
  int64_t encode_chunk = -1;  // Model::set_encode_chunk_frames; -1: the model's default, 0: always one pass
  std::string python = "/usr/bin/python3";
  std::string reference_script;
  // hidden: one memory measurement in this (child) process
  std::string internal_mem;
};

// The same signal as python/bench_reference.py: a few partials and a slow vibrato.
std::vector<float> bench_audio(int64_t samples, int rate) {
  std::vector<float> x(samples);
  for (int64_t i = 0; i < samples; ++i) {
    const double t = double(i) / rate;
    x[i] = float(0.2 * std::sin(2 * M_PI * 220.0 * t + 3.0 * std::sin(2 * M_PI * 0.5 * t)) +
                 0.1 * std::sin(2 * M_PI * 440.0 * t) + 0.05 * std::sin(2 * M_PI * 1330.0 * t));
  }
  return x;
}

constexpr double kMaxSeconds = 3600;  // longest input a bench run makes

std::vector<double> parse_list(const std::string& s) {
  std::vector<double> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) {
      size_t used = 0;
      double v = std::stod(item, &used);
      if (used != item.size() || !(v > 0) || !(v <= kMaxSeconds))
        throw Error("bench: bad length '" + item + "' (seconds, > 0 and at most 3600)");
      out.push_back(v);
    }
  if (out.empty()) throw Error("bench: no lengths given");
  return out;
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

std::shared_ptr<const Model> make_model(const Common& c, const BenchOpts& o) {
  std::shared_ptr<const Model> m;
  if (!c.model.empty() && !o.released) {
    LoadOptions lo;
    lo.config_path = c.config;
    m = Model::load(c.model, lo);
  } else {
    m = random_wavtokenizer(released_dims_config(), o.seed);
  }
  if (o.encode_chunk >= 0) m->set_encode_chunk_frames(o.encode_chunk);
  return m;
}

double secs_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// Codes of `frames` frames, uniform over the codebook (decode speed does not depend on the values).
Tokens random_tokens(const Model& m, int64_t frames, int n_q) {
  Tokens t;
  t.n_q = n_q;
  t.frames = frames;
  t.codes.resize(size_t(n_q) * frames);
  uint64_t s = 42;
  for (int q = 0; q < n_q; ++q)
    for (int64_t f = 0; f < frames; ++f) {
      s = s * 6364136223846793005ull + 1442695040888963407ull;
      t.codes[q * frames + f] = int32_t((s >> 33) % uint64_t(m.quantizer().bins(q)));
    }
  return t;
}

struct PhaseResult {
  std::string phase;
  double seconds = 0;  // audio length
  int threads = 1;
  double first_s = 0;   // first (cold) call: includes oneDNN primitive creation for this length
  double median_s = 0;  // warm, median of repeats
  double min_s = 0;
  double xrt() const { return median_s > 0 ? seconds / median_s : 0; }
};

struct MemResult {
  std::string phase;
  double seconds = 0;
  double model_mib = 0;  // RSS after building the model and the input, before the phase
  double peak_mib = 0;   // VmHWM during the phase
};

struct StageResult {
  std::string stage;
  double s = 0;
  double macs = 0;
};

struct LayerResult {
  LayerCost l;
  double s = 0;  // all `count` layers
};

struct ThreadRun {
  int threads = 1;
  double one_frame_encode_s = 0, one_frame_decode_s = 0;
  std::vector<PhaseResult> phases;
};

int n_q_all(const Model& m) { return m.max_n_q(); }

// Runs `fn` once cold, then `repeats` times; returns (first, median, min).
PhaseResult time_phase(const std::string& name, double sec, int threads, int repeats, const std::function<void()>& fn) {
  PhaseResult r;
  r.phase = name, r.seconds = sec, r.threads = threads;
  auto t0 = Clock::now();
  fn();
  r.first_s = secs_since(t0);
  std::vector<double> t;
  for (int i = 0; i < std::max(1, repeats); ++i) {
    t0 = Clock::now();
    fn();
    t.push_back(secs_since(t0));
  }
  r.median_s = median(t);
  r.min_s = *std::min_element(t.begin(), t.end());
  return r;
}

ThreadRun run_threads(const Common& c, const BenchOpts& o, int threads, const std::vector<double>& lengths,
                      const std::vector<std::string>& phases, std::shared_ptr<const Model>* keep) {
  set_num_threads(threads);
  auto model = make_model(c, o);  // fresh: oneDNN primitives are created for the current thread count
  const Model& m = *model;
  ThreadRun run;
  run.threads = threads;
  const int nq = n_q_all(m);
  {
    std::vector<float> one = bench_audio(m.hop(), m.sample_rate());
    Tokens t1 = random_tokens(m, 1, nq);
    run.one_frame_encode_s = time_phase("encode", 0, threads, 5, [&] { m.encode(one.data(), int64_t(one.size()), nq); }).median_s;
    run.one_frame_decode_s = time_phase("decode", 0, threads, 5, [&] { m.decode(t1); }).median_s;
  }
  for (double sec : lengths) {
    const int64_t n = int64_t(std::llround(sec * m.sample_rate()));
    std::vector<float> audio = bench_audio(n, m.sample_rate());
    Tokens tokens = m.encode(audio.data(), n, nq);
    for (const auto& p : phases) {
      std::function<void()> fn;
      if (p == "encode") fn = [&] { m.encode(audio.data(), n, nq); };
      else if (p == "decode") fn = [&] { m.decode(tokens); };
      else fn = [&] { m.decode(m.encode(audio.data(), n, nq)); };
      PhaseResult r = time_phase(p, sec, threads, o.repeats, fn);
      if (!c.quiet)
        std::fprintf(stderr, "[bench] %-9s %7.1f s  %d thr  %8.3f s  %7.2fx RT  (cold %.3f s)\n", p.c_str(), sec, threads,
                     r.median_s, r.xrt(), r.first_s);
      run.phases.push_back(r);
    }
  }
  if (keep) *keep = model;
  return run;
}

std::string self_exe() {
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) throw Error("bench: cannot find this program's path (/proc/self/exe)");
  buf[n] = 0;
  return buf;
}

std::string shell_quote(const std::string& s) {
  std::string r = "'";
  for (char ch : s) r += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  return r + "'";
}

std::string run_capture(const std::string& cmd) {
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) throw Error("bench: cannot run " + cmd);
  std::string out;
  char buf[4096];
  size_t k;
  while ((k = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, k);
  const int rc = pclose(p);
  if (rc != 0) throw Error("bench: command failed (status " + std::to_string(rc) + "): " + cmd);
  return out;
}

// Child side of the memory measurement: build, reset the peak, run one phase once, print the readings.
int internal_memory(const Common& c, const BenchOpts& o) {
  set_num_threads(o.threads);
  auto model = make_model(c, o);
  const Model& m = *model;
  const int nq = n_q_all(m);
  const int64_t n = int64_t(std::llround(o.seconds * m.sample_rate()));
  std::vector<float> audio = bench_audio(n, m.sample_rate());
  Tokens tokens = random_tokens(m, (n + m.hop() - 1) / m.hop(), nq);
  const bool reset = reset_peak_rss();
  const double base = current_rss_mib();
  if (o.internal_mem == "encode") m.encode(audio.data(), n, nq);
  else if (o.internal_mem == "decode") m.decode(tokens);
  else m.decode(m.encode(audio.data(), n, nq));
  std::printf("MEM %.1f %.1f %d\n", base, peak_rss_mib(), reset ? 1 : 0);
  return 0;
}

MemResult measure_memory(const Common& c, const BenchOpts& o, const std::string& phase, double sec, int threads) {
  std::string cmd = shell_quote(self_exe()) + " bench -q --internal-mem " + phase + " --seconds " + std::to_string(sec) +
                    " -t " + std::to_string(threads) + " --seed " + std::to_string(o.seed);
  if (!c.model.empty() && !o.released) cmd += " -m " + shell_quote(c.model);
  if (!c.config.empty()) cmd += " --config " + shell_quote(c.config);
  if (o.encode_chunk >= 0) cmd += " --encode-chunk-frames " + std::to_string(o.encode_chunk);
  const std::string out = run_capture(cmd);
  MemResult r;
  r.phase = phase, r.seconds = sec;
  int ok = 0;
  if (std::sscanf(out.c_str() + std::min(out.size(), out.find("MEM ")), "MEM %lf %lf %d", &r.model_mib, &r.peak_mib, &ok) < 2)
    throw Error("bench: memory child printed no reading: " + out);
  if (!ok) r.model_mib = 0;  // the peak could not be reset: only the absolute peak is meaningful
  return r;
}

struct Profile {
  double seconds = 0;
  std::vector<StageResult> stages;
  std::vector<LayerResult> layers;
};

Profile run_profile(const Model& m, double sec, int repeats) {
  Profile p;
  p.seconds = sec;
  const ModelConfig& cfg = m.config();
  const int64_t n = int64_t(std::llround(sec * m.sample_rate()));
  std::vector<float> audio = bench_audio(n, m.sample_rate());
  const int nq = m.max_n_q();
  Tensor lat = m.encode_latents(audio.data(), n);
  Tokens tok = m.quantize(lat, nq);
  Tensor feat = m.dequantize(tok);
  const int64_t F = lat.dim(1);
  auto stage = [&](const std::string& name, const std::function<void()>& fn) {
    StageResult s;
    s.stage = name;
    s.s = time_phase(name, sec, get_num_threads(), repeats, fn).median_s;
    p.stages.push_back(s);
  };
  stage("encoder", [&] { m.encode_latents(audio.data(), n); });
  stage("vq", [&] { m.quantize(lat, nq); });
  if (cfg.arch == "wavtokenizer") {
    VocosBackbone bb(m.weights(), "backbone.", cfg.vocos);
    IstftHead head(m.weights(), "head.", cfg.vocos);
    Tensor h = bb.forward(feat.data(), F, 0);
    stage("dequantize", [&] { m.dequantize(tok); });
    stage("backbone", [&] { bb.forward(feat.data(), F, 0); });
    stage("head", [&] { head.forward(h.data(), F); });
    for (const auto& l : wavtokenizer_layer_costs(cfg, n, F)) {
      LayerResult r;
      r.l = l;
      r.s = time_layer(l, repeats) * (l.kind == "lstm" || l.kind == "vq" ? 1 : double(l.count));
      p.layers.push_back(r);
      for (auto& s : p.stages)
        if (s.stage == l.stage) s.macs += l.macs;
    }
  } else {
    stage("decoder", [&] { m.decode_latents(feat); });
  }
  return p;
}

// Reads "phase@seconds@threads": value pairs from the reference script's "flat" object.
std::map<std::string, double> parse_flat(const std::string& json) {
  std::map<std::string, double> out;
  const auto at = json.find("\"flat\"");
  if (at == std::string::npos) return out;
  const std::string rest = json.substr(at, json.find('}', at) - at);
  std::regex re("\"([a-z]+@[0-9.]+@[0-9]+)\":\\s*([0-9.eE+-]+)");
  for (std::sregex_iterator it(rest.begin(), rest.end(), re), end; it != end; ++it) out[(*it)[1]] = std::stod((*it)[2]);
  return out;
}

std::string json_str(const std::string& s) {
  std::string r = "\"";
  for (char ch : s) {
    if (ch == '"' || ch == '\\') r += '\\', r += ch;
    else if (ch == '\n') r += "\\n";
    else if (ch == '\t') r += "\\t";
    else if (static_cast<unsigned char>(ch) < 0x20) continue;
    else r += ch;
  }
  return r + "\"";
}

std::string fmt_len(double s) {
  char b[32];
  std::snprintf(b, sizeof(b), "%g", s);
  return b;
}

struct StreamResult {
  std::string preset;
  StreamParams p;
  double chunk_audio_ms = 0;  // audio per block
  double enc_p50 = 0, enc_p95 = 0, enc_p99 = 0, dec_p50 = 0, dec_p95 = 0, dec_p99 = 0;  // ms per push
  int64_t chunks = 0;
  double cold_enc_p99 = 0, cold_dec_p99 = 0, cold_enc_max = 0, cold_dec_max = 0;  // first pass (primitive creation)
  // A fresh model warmed up with warm_up_streaming, then its first pass (empty without a fresh model).
  double warm_up_ms = 0;
  int64_t warm_up_shapes = 0;
  double after_enc_p99 = 0, after_dec_p99 = 0, after_enc_max = 0, after_dec_max = 0;
  // flush() at the end of the stream (ms): the time from the last token to the last audio; [cold, warm, after warm-up].
  double enc_flush[3] = {0, 0, 0}, dec_flush[3] = {0, 0, 0};
  // A live stream (warm): audio arriving in real time in 20 ms chunks, codes passed on as soon as they are final.
  // Time from the stream's first sample to the first code / first decoded sample leaving: the audio that had to
  // arrive (algorithmic latency plus the chunk) plus the compute of the push that produced it.
  double first_token_ms = 0, first_audio_ms = 0, first_token_audio_ms = 0, first_audio_audio_ms = 0;
};

double pct(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, size_t(q * (v.size() - 1) + 0.5))];
}

// Pushes `seconds` of audio block by block through a StreamingEncoder, then the codes through a StreamingDecoder,
// timing every push call that emitted output (ms). With `fresh` (a model that has run nothing yet), also times
// warm_up_streaming on it and the first pass after it.
StreamResult run_streaming(const std::shared_ptr<const Model>& model, const std::string& preset, double seconds,
                           const std::shared_ptr<const Model>& fresh = nullptr) {
  StreamResult r;
  r.preset = preset;
  r.p = stream_preset(preset);
  const Model& m = *model;
  const int64_t block = int64_t(r.p.block_frames) * m.hop();
  r.chunk_audio_ms = 1000.0 * block / m.sample_rate();
  const int64_t n = int64_t(std::llround(seconds * m.sample_rate()));
  std::vector<float> audio = bench_audio(n, m.sample_rate());
  auto pass = [&](const std::shared_ptr<const Model>& mod, std::vector<double>& te, std::vector<double>& td, int slot) {
    StreamingEncoder enc(mod, r.p);
    std::vector<int32_t> codes;
    for (int64_t at = 0; at < n; at += block) {
      const size_t before = codes.size();
      auto t0 = Clock::now();
      enc.push(audio.data() + at, std::min(block, n - at), codes);
      const double ms = 1000 * secs_since(t0);
      if (codes.size() > before) te.push_back(ms);
    }
    auto t1 = Clock::now();
    enc.flush(codes);
    r.enc_flush[slot] = 1000 * secs_since(t1);
    const int nq = enc.n_q();
    const int64_t frames = int64_t(codes.size()) / std::max(1, nq);
    StreamingDecoder dec(mod, r.p);
    std::vector<float> out;
    for (int64_t f = 0; f < frames; f += r.p.block_frames) {
      const size_t before = out.size();
      auto t0 = Clock::now();
      dec.push(codes.data() + f * nq, std::min<int64_t>(r.p.block_frames, frames - f), nq, out);
      const double ms = 1000 * secs_since(t0);
      if (out.size() > before) td.push_back(ms);
    }
    t1 = Clock::now();
    dec.flush(out);
    r.dec_flush[slot] = 1000 * secs_since(t1);
  };
  // Pass 0 is cold: every new window length creates oneDNN primitives (weight reorders included), which
  // dominates its tail; pass 1 reuses them and is the one reported as p50/p95/p99.
  for (int i = 0; i < 2; ++i) {
    std::vector<double> te, td;
    pass(model, te, td, i);
    r.chunks = int64_t(te.size());
    if (i == 0) {
      r.cold_enc_p99 = pct(te, 0.99), r.cold_dec_p99 = pct(td, 0.99);
      r.cold_enc_max = pct(te, 1.0), r.cold_dec_max = pct(td, 1.0);
      continue;
    }
    r.enc_p50 = pct(te, 0.5), r.enc_p95 = pct(te, 0.95), r.enc_p99 = pct(te, 0.99);
    r.dec_p50 = pct(td, 0.5), r.dec_p95 = pct(td, 0.95), r.dec_p99 = pct(td, 0.99);
  }
  {  // the live stream, on the warm model
    const int64_t chunk = m.sample_rate() / 50;  // 20 ms
    StreamingEncoder enc(model, r.p);
    StreamingDecoder dec(model, r.p);
    std::vector<int32_t> codes;
    std::vector<float> out;
    for (int64_t at = 0; at < n && r.first_audio_ms == 0; at += chunk) {
      const int64_t len = std::min(chunk, n - at);
      const double arrived_ms = 1000.0 * double(at + len) / m.sample_rate();
      codes.clear();
      auto t0 = Clock::now();
      const int64_t frames = enc.push(audio.data() + at, len, codes);
      const double enc_ms = 1000 * secs_since(t0);
      if (frames == 0) continue;
      if (r.first_token_ms == 0) r.first_token_ms = arrived_ms + enc_ms, r.first_token_audio_ms = arrived_ms;
      t0 = Clock::now();
      dec.push(codes.data(), frames, enc.n_q(), out);
      if (!out.empty()) r.first_audio_ms = arrived_ms + enc_ms + 1000 * secs_since(t0), r.first_audio_audio_ms = arrived_ms;
    }
  }
  if (fresh) {
    auto t0 = Clock::now();
    r.warm_up_shapes = warm_up_streaming(fresh, r.p, block);
    r.warm_up_ms = 1000 * secs_since(t0);
    std::vector<double> te, td;
    pass(fresh, te, td, 2);
    r.after_enc_p99 = pct(te, 0.99), r.after_dec_p99 = pct(td, 0.99);
    r.after_enc_max = pct(te, 1.0), r.after_dec_max = pct(td, 1.0);
  }
  return r;
}

// float32 vs bfloat16 on 1 thread, one input length: round trips timed alternately (so load changes hit both),
// tokens and decoded audio compared with the float32 ones.
struct PrecisionResult {
  double seconds = 0, f32_s = 0, bf16_s = 0, token_agree = 0, snr_db = 0;
};

PrecisionResult run_precision(const Model& m, double sec, int repeats) {
  PrecisionResult r;
  r.seconds = sec;
  const int nq = n_q_all(m);
  const int64_t n = int64_t(std::llround(sec * m.sample_rate()));
  const std::vector<float> audio = bench_audio(n, m.sample_rate());
  set_precision(Precision::F32);
  const Tokens tf = m.encode(audio.data(), n, nq);
  const std::vector<float> af = m.decode(tf);
  set_precision(Precision::BF16);
  const Tokens tb = m.encode(audio.data(), n, nq);
  const std::vector<float> ab = m.decode(tb);
  int64_t same = 0;
  for (size_t i = 0; i < tf.codes.size() && i < tb.codes.size(); ++i) same += tf.codes[i] == tb.codes[i];
  r.token_agree = tf.codes.empty() ? 0 : double(same) / double(tf.codes.size());
  double sig = 0, err = 0;
  for (size_t i = 0; i < af.size() && i < ab.size(); ++i) sig += double(af[i]) * af[i], err += double(af[i] - ab[i]) * (af[i] - ab[i]);
  r.snr_db = 10 * std::log10((sig + 1e-30) / (err + 1e-30));
  std::vector<double> t32, t16;
  for (int i = 0; i < std::max(1, repeats); ++i)
    for (Precision p : {Precision::F32, Precision::BF16}) {
      set_precision(p);
      const auto t0 = Clock::now();
      m.decode(m.encode(audio.data(), n, nq));
      (p == Precision::F32 ? t32 : t16).push_back(secs_since(t0));
    }
  set_precision(Precision::F32);
  r.f32_s = median(t32), r.bf16_s = median(t16);
  return r;
}

std::string reference_script(const BenchOpts& o) {
  if (!o.reference_script.empty()) return o.reference_script;
  namespace fs = std::filesystem;
  std::vector<fs::path> tries = {fs::path(WAVTOK_BENCH_SOURCE_DIR) / "python/bench_reference.py",
                                 fs::path("python/bench_reference.py"),
                                 fs::path(self_exe()).parent_path().parent_path() / "python/bench_reference.py"};
  for (const auto& t : tries)
    if (!t.empty() && fs::exists(t)) return t.string();
  throw Error("bench: cannot find python/bench_reference.py; give --reference-script");
}

int run_bench(const Common& c, const BenchOpts& o0) {
  BenchOpts o = o0;
  if (!o.internal_mem.empty()) return internal_memory(c, o);
  const int hw = int(std::max(1u, std::thread::hardware_concurrency()));
  const int all = o.threads > 0 ? o.threads : hw;
  std::vector<double> lengths = o.seconds > 0 ? std::vector<double>{o.seconds} : parse_list(o.lengths);
  std::vector<std::string> phases = split(o.phases);
  for (const auto& p : phases)
    if (p != "encode" && p != "decode" && p != "roundtrip") throw Error("bench: unknown phase '" + p + "'");
  for (const auto& preset : split(o.streaming)) stream_preset(preset);  // a bad preset fails before the long runs
  if (!o.json_out.empty()) {  // an unwritable destination fails before the long runs, not after them
    const auto dir = std::filesystem::absolute(o.json_out).parent_path();
    if (!std::filesystem::is_directory(dir)) throw Error(o.json_out + ": folder " + dir.string() + " does not exist");
  }
  std::vector<int> thread_counts = {1};
  if (all > 1) thread_counts.push_back(all);

  const std::string cpu = cpu_model_name();
  const auto flags = cpu_relevant_flags();
  if (!c.quiet) std::fprintf(stderr, "[bench] measuring the FMA peak\n");
  const FmaPeak peak = measure_fma_peak(all);

  std::shared_ptr<const Model> one_thread_model;
  std::vector<ThreadRun> runs;
  for (int t : thread_counts) runs.push_back(run_threads(c, o, t, lengths, phases, t == 1 ? &one_thread_model : nullptr));
  const Model& m = *one_thread_model;

  std::vector<MemResult> mem;
  if (!o.no_memory)
    for (double sec : lengths)
      for (const auto& p : phases) {
        mem.push_back(measure_memory(c, o, p, sec, all));
        if (!c.quiet)
          std::fprintf(stderr, "[bench] memory %-9s %7.1f s  model %.0f MiB  peak %.0f MiB\n", p.c_str(), sec,
                       mem.back().model_mib, mem.back().peak_mib);
      }

  std::optional<Profile> prof;
  if (o.profile) {
    set_num_threads(1);
    if (!c.quiet) std::fprintf(stderr, "[bench] profiling %.1f s on 1 thread\n", o.profile_seconds);
    prof = run_profile(m, o.profile_seconds, o.repeats);
  }

  std::vector<StreamResult> streams;
  if (!o.streaming.empty()) {
    set_num_threads(1);
    for (const auto& preset : split(o.streaming)) {
      if (!c.quiet) std::fprintf(stderr, "[bench] streaming %s, %.0f s, 1 thread\n", preset.c_str(), o.stream_seconds);
      // A fresh model per preset for the warm-up figures: the shared one has already run the other passes.
      streams.push_back(run_streaming(one_thread_model, preset, o.stream_seconds, make_model(c, o)));
    }
  }

  std::vector<PrecisionResult> precs;
  if (o.bf16) {
    if (!bf16_supported()) {
      if (!c.quiet) std::fprintf(stderr, "[bench] --bf16: this CPU has no AVX512-BF16/AMX, skipped\n");
    } else {
      set_num_threads(1);
      for (double sec : lengths) {
        if (!c.quiet) std::fprintf(stderr, "[bench] float32 vs bfloat16 round trip, %.1f s, 1 thread\n", sec);
        precs.push_back(run_precision(m, sec, o.repeats));
      }
    }
  }

  std::map<std::string, double> ref;
  std::string ref_json;
  if (o.baseline) {
    try {  // a failing baseline keeps the engine's results
      std::string thr;
      for (int t : thread_counts) thr += (thr.empty() ? "" : ",") + std::to_string(t);
      std::string lens;
      for (double s : lengths) lens += (lens.empty() ? "" : ",") + fmt_len(s);
      const std::string cmd = shell_quote(o.python) + " " + shell_quote(reference_script(o)) + " --threads " + thr +
                              " --lengths " + lens + " --repeats " + std::to_string(o.repeats) + " --phases " + o.phases +
                              (c.quiet ? " 2>/dev/null" : "");
      if (!c.quiet) std::fprintf(stderr, "[bench] baseline: %s\n", cmd.c_str());
      ref_json = run_capture(cmd);
      ref = parse_flat(ref_json);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "[bench] baseline failed: %s\n", e.what());
      ref_json = "null";
    }
  }
  auto ref_s = [&](const PhaseResult& r) {
    auto it = ref.find(r.phase + "@" + fmt_len(r.seconds) + "@" + std::to_string(r.threads));
    return it == ref.end() ? 0.0 : it->second;
  };

  const ModelConfig& cfg = m.config();
  const std::string model_desc = (!c.model.empty() && !o.released) ? c.model : "random weights, released WavTokenizer dims";
  if (o.json || !o.json_out.empty()) {
    std::string j = "{\n";
    j += " \"model\": " + json_str(model_desc) + ",\n \"arch\": " + json_str(cfg.arch) +
         ",\n \"parameters\": " + std::to_string(m.parameter_count()) + ",\n \"sample_rate\": " +
         std::to_string(m.sample_rate()) + ",\n \"hop\": " + std::to_string(m.hop()) + ",\n";
    j += " \"cpu\": " + json_str(cpu) + ",\n \"cpu_flags\": [";
    for (size_t i = 0; i < flags.size(); ++i) j += (i ? ", " : "") + json_str(flags[i]);
    j += strf("],\n \"fma_peak\": {\"isa\": \"%s\", \"gflops_1core\": %.2f, \"gflops_all\": %.2f, \"threads\": %d},\n",
                  peak.isa.c_str(), peak.gflops_1core, peak.gflops_all, peak.threads);
    j += " \"runs\": [\n";
    bool first = true;
    for (const auto& run : runs) {
      for (const auto& r : run.phases) {
        j += strf("%s  {\"phase\": \"%s\", \"seconds\": %g, \"threads\": %d, \"median_s\": %.6f, \"min_s\": %.6f, "
                      "\"first_s\": %.6f, \"xrt\": %.3f, \"reference_s\": %.6f}",
                      first ? "" : ",\n", r.phase.c_str(), r.seconds, r.threads, r.median_s, r.min_s, r.first_s, r.xrt(),
                      ref_s(r));
        first = false;
      }
    }
    j += "\n ],\n \"one_frame\": [";
    for (size_t i = 0; i < runs.size(); ++i) {
      j += strf("%s{\"threads\": %d, \"encode_s\": %.6f, \"decode_s\": %.6f}", i ? ", " : "",
                    runs[i].threads, runs[i].one_frame_encode_s, runs[i].one_frame_decode_s);
    }
    j += "],\n \"memory\": [";
    for (size_t i = 0; i < mem.size(); ++i) {
      j += strf("%s\n  {\"phase\": \"%s\", \"seconds\": %g, \"threads\": %d, \"model_mib\": %.1f, \"peak_mib\": %.1f}",
                    i ? "," : "", mem[i].phase.c_str(), mem[i].seconds, all, mem[i].model_mib, mem[i].peak_mib);
    }
    j += "]";
    if (prof) {
      j += strf(",\n \"profile\": {\"seconds\": %g, \"threads\": 1, \"stages\": [", prof->seconds);
      for (size_t i = 0; i < prof->stages.size(); ++i) {
        const auto& s = prof->stages[i];
        j += strf("%s\n  {\"stage\": \"%s\", \"s\": %.6f, \"gflops\": %.2f}", i ? "," : "", s.stage.c_str(),
                      s.s, s.s > 0 ? 2 * s.macs / s.s / 1e9 : 0.0);
      }
      j += "],\n  \"layers\": [";
      for (size_t i = 0; i < prof->layers.size(); ++i) {
        const auto& l = prof->layers[i];
        j += strf("%s\n  {\"stage\": \"%s\", \"layer\": %s, \"kind\": \"%s\", \"count\": %lld, \"s\": %.6f, \"gmacs\": %.4f, "
                      "\"gflops\": %.2f, \"pct_peak\": %.1f}",
                      i ? "," : "", l.l.stage.c_str(), json_str(l.l.name).c_str(), l.l.kind.c_str(), (long long)l.l.count,
                      l.s, l.l.macs / 1e9, 2 * l.l.macs / l.s / 1e9, 100 * 2 * l.l.macs / l.s / 1e9 / peak.gflops_1core);
      }
      j += "]}";
    }
    if (!streams.empty()) {
      j += ",\n \"streaming\": [";
      for (size_t i = 0; i < streams.size(); ++i) {
        const auto& r = streams[i];
        j += strf("%s\n  {\"preset\": %s, \"block\": %d, \"left\": %d, \"lookahead\": %d, \"chunk_audio_ms\": %.2f, "
                      "\"chunks\": %lld, \"encode_ms\": [%.3f, %.3f, %.3f], \"decode_ms\": [%.3f, %.3f, %.3f], "
                      "\"cold_encode_p99_ms\": %.3f, \"cold_decode_p99_ms\": %.3f, \"cold_encode_max_ms\": %.3f, "
                      "\"cold_decode_max_ms\": %.3f, \"warm_up_ms\": %.3f, \"warm_up_shapes\": %lld, "
                      "\"after_warm_up_encode_ms\": [%.3f, %.3f], \"after_warm_up_decode_ms\": [%.3f, %.3f], "
                      "\"encode_flush_ms\": [%.3f, %.3f, %.3f], \"decode_flush_ms\": [%.3f, %.3f, %.3f], "
                      "\"first_token_ms\": %.3f, \"first_audio_ms\": %.3f, \"first_token_audio_ms\": %.3f, "
                      "\"first_audio_audio_ms\": %.3f}",
                      i ? "," : "", json_str(r.preset).c_str(), r.p.block_frames, r.p.left_frames, r.p.lookahead_frames,
                      r.chunk_audio_ms, (long long)r.chunks, r.enc_p50, r.enc_p95, r.enc_p99, r.dec_p50, r.dec_p95, r.dec_p99,
                      r.cold_enc_p99, r.cold_dec_p99, r.cold_enc_max, r.cold_dec_max, r.warm_up_ms,
                      (long long)r.warm_up_shapes, r.after_enc_p99, r.after_enc_max, r.after_dec_p99, r.after_dec_max,
                      r.enc_flush[0], r.enc_flush[1], r.enc_flush[2], r.dec_flush[0], r.dec_flush[1], r.dec_flush[2],
                      r.first_token_ms, r.first_audio_ms, r.first_token_audio_ms, r.first_audio_audio_ms);
      }
      j += "]";
    }
    if (!precs.empty()) {
      j += ",\n \"bf16\": [";
      for (size_t i = 0; i < precs.size(); ++i) {
        const auto& r = precs[i];
        j += strf("%s\n  {\"seconds\": %g, \"threads\": 1, \"f32_roundtrip_s\": %.6f, \"bf16_roundtrip_s\": %.6f, "
                      "\"bf16_xrt\": %.3f, \"token_agreement\": %.6f, \"audio_snr_db\": %.2f}",
                      i ? "," : "", r.seconds, r.f32_s, r.bf16_s, r.seconds / r.bf16_s, r.token_agree, r.snr_db);
      }
      j += "]";
    }
    if (o.baseline) j += ",\n \"reference\": " + ref_json;
    j += "\n}\n";
    if (!o.json_out.empty()) {
      AtomicFile f(o.json_out);  // no partial file on failure
      if (std::fputs(j.c_str(), f.file()) < 0) throw Error(o.json_out + ": cannot write");
      f.commit();
    }
    if (o.json) {
      std::fputs(j.c_str(), stdout);
      return 0;
    }
  }

  std::printf("model     %s (%s, %.1f M parameters, %d Hz, hop %d)\n", model_desc.c_str(), cfg.arch.c_str(),
              m.parameter_count() / 1e6, m.sample_rate(), m.hop());
  std::printf("cpu       %s; flags:", cpu.c_str());
  for (const auto& f : flags) std::printf(" %s", f.c_str());
  std::printf("\nFMA peak  %s: %.1f GFLOP/s on 1 core, %.1f GFLOP/s on %d threads\n", peak.isa.c_str(), peak.gflops_1core,
              peak.gflops_all, peak.threads);
  std::printf("\nspeed (x real time = audio seconds / wall seconds; warm median of %d runs; cold = first call)\n", o.repeats);
  std::printf("%-10s %8s %4s %10s %10s %9s", "phase", "audio s", "thr", "median s", "cold s", "x RT");
  if (o.baseline) std::printf(" %10s %9s %8s", "torch s", "torch xRT", "speedup");
  std::printf("\n");
  for (const auto& run : runs)
    for (const auto& r : run.phases) {
      std::printf("%-10s %8g %4d %10.3f %10.3f %9.2f", r.phase.c_str(), r.seconds, r.threads, r.median_s, r.first_s, r.xrt());
      if (o.baseline) {
        const double t = ref_s(r);
        if (t > 0) std::printf(" %10.3f %9.2f %7.2fx", t, r.seconds / t, t / r.median_s);
        else std::printf(" %10s %9s %8s", "-", "-", "-");
      }
      std::printf("\n");
    }
  std::printf("\nlatency of one frame (%d samples = %.1f ms of audio, one-shot API, warm):\n", m.hop(),
              1000.0 * m.hop() / m.sample_rate());
  for (const auto& run : runs)
    std::printf("  %d thr: encode %.2f ms, decode %.2f ms\n", run.threads, 1000 * run.one_frame_encode_s,
                1000 * run.one_frame_decode_s);
  std::printf("one-shot: the first token / first audio sample arrives with the last, after the phase's median time above\n");
  if (!mem.empty()) {
    std::printf("\nmemory (child process per phase, %d threads; model = RSS before the phase, peak = VmHWM)\n", all);
    std::printf("%-10s %8s %10s %10s %10s\n", "phase", "audio s", "model MiB", "peak MiB", "extra MiB");
    for (const auto& r : mem)
      std::printf("%-10s %8g %10.0f %10.0f %10.0f\n", r.phase.c_str(), r.seconds, r.model_mib, r.peak_mib,
                  r.model_mib > 0 ? r.peak_mib - r.model_mib : 0.0);
  }
  if (!streams.empty()) {
    std::printf("\nstreaming (1 thread, %.0f s pushed one block at a time; ms per push that emitted output, p50/p95/p99)\n",
                o.stream_seconds);
    std::printf("%-16s %5s %5s %5s %9s %8s %26s %26s\n", "preset", "block", "left", "ahead", "chunk ms", "latency",
                "encode p50/p95/p99 ms", "decode p50/p95/p99 ms");
    for (const auto& r : streams) {
      char e[64], d[64];
      std::snprintf(e, sizeof(e), "%.1f / %.1f / %.1f", r.enc_p50, r.enc_p95, r.enc_p99);
      std::snprintf(d, sizeof(d), "%.1f / %.1f / %.1f", r.dec_p50, r.dec_p95, r.dec_p99);
      std::printf("%-16s %5d %5d %5d %9.1f %6.0fms %26s %26s\n", r.preset.c_str(), r.p.block_frames, r.p.left_frames,
                  r.p.lookahead_frames, r.chunk_audio_ms,
                  1000.0 * (r.p.block_frames + r.p.lookahead_frames) * m.hop() / m.sample_rate(), e, d);
    }
    std::printf("latency = algorithmic (block + lookahead frames); a preset keeps up when p99 < chunk ms; warm pass\n");
    for (const auto& r : streams) {
      std::printf("  %s cold first pass p99 / max: encode %.1f / %.1f ms, decode %.1f / %.1f ms (primitive creation)\n",
                  r.preset.c_str(), r.cold_enc_p99, r.cold_enc_max, r.cold_dec_p99, r.cold_dec_max);
      std::printf("  %s after warm_up_streaming (%.0f ms, %lld shapes, fresh model): first pass p99 / max: encode %.1f / "
                  "%.1f ms, decode %.1f / %.1f ms\n",
                  r.preset.c_str(), r.warm_up_ms, (long long)r.warm_up_shapes, r.after_enc_p99, r.after_enc_max,
                  r.after_dec_p99, r.after_dec_max);
      std::printf("  %s flush() cold / warm / after warm-up: encode %.1f / %.1f / %.1f ms, decode %.1f / %.1f / %.1f ms\n",
                  r.preset.c_str(), r.enc_flush[0], r.enc_flush[1], r.enc_flush[2], r.dec_flush[0], r.dec_flush[1],
                  r.dec_flush[2]);
      std::printf("  %s live, 20 ms chunks in real time: first token after %.1f ms (%.1f ms of audio + compute), "
                  "first audio after %.1f ms (%.1f ms of audio + compute)\n",
                  r.preset.c_str(), r.first_token_ms, r.first_token_audio_ms, r.first_audio_ms, r.first_audio_audio_ms);
    }
  }
  if (!precs.empty()) {
    std::printf("\nfloat32 vs bfloat16 round trip (1 thread, interleaved, median of %d; tokens and audio vs float32)\n",
                o.repeats);
    std::printf("%8s %10s %10s %9s %9s %11s %13s\n", "audio s", "f32 s", "bf16 s", "bf16 xRT", "speed-up", "tokens =",
                "audio SNR dB");
    for (const auto& r : precs)
      std::printf("%8g %10.3f %10.3f %9.2f %8.2fx %10.2f%% %13.1f\n", r.seconds, r.f32_s, r.bf16_s, r.seconds / r.bf16_s,
                  r.f32_s / r.bf16_s, 100 * r.token_agree, r.snr_db);
  } else if (o.bf16) {
    std::printf("\nbfloat16: not supported by this CPU (needs AVX512-BF16 or AMX); skipped\n");
  }
  if (prof) {
    double total = 0;
    for (const auto& s : prof->stages) total += s.s;
    std::printf("\nprofile: %g s of audio, 1 thread (stage times measured through the public API)\n", prof->seconds);
    std::printf("%-11s %10s %7s %10s %8s\n", "stage", "s", "%", "GFLOP/s", "% peak");
    for (const auto& s : prof->stages) {
      const double gf = s.s > 0 ? 2 * s.macs / s.s / 1e9 : 0;
      std::printf("%-11s %10.4f %6.1f%% %10.2f %7.1f%%\n", s.stage.c_str(), s.s, 100 * s.s / total, gf,
                  100 * gf / peak.gflops_1core);
    }
    if (!prof->layers.empty()) {
      std::printf("\nlayers timed alone (same shapes, random weights); %% of the stage's measured time\n");
      std::printf("%-9s %-38s %5s %10s %10s %7s %9s %7s\n", "stage", "layer", "count", "s", "GMAC", "% stage", "GFLOP/s",
                  "% peak");
      for (const auto& l : prof->layers) {
        double st = 0;
        for (const auto& s : prof->stages)
          if (s.stage == l.l.stage) st = s.s;
        const double gf = 2 * l.l.macs / l.s / 1e9;
        std::printf("%-9s %-38s %5lld %10.4f %10.3f %6.1f%% %9.2f %6.1f%%\n", l.l.stage.c_str(), l.l.name.c_str(),
                    (long long)l.l.count, l.s, l.l.macs / 1e9, st > 0 ? 100 * l.s / st : 0, gf, 100 * gf / peak.gflops_1core);
      }
    }
  }
  return 0;
}

}  // namespace

void register_bench_command(CLI::App& app, Common& common, std::vector<Command>& out) {
  auto o = std::make_shared<BenchOpts>();
  auto* sub = app.add_subcommand(
      "bench", "speed and memory of encode / decode / round trip (default model: random weights at the released dims)");
  sub->add_option("-m,--model", common.model, "model: .wtk file or checkpoint (default: random weights at the released dims)");
  sub->add_option("--config", common.config, "config.yaml for a checkpoint");
  sub->add_flag("--released-dims", o->released, "random-weight WavTokenizer at the released dims (the default)");
  sub->add_option("-t,--threads", o->threads, "the 'all threads' count (default: all hardware threads); 1 thread is always run")
      ->check(CLI::Range(1, 1024));
  sub->add_option("--seconds", o->seconds, "one input length in seconds (overrides --lengths)")
      ->check(number_in(0, kMaxSeconds, true));
  sub->add_option("--lengths", o->lengths, "comma-separated input lengths in seconds (default 1,10,60; 600 works but takes long)");
  sub->add_option("--repeats", o->repeats, "warm runs per measurement, the median is reported (default 3)")->check(CLI::Range(1, 1000));
  sub->add_option("--phases", o->phases, "comma-separated subset of encode,decode,roundtrip");
  sub->add_flag("--json", o->json, "print one JSON object");
  sub->add_option("--json-out", o->json_out, "also write the JSON object to this file");
  sub->add_flag("--profile", o->profile, "time encoder / VQ / backbone / head and each layer alone on 1 thread, with GFLOP/s");
  sub->add_option("--profile-seconds", o->profile_seconds, "input length for --profile (default 10)")
      ->check(number_in(0, kMaxSeconds, true));
  sub->add_option("--streaming", o->streaming,
                  "per-chunk latency of these streaming presets (e.g. low-latency,default,high-fidelity), 1 thread: "
                  "cold first pass, warm pass, and a fresh model's first pass after warm_up_streaming");
  sub->add_option("--stream-seconds", o->stream_seconds, "audio pushed per streaming preset (default 10)")
      ->check(number_in(0, kMaxSeconds, true));
  sub->add_option("--encode-chunk-frames", o->encode_chunk,
                  "encode inputs longer than 8 chunks of this many frames chunk by chunk (default: the model's, 150; "
                  "0: always in one pass)")
      ->check(CLI::Range(int64_t(0), int64_t(1) << 40));
  sub->add_flag("--bf16", o->bf16, "also compare float32 and bfloat16 round trips on 1 thread (time, tokens, audio SNR)");
  sub->add_flag("--baseline", o->baseline, "also time the PyTorch reference (python/bench_reference.py) and print ratios");
  sub->add_option("--python", o->python, "Python for --baseline (default /usr/bin/python3)");
  sub->add_option("--reference-script", o->reference_script, "path of python/bench_reference.py");
  sub->add_flag("--no-memory", o->no_memory, "skip the per-phase peak memory measurement (child processes)");
  sub->add_option("--seed", o->seed, "seed of the random weights");
  sub->add_flag("-q,--quiet", common.quiet, "no progress output");
  sub->add_option("--internal-mem", o->internal_mem, "")->group("");  // child side of the memory measurement
  out.push_back({sub, [o, &common]() { return run_bench(common, *o); }});
}

}  // namespace wavtok
