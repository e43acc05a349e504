// The shipped default model: C++ engine against the PyTorch reference (python/wtk_io.py loads the same .wtk
// into python/wavtok_ref), and the bridge itself against the upstream fixture.
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include <gtest/gtest.h>

#include "codec/default_model.h"
#include "codec/streaming.h"
#include "dsp/audio_io.h"
#include "io/model_file.h"
#include "models/model.h"
#include "models/models.h"
#include "ptq/calibrate.h"
#include "tests/testing/reference_check.h"
#include "tests/testing/test_util.h"

namespace wavtok {
namespace {

using namespace wavtok::testing;

const std::string kShipped = source_dir() + "/codec/default/wavtok-default.wtk";

// The .wtk -> PyTorch bridge reproduces the upstream fixture, so it can serve as the reference below.
TEST(DefaultModel, WtkBridgeReproducesUpstreamFixture) {
  const std::string dir = scratch_dir("wtk_bridge");
  auto m = Model::load(fixture("wavtokenizer-75/model.ckpt"));
  write_model_file(dir + "/m.wtk", m->config(), m->weights());
  ASSERT_EQ(run_python(source_dir() + "/python/reference_outputs.py --model " + dir + "/m.wtk --input " +
                       fixture("wavtokenizer-75/speech.input.wav") + " --out " + dir),
            0);
  EXPECT_EQ(npy_ints(dir + "/speech.codes.npy"), npy_ints(fixture("wavtokenizer-75/speech.codes.npy")));
  auto ref = read_audio(fixture("wavtokenizer-75/speech.decoded.wav"), 24000).samples;
  auto got = read_audio(dir + "/speech.decoded.wav", 24000).samples;
  EXPECT_GE(snr_db(ref, got), 60.0);
}

TEST(DefaultModel, ShippedModelIsEmbeddedAndMatchesReference) {
  ASSERT_TRUE(std::filesystem::exists(kShipped)) << kShipped << " is missing";
  ASSERT_TRUE(has_embedded_default_model());
  auto embedded = load_embedded_default_model();
  auto file = Model::load(kShipped);
  EXPECT_EQ(embedded->fingerprint(), file->fingerprint());
  EXPECT_LT(std::filesystem::file_size(kShipped), 20u << 20);
  // Real speech (the fixture clip) through both implementations.
  const std::string dir = scratch_dir("default_ref");
  ASSERT_EQ(run_python(source_dir() + "/python/reference_outputs.py --model " + kShipped + " --input " +
                       fixture("wavtokenizer-75/speech.input.wav") + " --out " + dir),
            0);
  check_against(*embedded, dir);
}

// The best W8A8 recipe on the shipped model (docs/PTQ.md): configs/quant/w8a8-lstm.yaml calibrated on
// synthetic speech (espeak-ng, installed by scripts/setup.sh) keeps >= 97 % of the float tokens on held-out synthetic
// speech (other voices and texts), and its int8 decoder stays within 8-bit error. (Calibrated this way, the real
// recording of the fixtures keeps only 95.7 %: its levels lie outside the calibrated ranges, see docs/PTQ.md.)
TEST(DefaultModel, W8a8LstmRecipeKeepsTokens) {
  auto m = Model::load(kShipped);
  const std::string dir = scratch_dir("w8a8_lstm_calib");
  int n_clips = 0;
  auto speak = [&](const char* voice, const char* text) {
    const std::string wav = dir + "/clip" + std::to_string(n_clips++) + ".wav";
    const std::string cmd = std::string("espeak-ng -v ") + voice + " -s 150 -w " + wav + " \"" + text + "\"";
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
    return read_audio(wav, 24000).samples;
  };
  const std::vector<std::vector<float>> calib = {
      speak("en-us", "Calibration needs a few seconds of ordinary speech at a normal level."),
      speak("en-gb+f3", "The rain in the valley kept falling until the evening train arrived."),
      speak("de", "Heute ist das Wetter schlecht, aber morgen wird es wieder besser.")};
  // Held-out test speech: other voices and texts again, as data/eval is to data/train in docs/PTQ.md.
  std::vector<float> test = speak("fr+m2", "Le petit chat dort sur la chaise pendant que la pluie tombe dehors.");
  const auto more = speak("en-us+f2", "Seven bright lanterns were hanging above the quiet harbour tonight.");
  test.insert(test.end(), more.begin(), more.end());
  ASSERT_FALSE(HasFailure());
  const CalibStats st = calibrate(*m, calib, 0, 4096);
  auto mq = Model::from_weights(m->config(),
                                apply_recipe(*m, load_recipe(source_dir() + "/configs/quant/w8a8-lstm.yaml"), st));
  const Tokens tf = m->encode(test.data(), int64_t(test.size()), 1);
  const Tokens tq = mq->encode(test.data(), int64_t(test.size()), 1);
  ASSERT_EQ(tf.codes.size(), tq.codes.size());
  int64_t same = 0;
  for (size_t i = 0; i < tf.codes.size(); ++i) same += tf.codes[i] == tq.codes[i];
  const double agree = double(same) / double(tf.codes.size());
  const std::vector<float> yf = m->decode(tf), yq = mq->decode(tf);
  const double snr = snr_db(yf, yq);
  std::printf("shipped model, w8a8-lstm: tokens equal %.2f%% of %zu, int8 decoder %.2f dB against float\n",
              100.0 * agree, tf.codes.size(), snr);
  EXPECT_GE(agree, 0.97);  // the bar; measured 97.78 % of 586 (97.8 % over the 40 held-out clips)
  EXPECT_GT(snr, 30.0);    // measured 31.9 dB on the v5 model (v4: 36.4 dB)
}

// The shipped causal `rt` model (when this build has one): the realtime preset streams the real recording of the
// fixtures in 20 ms pushes to the same tokens and audio as one-shot, with 20 ms of algorithmic latency.
TEST(ShippedRtModel, RealtimeStreamEqualsOneShot) {
  if (!has_embedded_model("rt")) GTEST_SKIP() << "this build embeds no rt model (codec/rt/wavtok-rt.wtk)";
  auto m = load_shipped_model("rt");
  ASSERT_TRUE(m->config().causal());
  EXPECT_EQ(causal_latency_samples(m->config()), 480);
  const std::vector<float> x = read_audio(fixture("wavtokenizer-75/speech.input.wav"), 24000).samples;
  const int64_t n = int64_t(x.size());
  const Tokens one = m->encode(x.data(), n, 1);
  const std::vector<float> audio_one = m->decode(one);
  const StreamParams p = stream_preset("realtime");
  StreamingEncoder enc(m, p);
  StreamingDecoder dec(m, p);
  std::vector<int32_t> codes, fresh;
  std::vector<float> audio;
  for (int64_t at = 0; at < n; at += 480) {
    fresh.clear();
    const int64_t got = enc.push(x.data() + at, std::min<int64_t>(480, n - at), fresh);
    codes.insert(codes.end(), fresh.begin(), fresh.end());
    if (got > 0) dec.push(fresh.data(), got, 1, audio);
  }
  fresh.clear();
  const int64_t got = enc.flush(fresh);
  codes.insert(codes.end(), fresh.begin(), fresh.end());
  if (got > 0) dec.push(fresh.data(), got, 1, audio);
  dec.flush(audio);
  EXPECT_EQ(codes, one.codes);
  EXPECT_EQ(audio, audio_one);
}

}  // namespace
}  // namespace wavtok
