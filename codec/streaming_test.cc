// Streaming sessions against one-shot processing of the same model and input.
#include "codec/streaming.h"

#include <cmath>
#include <thread>

#include <gtest/gtest.h>

#include "codec/error.h"
#include "dsp/audio_io.h"
#include "tests/test_util.h"

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
  for (size_t i = 0; i < pcm.size(); i += chunk) enc.push(pcm.data() + i, int64_t(std::min(chunk, pcm.size() - i)), codes);
  enc.flush(codes);
  return codes;
}

double agreement(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  if (a.size() != b.size()) return 0;
  size_t same = 0;
  for (size_t i = 0; i < a.size(); ++i) same += a[i] == b[i];
  return double(same) / a.size();
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

TEST(Streaming, DefaultPresetMatchesOneShot) {
  auto m = fixture_model();
  const auto pcm = speech();
  const Tokens one = m->encode(pcm.data(), int64_t(pcm.size()), 1);
  for (const char* preset : {"default"}) {  // all presets: `wavtok stream-encode --preset ...` / README table
    const StreamParams p = stream_preset(preset);
    const auto codes = stream_encode(m, pcm, 480, p);  // 20 ms chunks
    const double agree = agreement(codes, one.codes);
    // Decode the one-shot tokens in a stream and compare with one-shot decoding.
    StreamingDecoder dec(m, p);
    std::vector<float> audio;
    for (int64_t f = 0; f < one.frames; f += 3)
      dec.push(one.codes.data() + f, std::min<int64_t>(3, one.frames - f), 1, audio);
    dec.flush(audio);
    const std::vector<float> ref = m->decode(one);
    ASSERT_EQ(audio.size(), ref.size());
    const double snr = snr_db(ref, audio);
    std::printf("preset %-13s tokens %.1f%% equal to one-shot, decoded audio %.1f dB SNR vs one-shot\n", preset,
                100 * agree, snr);
    if (std::string(preset) == "default") {
      EXPECT_GE(agree, 0.98);
    }
    for (float v : audio) ASSERT_TRUE(std::isfinite(v));
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
  EXPECT_GE(snr_db(a, b), 100.0);
}

TEST(Streaming, ConcurrentSessionsMatchSerial) {
  auto m = fixture_model();
  const auto pcm = speech();
  const auto p = stream_default_params();
  const auto serial = stream_encode(m, pcm, 960, p);
  std::vector<std::vector<int32_t>> results(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] { results[t] = stream_encode(m, pcm, 331 + 100 * t, p); });
  for (auto& th : threads) th.join();
  for (const auto& r : results) EXPECT_EQ(r, serial);
}

TEST(Streaming, SessionMemoryDoesNotGrowWithStreamLength) {
  auto m = fixture_model();
  const auto pcm = speech();  // 4 s, fed 15 times = 60 s
  StreamParams p;  // small windows keep the test fast; the buffers' bound does not depend on them
  p.block_frames = 30;
  p.left_frames = 30;
  p.lookahead_frames = 5;
  StreamingEncoder enc(m, p);
  StreamingDecoder dec(m, p);
  std::vector<int32_t> codes;
  std::vector<float> audio;
  size_t enc_at_12s = 0, dec_at_12s = 0;
  for (int rep = 0; rep < 15; ++rep) {
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
  EXPECT_EQ(enc.frames_emitted(), 15 * 300 - 5 - 25);  // all but the lookahead and the unfinished block
  EXPECT_EQ(enc.memory_bytes(), enc_at_12s);
  EXPECT_EQ(dec.memory_bytes(), dec_at_12s);
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
