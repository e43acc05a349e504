// `wavtok bench` measurements: phases per length and thread count, one frame, memory (child processes),
// streaming latency per preset, float32 vs bfloat16.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <ctime>
#include <functional>
#include <map>
#include <optional>
#include <regex>
#include <sstream>
#include <thread>

#include "apps/bench/bench.h"
#include "codec/streaming.h"
#include "core/dnnl_util.h"
#include "core/error.h"
#include "core/file_util.h"
#include "core/util.h"
#include "models/models.h"

#include <filesystem>

namespace wavtok::bench {

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
    m = load_model_only(c);  // a file or a shipped model's name (-m rt)
  } else {
    m = random_wavtokenizer(released_dims_config(), o.seed);
  }
  if (o.encode_chunk >= 0) m->set_encode_chunk_frames(o.encode_chunk);
  return m;
}

double secs_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

double thread_cpu_ms() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return 1000.0 * double(ts.tv_sec) + double(ts.tv_nsec) / 1e6;
}

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
    run.one_frame_encode_s =
        time_phase("encode", 0, threads, 5, [&] { m.encode(one.data(), int64_t(one.size()), nq); }).median_s;
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
        std::fprintf(stderr, "[bench] %-9s %7.1f s  %d thr  %8.3f s  %7.2fx RT  (cold %.3f s)\n", p.c_str(), sec,
                     threads, r.median_s, r.xrt(), r.first_s);
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
  std::string cmd = shell_quote(self_exe()) + " bench -q --internal-mem " + phase + " --seconds " +
                    std::to_string(sec) + " -t " + std::to_string(threads) + " --seed " + std::to_string(o.seed);
  if (!c.model.empty() && !o.released) cmd += " -m " + shell_quote(c.model);
  if (!c.config.empty()) cmd += " --config " + shell_quote(c.config);
  if (o.encode_chunk >= 0) cmd += " --encode-chunk-frames " + std::to_string(o.encode_chunk);
  const std::string out = run_capture(cmd);
  MemResult r;
  r.phase = phase, r.seconds = sec;
  int ok = 0;
  if (std::sscanf(out.c_str() + std::min(out.size(), out.find("MEM ")), "MEM %lf %lf %d", &r.model_mib, &r.peak_mib,
                  &ok) < 2)
    throw Error("bench: memory child printed no reading: " + out);
  if (!ok) r.model_mib = 0;  // the peak could not be reset: only the absolute peak is meaningful
  return r;
}

double pct(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, size_t(q * (v.size() - 1) + 0.5))];
}

// Pushes `seconds` of audio block by block through a StreamingEncoder, then the codes through a StreamingDecoder,
// timing every push call that emitted output (ms). With `fresh` (a model that has run nothing yet), also times
// warm_up_streaming on it and the first pass after it.
StreamResult run_streaming(const std::shared_ptr<const Model>& model, const std::string& preset, double seconds,
                           const std::shared_ptr<const Model>& fresh) {
  StreamResult r;
  r.preset = preset;
  r.p = stream_preset(preset);
  const Model& m = *model;
  r.exact = streams_exactly(m);
  r.latency_ms = m.config().causal() && r.exact
                     ? 1000.0 * double(causal_latency_samples(m.config())) / m.sample_rate()
                     : 1000.0 * (r.p.block_frames + r.p.lookahead_frames) * m.hop() / m.sample_rate();
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
  {                                              // the live stream, on the warm model
    const int64_t chunk = m.sample_rate() / 50;  // 20 ms
    StreamingEncoder enc(model, r.p);
    StreamingDecoder dec(model, r.p);
    std::vector<int32_t> codes;
    std::vector<float> out;
    std::vector<double> per_chunk, per_chunk_cpu;  // exact decoders: encode + decode ms of every chunk
    out.reserve(size_t(n));
    for (int64_t at = 0; at < n && (r.first_audio_ms == 0 || r.exact); at += chunk) {
      const int64_t len = std::min(chunk, n - at);
      const double arrived_ms = 1000.0 * double(at + len) / m.sample_rate();
      codes.clear();
      const double cpu0 = thread_cpu_ms();
      auto t0 = Clock::now();
      const int64_t frames = enc.push(audio.data() + at, len, codes);
      const double enc_ms = 1000 * secs_since(t0);
      if (frames == 0) {
        per_chunk.push_back(enc_ms);
        per_chunk_cpu.push_back(thread_cpu_ms() - cpu0);
        continue;
      }
      if (r.first_token_ms == 0) r.first_token_ms = arrived_ms + enc_ms, r.first_token_audio_ms = arrived_ms;
      const size_t before = out.size();
      t0 = Clock::now();
      dec.push(codes.data(), frames, enc.n_q(), out);
      const double dec_ms = 1000 * secs_since(t0);
      per_chunk.push_back(enc_ms + dec_ms);
      per_chunk_cpu.push_back(thread_cpu_ms() - cpu0);
      if (before == 0 && !out.empty())
        r.first_audio_ms = arrived_ms + enc_ms + dec_ms, r.first_audio_audio_ms = arrived_ms;
    }
    if (r.exact) {
      r.live_p50 = pct(per_chunk, 0.5), r.live_p99 = pct(per_chunk, 0.99), r.live_max = pct(per_chunk, 1.0);
      r.live_cpu_p50 = pct(per_chunk_cpu, 0.5), r.live_cpu_p99 = pct(per_chunk_cpu, 0.99);
      r.live_cpu_max = pct(per_chunk_cpu, 1.0);
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
  r.snr_db = snr_db(af, ab);
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

}  // namespace wavtok::bench
