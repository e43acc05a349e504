// Streaming sessions against one-shot processing of the same model and input.
#include "codec/streaming.h"

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <limits>
#include <new>
#include <thread>

#include <limits>

#include <gtest/gtest.h>

#include "codec/default_model.h"
#include "core/dnnl_util.h"
#include "core/error.h"
#include "dsp/audio_io.h"
#include "models/models.h"
#include "tests/testing/test_util.h"

// Every operator new of this test binary is counted while g_count_news is set (DecoderSteadyStateReusesBuffers).
// Sanitizer runtimes define operator new themselves (TSan's statically), so sanitizer builds count only tensors.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define WAVTOK_COUNT_NEW 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define WAVTOK_COUNT_NEW 0
#endif
#endif
#ifndef WAVTOK_COUNT_NEW
#define WAVTOK_COUNT_NEW 1
#endif

namespace {
std::atomic<bool> g_count_news{false};
std::atomic<uint64_t> g_news{0}, g_new_bytes{0};
}  // namespace

#if WAVTOK_COUNT_NEW
void* operator new(std::size_t n) {
  if (g_count_news.load(std::memory_order_relaxed)) {
    g_news.fetch_add(1, std::memory_order_relaxed);
    g_new_bytes.fetch_add(n, std::memory_order_relaxed);
  }
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"  // this operator new is malloc, so free is its match
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
#pragma GCC diagnostic pop
#endif

namespace wavtok {
namespace {

using namespace wavtok::testing;

std::shared_ptr<const Model> fixture_model() {
  static auto m = Model::load(fixture("wavtokenizer-75/model.ckpt"));
  return m;
}

std::vector<float> speech() { return read_audio(fixture("wavtokenizer-75/speech.input.wav"), 24000).samples; }

std::vector<int32_t> stream_encode(const std::shared_ptr<const Model>& m, const std::vector<float>& pcm, size_t chunk,
                                   const StreamParams& p) {
  StreamingEncoder enc(m, p);
  std::vector<int32_t> codes;
  for (size_t i = 0; i < pcm.size(); i += chunk)
    enc.push(pcm.data() + i, int64_t(std::min(chunk, pcm.size() - i)), codes);
  enc.flush(codes);
  return codes;
}

TEST(Streaming, AnyChunkSizeGivesTheSameTokens) {
  auto m = fixture_model();
  const auto pcm = speech();
  const auto p = stream_default_params();
  const auto whole = stream_encode(m, pcm, pcm.size(), p);
  EXPECT_EQ(whole.size(), 300u);
  for (size_t chunk : {size_t(1), size_t(7), size_t(320), size_t(1000)})
    EXPECT_EQ(stream_encode(m, pcm, chunk, p), whole) << "chunk " << chunk;
}

// A chunk with NaN or Inf is refused with the sample's index before it touches the session's state, so the stream
// goes on as if the chunk had not been pushed; one-shot encoding refuses such audio too.
TEST(Streaming, EncoderRefusesNonFiniteChunksAndGoesOn) {
  auto m = fixture_model();
  const auto pcm = speech();
  const auto want = stream_encode(m, pcm, 4800, stream_default_params());
  StreamingEncoder enc(m, stream_default_params());
  std::vector<int32_t> codes;
  std::vector<float> bad(pcm.begin(), pcm.begin() + 4800);
  for (size_t at = 0; at < pcm.size(); at += 4800) {
    if (at == 9600) {
      for (float v : {std::nanf(""), std::numeric_limits<float>::infinity()}) {
        bad[1234] = v;
        try {
          enc.push(bad.data(), 4800, codes);
          ADD_FAILURE() << "a non-finite sample was accepted";
        } catch (const Error& e) {
          EXPECT_NE(std::string(e.what()).find("sample 1234 is"), std::string::npos) << e.what();
        }
      }
    }
    enc.push(pcm.data() + at, int64_t(std::min<size_t>(4800, pcm.size() - at)), codes);
  }
  enc.flush(codes);
  EXPECT_EQ(codes, want);
  EXPECT_THROW(m->encode(bad.data(), 4800, 1), Error);
}

// The encoder streams exactly: codes equal one-shot encoding, also for streams shorter than the padding or ending
// mid-frame (WavTokenizer's encoder is non-causal: its reflect padding at both ends must match).
TEST(Streaming, EncoderCodesEqualOneShot) {
  auto m = fixture_model();
  const auto pcm = speech();
  const Tokens one = m->encode(pcm.data(), int64_t(pcm.size()), 1);
  EXPECT_EQ(stream_encode(m, pcm, 480, stream_default_params()), one.codes);
  const auto fixture_codes = npy_ints(fixture("wavtokenizer-75/speech.codes.npy"));
  EXPECT_EQ(std::vector<int32_t>(fixture_codes.begin(), fixture_codes.end()), one.codes);
  for (size_t n : {size_t(1), size_t(5), size_t(100), size_t(321), size_t(2000), size_t(3333)}) {
    std::vector<float> part(pcm.begin() + 20000, pcm.begin() + 20000 + n);
    EXPECT_EQ(stream_encode(m, part, 64, stream_default_params()), m->encode(part.data(), int64_t(n), 1).codes)
        << n << " samples";
  }
}

// Codes come out as soon as they are final: a few frames behind the input (the convolutions' right context).
TEST(Streaming, EncoderEmitsFramesPromptly) {
  auto m = fixture_model();
  const auto pcm = speech();
  StreamingEncoder enc(m, stream_default_params());
  std::vector<int32_t> codes;
  int64_t worst = 0;
  for (size_t i = 0; i < pcm.size(); i += 480) {
    enc.push(pcm.data() + i, 480, codes);
    const int64_t complete = int64_t(i + 480) / 320;
    if (i > 24000) worst = std::max(worst, complete - enc.frames_emitted());
  }
  std::printf("encoder lag after the start: at most %lld frames\n", (long long)worst);
  EXPECT_LE(worst, 4);
}

// Windowed decoding of the WavTokenizer backbone: the acceptance on a trained model (the shipped default
// model on real speech): >= 30 dB SNR against one-shot decoding with the default preset.
TEST(Streaming, DefaultPresetDecodesCloseToOneShot) {
  if (!has_embedded_default_model()) GTEST_SKIP() << "no shipped default model in this build";
  auto m = load_embedded_default_model();
  const auto pcm = speech();
  const Tokens one = m->encode(pcm.data(), int64_t(pcm.size()), 1);
  const StreamParams p = stream_preset("default");
  // Chunked convolutions and LSTM round differently from one pass; near-tie codes of a 4096-entry codebook may flip.
  const auto codes = stream_encode(m, pcm, 480, p);
  ASSERT_EQ(codes.size(), one.codes.size());
  size_t same = 0;
  for (size_t i = 0; i < codes.size(); ++i) same += codes[i] == one.codes[i];
  std::printf("default preset, shipped model: %zu of %zu codes equal to one-shot\n", same, codes.size());
  EXPECT_GE(double(same) / codes.size(), 0.99);
  StreamingDecoder dec(m, p);
  std::vector<float> audio;
  for (int64_t f = 0; f < one.frames; f += 3)
    dec.push(one.codes.data() + f, std::min<int64_t>(3, one.frames - f), 1, audio);
  dec.flush(audio);
  const std::vector<float> ref = m->decode(one);
  ASSERT_EQ(audio.size(), ref.size());
  const double snr = snr_db(ref, audio);
  std::printf("default preset, shipped model: decoded audio %.1f dB SNR vs one-shot\n", snr);
  // The bar. The shipped model's backbone is local (pos_net_norm "affine", attention_window [48, 2]:
  // recipe v5), so a window with enough lookahead decodes like the whole clip: 45.2 dB measured on this 4 s clip.
  // (The v4 model, with GroupNorm and attention over the whole clip, reached 15.0 dB; docs/STREAMING.md.)
  EXPECT_GE(snr, 30.0);
  EXPECT_TRUE(m->config().vocos.local());
  for (float v : audio) ASSERT_TRUE(std::isfinite(v));
}

// Why no decoder with bounded latency can match the upstream-architecture fixture model's one-shot audio at
// 30 dB. Two code streams that agree on their first 150 frames: any decoder that emits a frame's audio at most
// block + lookahead frames (25 at the default preset) after the frame arrives gives the same audio for frames
// 0..124 on both, since it has seen the same input. One-shot decoding does not: its GroupNorm statistics and
// near-uniform attention span the whole clip, so those frames' audio differs between the two. Whatever s the
// decoder emits there, max(|s - y|, |s - y'|) >= |y - y'| / 2, which caps the SNR that one of the two streams
// can reach. For this model the cap is far below 30 dB; for the shipped (local) model the early frames agree.
TEST(Streaming, FixtureModelsOneShotAudioDependsOnTheFarFuture) {
  const StreamParams p = stream_default_params();
  const int64_t latency = p.block_frames + p.lookahead_frames, split = 150;
  auto bound_db = [&](const std::shared_ptr<const Model>& m) {
    const auto pcm = speech();
    const Tokens a = m->encode(pcm.data(), int64_t(pcm.size()), 1);
    Tokens b = a;  // the same speech, its second half replaced by a repeat of its first half
    for (int64_t f = split; f < b.frames; ++f) b.codes[size_t(f)] = a.codes[size_t(f - split)];
    const std::vector<float> ya = m->decode(a), yb = m->decode(b);
    double pa = 0, pb = 0, d = 0;
    for (size_t i = 0; i < ya.size(); ++i) pa += double(ya[i]) * ya[i], pb += double(yb[i]) * yb[i];
    for (size_t i = 0; i < size_t((split - latency) * m->hop()); ++i)
      d += (double(ya[i]) - yb[i]) * (double(ya[i]) - yb[i]);
    return d > 0 ? 10 * std::log10(std::max(pa, pb) / (d / 4)) : INFINITY;
  };
  const double fixture_cap = bound_db(fixture_model());
  std::printf("fixture model: a decoder of latency %lld frames reaches at most %.1f dB SNR on one of two streams\n",
              (long long)latency, fixture_cap);
  EXPECT_LT(fixture_cap, 30.0);
  if (has_embedded_default_model()) {
    const double shipped_cap = bound_db(load_embedded_default_model());
    std::printf("shipped model: the same bound is %.1f dB\n", shipped_cap);
    EXPECT_GT(shipped_cap, 100.0);
  }
}

// Each emitted block is exactly that block's part of its window decoded on its own.
TEST(Streaming, DecoderBlocksAreTheirWindowsDecodedAlone) {
  auto m = fixture_model();
  auto codes = npy_ints(fixture("wavtokenizer-75/speech.codes.npy"));
  std::vector<int32_t> c(codes.begin(), codes.end());
  StreamParams p;
  p.block_frames = 15;
  p.left_frames = 30;
  p.lookahead_frames = 10;
  StreamingDecoder dec(m, p);
  std::vector<float> audio;
  dec.push(c.data(), int64_t(c.size()), 1, audio);
  dec.flush(audio);
  ASSERT_EQ(audio.size(), c.size() * 320);
  // Block 5 emits frames [75, 90) from the window [45, 100).
  Tokens w;
  w.n_q = 1;
  w.frames = 55;
  w.codes.assign(c.begin() + 45, c.begin() + 100);
  std::vector<float> alone = m->decode(w);
  std::vector<float> a(alone.begin() + 30 * 320, alone.begin() + 45 * 320);
  std::vector<float> b(audio.begin() + 75 * 320, audio.begin() + 90 * 320);
  // Without a cross-fade (crossfade_frames 0, the default) the block is its window's audio, to float rounding
  // (the session decodes only the frames that reach the block through the ConvNeXt blocks and head, and reuses
  // the embedding rows the previous window shares: ~300 dB here).
  std::printf("block 5 vs its window decoded alone: %.1f dB\n", snr_db(a, b));
  EXPECT_GE(snr_db(a, b), 100.0);
  // Every block, the last (flush) one included: block k emits [15k, 15k + 15) from [max(0, 15k - 30), 15k + 25).
  double worst = 1e9;
  for (int64_t k = 0; 15 * k < int64_t(c.size()); ++k) {
    const int64_t ws = std::max<int64_t>(0, 15 * k - 30), we = std::min<int64_t>(int64_t(c.size()), 15 * k + 25);
    const int64_t be = std::min<int64_t>(we, 15 * k + 15);
    Tokens wk;
    wk.n_q = 1;
    wk.frames = we - ws;
    wk.codes.assign(c.begin() + ws, c.begin() + we);
    const std::vector<float> al = m->decode(wk);
    worst = std::min(worst, snr_db(std::vector<float>(al.begin() + (15 * k - ws) * 320, al.begin() + (be - ws) * 320),
                                   std::vector<float>(audio.begin() + 15 * k * 320, audio.begin() + be * 320)));
  }
  std::printf("every block vs its window decoded alone: >= %.1f dB\n", worst);
  EXPECT_GE(worst, 100.0);
  // The session after flush() is a new stream (frames count from 0; nothing kept refers to the old one).
  std::vector<float> again;
  dec.push(c.data(), int64_t(c.size()), 1, again);
  dec.flush(again);
  EXPECT_EQ(again, audio);

  // With a 4-frame cross-fade, the block's first 4 frames blend from block 4's window (whose lookahead covered
  // them) to this window: exactly w * this + (1 - w) * previous, and the rest of the block is unchanged.
  p.crossfade_frames = 4;
  StreamingDecoder faded(m, p);
  std::vector<float> fa;
  faded.push(c.data(), int64_t(c.size()), 1, fa);
  faded.flush(fa);
  ASSERT_EQ(fa.size(), audio.size());
  w.frames = 55;  // block 4 emits [60, 75) from the window [30, 85); its audio past the block is frames [75, 85)
  w.codes.assign(c.begin() + 30, c.begin() + 85);
  const std::vector<float> prev = m->decode(w);
  const int64_t fade = 4 * 320;
  std::vector<float> want(b.begin(), b.end()), got(fa.begin() + 75 * 320, fa.begin() + 90 * 320);
  for (int64_t i = 0; i < fade; ++i) {
    const float wt = float(i + 1) / float(fade + 1);
    want[size_t(i)] = (1 - wt) * prev[size_t(45 * 320 + i)] + wt * b[size_t(i)];
  }
  std::printf("block 5 with a 4-frame cross-fade vs the blend of the two windows decoded alone: %.1f dB\n",
              snr_db(want, got));
  EXPECT_GE(snr_db(want, got), 100.0);
}

// Encoder and decoder sessions on 4 threads sharing one model (WavTokenizer and EnCodec) give the serial results.
TEST(Streaming, ConcurrentSessionsMatchSerial) {
  const auto pcm = speech();
  for (auto m : {fixture_model(), Model::load(fixture("encodec-24k/model.th"))}) {
    StreamParams p = stream_default_params();
    p.n_q = std::min(4, m->max_n_q());
    // Short windows: the sessions' independence does not depend on the window, and each window is decoded whole,
    // so the default preset's 175-frame windows would cost 17x the audio (minutes under ThreadSanitizer).
    p.left_frames = 20;
    p.lookahead_frames = 5;
    auto roundtrip = [&](size_t chunk) {
      std::pair<std::vector<int32_t>, std::vector<float>> r;
      r.first = stream_encode(m, pcm, chunk, p);
      StreamingDecoder dec(m, p);
      const int64_t frames = int64_t(r.first.size()) / p.n_q;
      for (int64_t f = 0; f < frames; f += 2)
        dec.push(r.first.data() + f * p.n_q, std::min<int64_t>(2, frames - f), p.n_q, r.second);
      dec.flush(r.second);
      return r;
    };
    const auto serial = roundtrip(960);
    std::vector<std::pair<std::vector<int32_t>, std::vector<float>>> results(4);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) threads.emplace_back([&, t] { results[t] = roundtrip(331 + 100 * t); });
    for (auto& th : threads) th.join();
    for (const auto& r : results) {
      EXPECT_EQ(r.first, serial.first) << arch_name(m->config().arch);
      ASSERT_EQ(r.second.size(), serial.second.size());
      EXPECT_GE(snr_db(serial.second, r.second), 100.0) << arch_name(m->config().arch);  // same codes, same windows
    }
  }
}

TEST(Streaming, SessionMemoryDoesNotGrowWithStreamLength) {
  auto m = fixture_model();
  const auto pcm = speech();  // 4 s, fed 30 times = 120 s
  StreamParams p;             // small windows keep the test fast; the buffers' bound does not depend on them
  p.block_frames = 30;
  p.left_frames = 30;
  p.lookahead_frames = 5;
  StreamingEncoder enc(m, p);
  StreamingDecoder dec(m, p);
  std::vector<int32_t> codes;
  std::vector<float> audio;
  size_t enc_at_12s = 0, dec_at_12s = 0;
  for (int rep = 0; rep < 30; ++rep) {
    for (size_t i = 0; i < pcm.size(); i += 480) {
      codes.clear();
      enc.push(pcm.data() + i, int64_t(std::min<size_t>(480, pcm.size() - i)), codes);
      audio.clear();
      if (!codes.empty()) dec.push(codes.data(), int64_t(codes.size()), 1, audio);
    }
    if (rep == 2) {
      enc_at_12s = enc.memory_bytes();
      dec_at_12s = dec.memory_bytes();
    }
  }
  // Frames come out as soon as final: all but the few whose right context (non-causal convs) is still missing.
  EXPECT_LE(enc.frames_emitted(), 30 * 300);
  EXPECT_GE(enc.frames_emitted(), 30 * 300 - 4);
  EXPECT_GT(enc_at_12s, 0u);
  EXPECT_EQ(enc.memory_bytes(), enc_at_12s);
  EXPECT_EQ(dec.memory_bytes(), dec_at_12s);
}

// The YAML presets shipped in configs/streaming are the built-in ones.
// Once its windows have their full size, the windowed decoder reuses its buffers: no tensor buffer and no
// window-sized vector is allocated per block. What remains are oneDNN's small per-execution argument maps.
// After warm_up_streaming, a real stream with the same parameters and chunk size creates no oneDNN primitive
// until its end (upstream-architecture fixture, EnCodec fixture, shipped model); without it, one does.
TEST(Streaming, WarmUpCreatesEveryShapeAStreamUses) {
  const auto pcm = speech();
  const int64_t chunk = 480;  // 20 ms
  auto stream = [&](const std::shared_ptr<const Model>& m, const StreamParams& p) {
    StreamingEncoder enc(m, p);
    StreamingDecoder dec(m, p);
    std::vector<int32_t> codes;
    std::vector<float> audio;
    for (size_t at = 0; at < pcm.size(); at += chunk) {
      codes.clear();
      const int64_t got = enc.push(pcm.data() + at, std::min<int64_t>(chunk, int64_t(pcm.size() - at)), codes);
      if (got > 0) dec.push(codes.data(), got, enc.n_q(), audio);
    }
    return audio.size();
  };
  std::vector<std::function<std::shared_ptr<const Model>()>> loaders{
      [] { return Model::load(fixture("wavtokenizer-75/model.ckpt")); },
      [] { return Model::load(fixture("encodec-24k/model.th")); }};
  if (has_embedded_default_model()) loaders.push_back([] { return load_embedded_default_model(); });
  // Under the sanitizers (~6x slower) one model: warm_up_streaming runs the same code for every model, and which
  // shapes a model needs is what the Release build checks.
  if (!WAVTOK_COUNT_NEW) loaders.resize(1);
  for (const auto& load : loaders) {
    for (const StreamParams& p : {stream_default_params(), stream_preset("low-latency")}) {
      auto cold = load();
      uint64_t before = shapes_created();
      ASSERT_GT(stream(cold, p), 0u);
      const uint64_t cold_shapes = shapes_created() - before;
      EXPECT_GT(cold_shapes, 0u);
      auto warm = load();
      const int64_t made = warm_up_streaming(warm, p, chunk);
      before = shapes_created();
      ASSERT_GT(stream(warm, p), 0u);
      std::printf("%s, block %d: a cold stream created %llu shapes; warm-up created %lld, the stream after it %llu\n",
                  arch_name(warm->config().arch), p.block_frames, static_cast<unsigned long long>(cold_shapes),
                  static_cast<long long>(made), static_cast<unsigned long long>(shapes_created() - before));
      EXPECT_EQ(shapes_created(), before);
    }
  }
  auto m = Model::load(fixture("wavtokenizer-75/model.ckpt"));
  EXPECT_THROW(warm_up_streaming(m, stream_default_params(), 0), Error);
  EXPECT_THROW(warm_up_streaming(nullptr, stream_default_params(), 480), Error);
}

TEST(Streaming, DecoderSteadyStateReusesBuffers) {
  auto m = fixture_model();
  const auto pcm = speech();
  const Tokens t = m->encode(pcm.data(), int64_t(pcm.size()), 1);
  const StreamParams p = stream_default_params();
  StreamingDecoder dec(m, p);
  std::vector<float> out;
  out.reserve(size_t(t.frames * m->hop()) * 2);
  const int64_t warm = p.left_frames + p.block_frames + p.lookahead_frames + p.block_frames;
  ASSERT_LT(warm + 3 * p.block_frames, t.frames);
  for (int64_t f = 0; f < warm; ++f) dec.push(t.codes.data() + f, 1, 1, out);
  const uint64_t tensors = tensor_buffer_allocations();
  g_news = 0;
  g_new_bytes = 0;
  g_count_news = true;
  int64_t emitted = 0;
  for (int64_t f = warm; f < t.frames; ++f) emitted += dec.push(t.codes.data() + f, 1, 1, out);
  g_count_news = false;
  const int64_t blocks = emitted / (p.block_frames * m->hop());
  ASSERT_GE(blocks, 3);
  const double per_block = double(g_new_bytes.load()) / double(blocks);
  std::printf("steady state: %lld blocks, %.0f operator-new calls and %.0f bytes per block, %llu tensor buffers\n",
              static_cast<long long>(blocks), double(g_news.load()) / double(blocks), per_block,
              static_cast<unsigned long long>(tensor_buffer_allocations() - tensors));
  EXPECT_EQ(tensor_buffer_allocations(), tensors);
  if (!WAVTOK_COUNT_NEW) return;  // (sanitizer build: operator new belongs to the sanitizer runtime)
  // One window's audio alone is (left + block + lookahead) * hop floats = 224 KB here, its spectrum 900 KB.
  EXPECT_LT(per_block, 64.0 * 1024);
}

TEST(Streaming, PresetFilesMatchBuiltIns) {
  for (const char* name : {"low-latency", "default", "high-fidelity", "realtime"}) {
    const StreamParams a = stream_preset(name);
    const StreamParams b = stream_preset(source_dir() + "/configs/streaming/" + name + ".yaml");
    EXPECT_EQ(a.block_frames, b.block_frames) << name;
    EXPECT_EQ(a.left_frames, b.left_frames) << name;
    EXPECT_EQ(a.lookahead_frames, b.lookahead_frames) << name;
    EXPECT_EQ(a.n_q, b.n_q) << name;
    EXPECT_EQ(a.bandwidth_id, b.bandwidth_id) << name;
    EXPECT_EQ(a.crossfade_frames, b.crossfade_frames) << name;
    EXPECT_EQ(a.require_causal, b.require_causal) << name;
  }
  const std::string bad = scratch_dir("stream_preset") + "/typo.yaml";
  std::FILE* f = std::fopen(bad.c_str(), "w");
  std::fputs("block_frames: 10\nlookahed_frames: 3\n", f);
  std::fclose(f);
  try {
    stream_preset(bad);
    ADD_FAILURE() << "unknown key accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("lookahed_frames"), std::string::npos) << e.what();
  }
  const StreamParams d = stream_default_params(), named = stream_preset("default");
  EXPECT_EQ(d.left_frames, named.left_frames);
  EXPECT_EQ(d.lookahead_frames, named.lookahead_frames);
}

// ---------------------------------------------------------------- EnCodec: exact streaming

std::shared_ptr<const Model> encodec_model() {
  static auto m = Model::load(fixture("encodec-24k/model.th"));
  return m;
}

std::vector<int32_t> frame_major(const Tokens& t) {
  std::vector<int32_t> out(t.codes.size());
  for (int64_t f = 0; f < t.frames; ++f)
    for (int q = 0; q < t.n_q; ++q) out[size_t(f) * t.n_q + q] = t.codes[size_t(q) * t.frames + f];
  return out;
}

std::vector<float> stream_decode(const std::shared_ptr<const Model>& m, const std::vector<int32_t>& codes, int n_q,
                                 int64_t frames_per_push) {
  StreamingDecoder dec(m, stream_default_params());
  std::vector<float> audio;
  const int64_t frames = int64_t(codes.size()) / n_q;
  for (int64_t f = 0; f < frames; f += frames_per_push)
    dec.push(codes.data() + f * n_q, std::min(frames_per_push, frames - f), n_q, audio);
  dec.flush(audio);
  return audio;
}

// Codes equal to the reference implementation's (and so to one-shot encoding), audio equal to one-shot decoding.
TEST(EncodecStreaming, CodesAndAudioEqualOneShot) {
  auto m = encodec_model();
  const auto pcm = read_audio(fixture("encodec-24k/speech.input.wav"), 24000).samples;
  for (const char* bw : {"1.5", "6", "24"}) {
    StreamParams p = stream_default_params();
    p.n_q = m->config().n_q_for_bandwidth(std::stod(bw));
    ASSERT_TRUE(streams_exactly(*m));
    const auto codes = stream_encode(m, pcm, 480, p);
    // Fixture layout (n_q, 1, frames) -> frame-major.
    const auto ref = npy_ints(fixture(std::string("encodec-24k/speech.bw") + bw + ".codes.npy"));
    Tokens ref_t;
    ref_t.n_q = p.n_q;
    ref_t.frames = 300;
    ref_t.codes.assign(ref.begin(), ref.end());
    ASSERT_EQ(codes.size(), ref.size()) << bw;
    EXPECT_EQ(codes, frame_major(m->encode(pcm.data(), int64_t(pcm.size()), p.n_q))) << bw << " kbps";
    // The reference's own tolerance: >= 99% of codes (deep codebooks of 24 kbps code tiny residuals).
    const auto ref_fm = frame_major(ref_t);
    size_t same = 0;
    for (size_t i = 0; i < codes.size(); ++i) same += codes[i] == ref_fm[i];
    EXPECT_GE(double(same) / codes.size(), 0.99) << bw << " kbps vs the reference";
    if (std::string(bw) != "24") {
      EXPECT_EQ(codes, ref_fm) << bw << " kbps";
    }
    const std::vector<float> one = m->decode(ref_t);
    const std::vector<float> streamed = stream_decode(m, codes, p.n_q, 2);
    ASSERT_EQ(streamed.size(), one.size());
    const double snr = snr_db(one, streamed);
    std::printf("EnCodec %s kbps: streamed audio %.1f dB SNR vs one-shot\n", bw, snr);
    EXPECT_GE(snr, 60.0) << bw << " kbps";
    const auto fixture_audio = read_audio(fixture(std::string("encodec-24k/speech.bw") + bw + ".decoded.wav"), 24000);
    EXPECT_GE(snr_db(fixture_audio.samples, streamed), 50.0) << bw << " kbps vs the reference decoder";
  }
}

TEST(EncodecStreaming, AnyChunkSizeAndShortStreams) {
  auto m = encodec_model();
  const auto pcm = read_audio(fixture("encodec-24k/speech.input.wav"), 24000).samples;
  StreamParams p = stream_default_params();
  p.n_q = 8;
  const auto one = frame_major(m->encode(pcm.data(), int64_t(pcm.size()), 8));
  for (size_t chunk : {size_t(1), size_t(7), size_t(320), size_t(1000), pcm.size()})
    EXPECT_EQ(stream_encode(m, pcm, chunk, p), one) << "chunk " << chunk;
  // Streams shorter than the reflect pads' context, or ending mid-frame, end like the one-shot path.
  for (size_t n : {size_t(1), size_t(5), size_t(100), size_t(321), size_t(2000), size_t(3333)}) {
    std::vector<float> part(pcm.begin() + 20000, pcm.begin() + 20000 + n);
    const Tokens t = m->encode(part.data(), int64_t(n), 8);
    EXPECT_EQ(stream_encode(m, part, 64, p), frame_major(t)) << n << " samples";
    const auto fm = frame_major(t);
    const auto one_audio = m->decode(t);
    const auto streamed = stream_decode(m, fm, 8, 1);
    ASSERT_EQ(streamed.size(), one_audio.size()) << n << " samples";
    EXPECT_GE(snr_db(one_audio, streamed), 60.0) << n << " samples";
  }
}

TEST(EncodecStreaming, SessionIsReusableAfterFlushAndMemoryIsBounded) {
  auto m = encodec_model();
  const auto pcm = read_audio(fixture("encodec-24k/speech.input.wav"), 24000).samples;
  StreamParams p = stream_default_params();
  p.n_q = 2;
  StreamingEncoder enc(m, p);
  StreamingDecoder dec(m, p);
  std::vector<int32_t> codes, all;
  std::vector<float> audio;
  size_t enc_mem = 0, dec_mem = 0;
  const int reps = 8;  // 32 s: the sessions' buffers reach their size within the first 12 s and stay there
  for (int rep = 0; rep < reps; ++rep) {
    for (size_t i = 0; i < pcm.size(); i += 480) {
      codes.clear();
      enc.push(pcm.data() + i, 480, codes);
      audio.clear();
      if (!codes.empty()) dec.push(codes.data(), int64_t(codes.size()) / 2, 2, audio);
    }
    if (rep == 2) {  // 12 s
      enc_mem = enc.memory_bytes();
      dec_mem = dec.memory_bytes();
    }
  }
  EXPECT_EQ(enc.frames_emitted(), reps * 300);  // every whole frame is out, no lookahead
  EXPECT_EQ(enc.memory_bytes(), enc_mem);
  EXPECT_EQ(dec.memory_bytes(), dec_mem);
  enc.flush(codes);
  // A flushed session starts a new stream.
  all.clear();
  enc.push(pcm.data(), int64_t(pcm.size()), all);
  enc.flush(all);
  EXPECT_EQ(all, frame_major(m->encode(pcm.data(), int64_t(pcm.size()), 2)));
}

// A push with a code outside the codebook, or more codebooks than the model has, is refused before it touches the
// session's state: the stream goes on as if it had not been pushed (windowed WavTokenizer and exact EnCodec).
TEST(Streaming, DecoderRefusesBadCodesAndGoesOn) {
  for (const auto& m : {fixture_model(), encodec_model()}) {
    const auto pcm =
        read_audio(fixture(m == fixture_model() ? "wavtokenizer-75/speech.input.wav" : "encodec-24k/speech.input.wav"),
                   24000)
            .samples;
    const int n_q = m->max_n_q() > 1 ? 2 : 1;
    const auto codes = frame_major(m->encode(pcm.data(), int64_t(pcm.size()), n_q));
    const auto want = stream_decode(m, codes, n_q, 3);
    StreamingDecoder dec(m, stream_default_params());
    std::vector<float> audio;
    const int64_t frames = int64_t(codes.size()) / n_q;
    const int bins = m->config().quantizer.bins;
    for (int64_t f = 0; f < frames; f += 3) {
      const int64_t k = std::min<int64_t>(3, frames - f);
      if (f == 30) {
        std::vector<int32_t> bad(codes.begin() + f * n_q, codes.begin() + (f + k) * n_q);
        bad.back() = bins;
        EXPECT_THROW(dec.push(bad.data(), k, n_q, audio), Error);
        bad.back() = -1;
        EXPECT_THROW(dec.push(bad.data(), k, n_q, audio), Error);
        std::vector<int32_t> wide(size_t(k) * (m->max_n_q() + 1), 0);
        EXPECT_THROW(dec.push(wide.data(), k, m->max_n_q() + 1, audio), Error);
      }
      dec.push(codes.data() + f * n_q, k, n_q, audio);
    }
    dec.flush(audio);
    ASSERT_EQ(audio.size(), want.size());
    EXPECT_EQ(audio, want) << (m == fixture_model() ? "WavTokenizer" : "EnCodec");
  }
}

// The codebook count may change between pushes: an EnCodec-format stream switching bitrate mid-stream decodes
// like a one-shot decode of the same per-frame latents.
TEST(EncodecStreaming, BitrateMayChangeBetweenPushes) {
  auto m = encodec_model();
  const auto pcm = read_audio(fixture("encodec-24k/speech.input.wav"), 24000).samples;
  const Tokens t8 = m->encode(pcm.data(), int64_t(pcm.size()), 8);
  const auto fm = frame_major(t8);
  StreamingDecoder dec(m, stream_default_params());
  std::vector<float> audio;
  Tensor lat({m->latent_dim(), t8.frames});
  std::vector<float> one(size_t(m->latent_dim()));
  for (int64_t f = 0; f < t8.frames; ++f) {
    const int n_q = (f / 50) % 2 ? 2 : 8;  // 6 kbps and 1.5 kbps in turns of 50 frames
    std::vector<int32_t> c(fm.begin() + f * 8, fm.begin() + f * 8 + n_q);
    dec.push(c.data(), 1, n_q, audio);
    m->quantizer().decode(c.data(), 1, n_q, one.data());
    for (int d = 0; d < m->latent_dim(); ++d) lat[d * t8.frames + f] = one[size_t(d)];
  }
  dec.flush(audio);
  const std::vector<float> want = m->decode_latents(lat);
  ASSERT_EQ(audio.size(), want.size());
  // This random-weight fixture's audio hardly depends on the codebooks past the first (8 vs 2 codebooks: ~90 dB
  // apart), so what this checks is that each push's codes are read with that push's n_q.
  EXPECT_GE(snr_db(want, audio), 60.0);
}

TEST(Streaming, RefusesBadParameters) {
  StreamParams p;
  p.block_frames = 0;
  EXPECT_THROW(StreamingEncoder(fixture_model(), p), Error);
  p = stream_default_params();
  p.n_q = 2;
  EXPECT_THROW(StreamingEncoder(fixture_model(), p), Error);
  EXPECT_THROW(stream_preset("no-such-preset"), Error);
}

}  // namespace
}  // namespace wavtok
