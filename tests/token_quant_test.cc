// Per-token int8 activations (recipe key `act_range: token`, docs/PTQ.md "Per-token activations") on the shipped
// model's 18 SEANet encoder convs, against the same convs with one static min-max range each: the encoder's latents
// and tokens against float on real speech (the fixtures' recording), calibrated on synthetic speech.
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include <gtest/gtest.h>

#include "dsp/audio_io.h"
#include "models/model.h"
#include "ptq/calibrate.h"
#include "tests/testing/test_util.h"

namespace wavtok {
namespace {

using namespace wavtok::testing;

TEST(DefaultModelTokenQuant, PerTokenEncoderConvsKeepTokensStaticRangesLose) {
  const std::string shipped = source_dir() + "/codec/default/wavtok-default.wtk";
  ASSERT_TRUE(std::filesystem::exists(shipped));
  auto m = Model::load(shipped);
  const std::string dir = scratch_dir("token_quant_calib");
  const std::string wav = dir + "/calib.wav";
  const std::string cmd = "espeak-ng -v en-us -s 150 -w " + wav +
                          " \"Calibration needs a few seconds of ordinary speech at a normal level.\"";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  const CalibStats st = calibrate(*m, {read_audio(wav, 24000).samples}, 0, 1024);
  const std::vector<float> test = read_audio(fixture("wavtokenizer-75/speech.input.wav"), 24000).samples;
  const int64_t n = int64_t(test.size());
  const Tokens tf = m->encode(test.data(), n, 1);
  const Tensor lf = m->encode_latents(test.data(), n);
  auto measure = [&](const std::string& act_range, double* snr) {
    const std::string yaml =
        "rules:\n  - match: 'encoder\\.model\\.\\d+\\.(conv\\.conv|block\\.\\d+\\.conv\\.conv|shortcut\\.conv\\.conv)$'\n"
        "    act_range: " + act_range + "\n";
    auto mq = Model::from_weights(m->config(), apply_recipe(*m, parse_recipe(yaml, act_range), st));
    const Tensor lq = mq->encode_latents(test.data(), n);
    *snr = snr_db(std::vector<float>(lf.data(), lf.data() + lf.numel()),
                  std::vector<float>(lq.data(), lq.data() + lq.numel()));
    const Tokens tq = mq->encode(test.data(), n, 1);
    int64_t same = 0;
    for (size_t i = 0; i < tf.codes.size(); ++i) same += tf.codes[i] == tq.codes[i];
    return double(same) / double(tf.codes.size());
  };
  double snr_t = 0, snr_s = 0;
  const double agree_t = measure("token", &snr_t), agree_s = measure("minmax", &snr_s);
  std::printf("shipped model, 18 int8 encoder convs: per-token latent SNR %.2f dB, tokens %.2f%%; static min-max "
              "%.2f dB, tokens %.2f%% (of %zu)\n",
              snr_t, 100 * agree_t, snr_s, 100 * agree_s, tf.codes.size());
  // Measured on the v6 default model: 40.43 dB / 96.33 % per-token, 36.02 dB / 94.33 % static (300 frames).
  EXPECT_GT(snr_t, snr_s + 2.0);
  EXPECT_GE(agree_t, agree_s);
  EXPECT_GE(agree_t, 0.93);
}

}  // namespace
}  // namespace wavtok
