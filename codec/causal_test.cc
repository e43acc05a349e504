// Causal models (ModelConfig::causal(), docs/STREAMING.md "Causal models"): a small random-weight causal
// WavTokenizer made by the PyTorch reference (python/make_reference_fixtures.py --config 75c) is checked against
// the reference's outputs, then streamed at chunk sizes from 1 sample to 1 s against one-shot (bit for bit), and
// the realtime preset's latency is checked against its closed form.
#include <algorithm>
#include <filesystem>
#include <random>
#include <string>

#include <gtest/gtest.h>
#include <unistd.h>

#include "codec/streaming.h"
#include "core/error.h"
#include "dsp/audio_io.h"
#include "io/config.h"
#include "io/model_file.h"
#include "models/model.h"
#include "tests/testing/layer_testing.h"
#include "tests/testing/reference_check.h"
#include "tests/testing/test_util.h"

namespace wavtok {
namespace {

using namespace wavtok::testing;

class CausalModel : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // One folder per process: CTest runs each test of this suite as its own process, in parallel.
    dir_ = scratch_dir("causal75_" + std::to_string(::getpid()));
    ok_ = run_python(source_dir() + "/python/make_reference_fixtures.py --config 75c --quiet --out " + dir_) == 0;
  }
  static void TearDownTestSuite() { std::filesystem::remove_all(dir_); }
  void SetUp() override {
    ASSERT_TRUE(ok_) << "the PyTorch reference could not make the causal model: run scripts/setup.sh (python3-torch)";
  }
  static std::shared_ptr<const Model> model() { return Model::load(dir_ + "/model.ckpt"); }
  static std::vector<float> clip() { return read_audio(dir_ + "/speech.input.wav", 24000).samples; }
  static std::string dir_;
  static bool ok_;
};
std::string CausalModel::dir_;
bool CausalModel::ok_ = false;

TEST_F(CausalModel, MatchesTheReference) {
  auto m = model();
  const ModelConfig& c = m->config();
  EXPECT_TRUE(c.causal());
  EXPECT_TRUE(c.encoder.causal);
  EXPECT_TRUE(c.vocos.causal);
  EXPECT_EQ(c.encoder.pad_mode, "constant");
  EXPECT_EQ(c.vocos.attention_right, 0);
  EXPECT_EQ(c.vocos.n_fft, 640);
  EXPECT_TRUE(m->frame_stepped());
  EXPECT_TRUE(streams_exactly(*m));
  // Codes >= 99% equal, latents/features <= 1e-3, decoded audio >= 50 dB against the reference's one-shot run.
  check_against(*m, dir_);
  // The .wtk keeps the causal config and gives the same results.
  const std::string wtk = dir_ + "/m.wtk";
  write_model_file(wtk, c, m->weights());
  auto b = Model::load(wtk);
  EXPECT_TRUE(b->config().causal());
  EXPECT_EQ(b->config().encoder.pad_mode, "constant");
  EXPECT_EQ(b->fingerprint(), m->fingerprint());
  const std::vector<float> x = clip();
  const Tokens ta = m->encode(x.data(), 24000, 1), tb = b->encode(x.data(), 24000, 1);
  EXPECT_EQ(ta.codes, tb.codes);
  EXPECT_EQ(m->decode(ta), b->decode(tb));
}

// Streamed codes and audio equal one-shot bit for bit at every chunk size; the codes go to the decoder as soon as
// the encoder emits them (a live loopback). With 1-sample chunks, every output sample's latency (input samples
// received when it left, minus its index) is at most the closed form, and reaches it.
TEST_F(CausalModel, StreamsBitIdenticallyToOneShotAtEveryChunkSize) {
  auto m = model();
  std::vector<float> x = clip();
  x.resize(x.size() - 123);  // not a whole number of hops: the end-of-stream padding is exercised too
  const int64_t n = int64_t(x.size());
  const Tokens one = m->encode(x.data(), n, 1);
  const std::vector<float> audio_one = m->decode(one);
  ASSERT_EQ(int64_t(audio_one.size()), one.frames * 320);
  const StreamParams p = stream_preset("realtime");
  const int64_t latency = causal_latency_samples(m->config());
  EXPECT_EQ(latency, 320 + (640 - 320) / 2);
  for (int64_t chunk : {int64_t(1), int64_t(7), int64_t(320), int64_t(4801), int64_t(24000)}) {
    SCOPED_TRACE("chunk " + std::to_string(chunk));
    StreamingEncoder enc(m, p);
    StreamingDecoder dec(m, p);
    EXPECT_TRUE(dec.exact());
    std::vector<int32_t> codes, fresh;
    std::vector<float> audio;
    int64_t worst = 0;
    for (int64_t at = 0; at < n; at += chunk) {
      const int64_t len = std::min(chunk, n - at);
      fresh.clear();
      const int64_t got = enc.push(x.data() + at, len, fresh);
      // Zero-padded causal convolutions: a frame is final as soon as its hop arrived.
      EXPECT_EQ(enc.frames_emitted(), (at + len) / 320);
      codes.insert(codes.end(), fresh.begin(), fresh.end());
      const size_t before = audio.size();
      if (got > 0) dec.push(fresh.data(), got, 1, audio);
      for (size_t i = before; i < audio.size(); ++i) worst = std::max(worst, at + len - int64_t(i));
    }
    fresh.clear();
    const int64_t got = enc.flush(fresh);
    codes.insert(codes.end(), fresh.begin(), fresh.end());
    if (got > 0) dec.push(fresh.data(), got, 1, audio);
    dec.flush(audio);
    EXPECT_EQ(codes, one.codes);
    EXPECT_EQ(audio, audio_one);
    if (chunk == 1) EXPECT_EQ(worst, latency);  // the closed form is the measured worst case
    EXPECT_LE(worst, latency + chunk - 1);
    // Sessions are reusable: a second stream in one push gives the same again.
    std::vector<int32_t> again;
    enc.push(x.data(), n, again);
    enc.flush(again);
    EXPECT_EQ(again, one.codes);
  }
}

// Low-rank adapters on the backbone's convolutions (backbone.embed, the pos_net ResnetBlock convs; RILQ, docs/PTQ.md
// "Low-rank adapters") and on a pointwise Linear keep the frame-by-frame decoder bit-identical to one-shot at every
// push size: each adapter runs inside its layer's call, on the same rows.
TEST_F(CausalModel, ConvAdaptersStreamBitIdentically) {
  auto plain = model();
  WeightMap w = plain->weights();
  std::mt19937 rng(31);
  for (const std::string n : {"backbone.embed", "backbone.pos_net.0.conv1", "backbone.pos_net.1.conv2",
                              "backbone.pos_net.3.conv1", "backbone.pos_net.4.conv2"}) {
    const Tensor& k = w.get(n + ".weight");  // [Cout, Cin, K]
    w.set(n + ".lora_a", wavtok::testing::randn({4, k.dim(1), k.dim(2)}, rng, 0.05f));
    w.set(n + ".lora_b", wavtok::testing::randn({k.dim(0), 4}, rng, 0.05f));
  }
  const Tensor& pw = w.get("backbone.convnext.0.pwconv1.weight");
  w.set("backbone.convnext.0.pwconv1.lora_a", wavtok::testing::randn({4, pw.dim(1)}, rng, 0.05f));
  w.set("backbone.convnext.0.pwconv1.lora_b", wavtok::testing::randn({pw.dim(0), 4}, rng, 0.05f));
  auto m = Model::from_weights(plain->config(), w);
  ASSERT_TRUE(m->frame_stepped());
  const std::vector<float> x = clip();
  const Tokens t = m->encode(x.data(), int64_t(x.size()), 1);
  const std::vector<float> one = m->decode(t), without = plain->decode(t);
  ASSERT_EQ(one.size(), without.size());
  double diff = 0;
  for (size_t i = 0; i < one.size(); ++i) diff = std::max(diff, double(std::abs(one[i] - without[i])));
  EXPECT_GT(diff, 1e-4) << "the adapters changed nothing";
  for (int64_t frames : {int64_t(1), int64_t(3), int64_t(50)}) {
    StreamingDecoder dec(m, stream_preset("realtime"));
    std::vector<float> audio;
    for (int64_t f = 0; f < t.frames; f += frames)
      dec.push(t.codes.data() + f, std::min(frames, t.frames - f), 1, audio);
    dec.flush(audio);
    EXPECT_EQ(audio, one) << frames << " frames per push";
  }
}

// One-shot decoding is itself a stream: decoding a prefix gives the first samples of the whole decode up to the
// iSTFT tail of the prefix's last frame, and a long input (past the windowed decoder's limit) is not windowed.
TEST_F(CausalModel, DecodingAPrefixGivesTheSameSamples) {
  auto m = model();
  const std::vector<float> x = clip();
  const Tokens t = m->encode(x.data(), int64_t(x.size()), 1);
  const std::vector<float> whole = m->decode(t);
  Tokens part = t;
  part.frames = 100;
  part.codes.resize(100);
  const std::vector<float> prefix = m->decode(part);
  const int64_t kept = 100 * 320 - 160;  // the last frame's second half depends on the frame after it
  ASSERT_EQ(prefix.size(), size_t(100 * 320));
  EXPECT_TRUE(std::equal(prefix.begin(), prefix.begin() + kept, whole.begin()));
  EXPECT_FALSE(std::equal(prefix.begin() + kept, prefix.end(), whole.begin() + kept));
  m->set_decode_window_frames(16);
  EXPECT_EQ(m->decode(t), whole);
}

// A live realtime stream in steady state allocates no tensor buffer: every layer keeps fixed-size contexts.
TEST_F(CausalModel, SteadyStreamAllocatesNoTensorBuffers) {
  auto m = model();
  const std::vector<float> x = clip();
  StreamingEncoder enc(m, stream_preset("realtime"));
  StreamingDecoder dec(m, stream_preset("realtime"));
  std::vector<int32_t> codes;
  std::vector<float> audio;
  codes.reserve(1000);
  audio.reserve(x.size());
  auto push = [&](int64_t at) {
    codes.clear();
    const int64_t got = enc.push(x.data() + at, 480, codes);  // 20 ms
    if (got > 0) dec.push(codes.data(), got, 1, audio);
  };
  int64_t at = 0;
  for (; at < 20 * 480; at += 480) push(at);  // warm: buffers reach their steady sizes
  const uint64_t before = tensor_buffer_allocations();
  for (; at + 480 <= int64_t(x.size()); at += 480) push(at);
  EXPECT_EQ(tensor_buffer_allocations(), before);
  EXPECT_EQ(int64_t(audio.size()), at / 320 * 320 - 160);  // every frame's audio but the iSTFT's last half hop
}

// Per-token int8 activations on every encoder conv (Int8Params::dynamic, NAME.act_dynamic): each output's
// quantization depends only on the inputs it reads, so the streamed encoder gives the one-shot tokens at every push
// size, and the steady stream allocates nothing.
TEST_F(CausalModel, PerTokenInt8EncoderStreamsBitIdentically) {
  auto plain = model();
  WeightMap w = plain->weights();
  std::vector<std::string> convs;
  for (const auto& [k, t] : w.all())
    if (k.rfind("feature_extractor.encodec.encoder.", 0) == 0 && k.size() > 17 &&
        k.compare(k.size() - 17, 17, ".conv.conv.weight") == 0)
      convs.push_back(k.substr(0, k.size() - 7));
  ASSERT_EQ(convs.size(), 18u);
  for (const std::string& n : convs) {
    const Tensor& k = w.get(n + ".weight");
    w.set(n + ".weight_scale", Tensor({k.dim(0)}, weight_scales(k, int(k.dim(0)))));
    w.set(n + ".act_quant", Tensor({2}, std::vector<float>{1.0f, 0.0f}));
    w.set(n + ".act_dynamic", Tensor({1}, std::vector<float>{1.0f}));
  }
  auto m = Model::from_weights(plain->config(), w);
  std::vector<float> x = clip();
  x.resize(x.size() - 77);
  const int64_t n = int64_t(x.size());
  const Tokens one = m->encode(x.data(), n, 1);
  const Tensor lf = plain->encode_latents(x.data(), n), lq = m->encode_latents(x.data(), n);
  ASSERT_EQ(lf.numel(), lq.numel());
  EXPECT_FALSE(std::equal(lf.data(), lf.data() + lf.numel(), lq.data())) << "the int8 convs changed nothing";
  for (int64_t chunk : {int64_t(1), int64_t(333), int64_t(480), int64_t(24000)}) {
    SCOPED_TRACE("chunk " + std::to_string(chunk));
    StreamingEncoder enc(m, stream_preset("realtime"));
    std::vector<int32_t> codes, fresh;
    uint64_t before = 0;
    for (int64_t at = 0; at < n; at += chunk) {
      if (at == 20 * 480 && chunk == 480) before = tensor_buffer_allocations();  // warm
      fresh.clear();
      enc.push(x.data() + at, std::min(chunk, n - at), fresh);
      codes.insert(codes.end(), fresh.begin(), fresh.end());
    }
    if (chunk == 480) EXPECT_EQ(tensor_buffer_allocations(), before);
    fresh.clear();
    enc.flush(fresh);
    codes.insert(codes.end(), fresh.begin(), fresh.end());
    EXPECT_EQ(codes, one.codes);
  }
}

// int8 ConvNeXt depthwise convs (per-channel input ranges folded into the weights, as `transform: channel` stores
// them): the codes of a row depend on that row alone and the integer sums are exact, so the frame-by-frame decoder
// (the int8 primitive on the last 7 rows) gives the one-shot audio bit for bit, and the int8 layer really ran.
TEST_F(CausalModel, Int8DepthwiseDecoderStreamsBitIdentically) {
  auto plain = model();
  WeightMap w = plain->weights();
  const int layers = plain->config().vocos.num_layers;
  ASSERT_GT(layers, 0);
  for (int i = 0; i < layers; ++i) {
    const std::string n = "backbone.convnext." + std::to_string(i) + ".dwconv";
    Tensor k = w.get(n + ".weight");  // [D, 1, 7]
    const int64_t D = k.dim(0);
    std::vector<float> range(static_cast<size_t>(D));
    for (int64_t c = 0; c < D; ++c) range[size_t(c)] = 1.0f + float(c % 7);  // input ranges 1..7
    for (int64_t c = 0; c < D; ++c)
      for (int j = 0; j < 7; ++j) k[c * 7 + j] *= range[size_t(c)];
    w.set(n + ".weight_scale", Tensor({D}, weight_scales(k, int(D))));
    w.set(n + ".weight", std::move(k));
    w.set(n + ".act_quant", Tensor({2}, std::vector<float>{1.0f / 127.0f, 128.0f}));
    w.set(n + ".act_smooth", Tensor({D}, range));
  }
  auto m = Model::from_weights(plain->config(), w);
  std::vector<float> x = clip();
  const Tokens one = plain->encode(x.data(), int64_t(x.size()), 1);
  const std::vector<float> audio_one = m->decode(one);
  EXPECT_NE(audio_one, plain->decode(one)) << "the int8 depthwise convs changed nothing";
  for (int64_t chunk : {int64_t(1), int64_t(5), int64_t(75)}) {
    SCOPED_TRACE("tokens per push " + std::to_string(chunk));
    StreamingDecoder dec(m, stream_preset("realtime"));
    std::vector<float> audio;
    for (int64_t at = 0; at < one.frames; at += chunk)
      dec.push(one.codes.data() + at, std::min(chunk, one.frames - at), 1, audio);
    dec.flush(audio);
    EXPECT_EQ(audio, audio_one);
  }
}

TEST_F(CausalModel, RealtimePresetAndItsRefusalOfModelsThatLookAhead) {
  const StreamParams p = stream_preset("realtime");
  EXPECT_EQ(p.block_frames, 1);
  EXPECT_EQ(p.lookahead_frames, 0);
  EXPECT_TRUE(p.require_causal);
  auto m = model();
  // 480 samples at 24 kHz = 20 ms <= the 40 ms.
  EXPECT_LE(1000.0 * double(causal_latency_samples(m->config())) / m->sample_rate(), 40.0);
  auto wt = Model::load(fixture("wavtokenizer-75/model.ckpt"));
  EXPECT_FALSE(wt->config().causal());
  for (int which = 0; which < 2; ++which) {
    try {
      if (which == 0) StreamingEncoder e(wt, p);
      else StreamingDecoder d(wt, p);
      ADD_FAILURE() << "the realtime preset was accepted for a model that looks ahead";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("needs a causal model"), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(causal_latency_samples(wt->config()), Error);
  // The other presets still stream a causal model, exactly (their windows do not apply).
  StreamingDecoder d(m, stream_preset("default"));
  EXPECT_TRUE(d.exact());
}

TEST_F(CausalModel, ConfigsThatAreNotCausalEverywhereAreRefused) {
  const std::string good = model()->config().to_yaml();
  ModelConfig::from_yaml(good, "good");
  auto refused = [&](const std::string& from, const std::string& to) {
    std::string y = good;
    const size_t at = y.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    y.replace(at, from.size(), to);
    try {
      ModelConfig::from_yaml(y, "test.yaml");
      ADD_FAILURE() << "accepted: " << to;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("causal"), std::string::npos) << e.what();
    }
  };
  refused("attention_window: [16, 0]", "attention_window: [16, 1]");
  refused("pos_net_norm: affine", "pos_net_norm: group");
  refused("n_fft: 640", "n_fft: 1280");
  refused("causal: true", "causal: false");  // the encoder's (the first): a causal backbone needs it
}

}  // namespace
}  // namespace wavtok
