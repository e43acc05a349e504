// GPTQ rounding in `wavtok quantize` (recipe key `weight_rounding: gptq`, docs/PTQ.md "GPTQ rounding in wavtok
// quantize") on the WavTokenizer fixture: calibration gathers the im2col second moment of exactly the layers that
// ask for it, with their conv geometry; the weights stay on the grid rounding to nearest uses; the output error
// under the moment falls for every conv, and the encoder's latents on held-out audio come closer to float than with
// rounding to nearest; recipes that cannot use it are refused.
#include <cmath>
#include <numeric>
#include <string>

#include <gtest/gtest.h>

#include "core/error.h"
#include "core/util.h"
#include "dsp/audio_io.h"
#include "models/model.h"
#include "ptq/calibrate.h"
#include "tests/testing/model_file_testing.h"
#include "tests/testing/test_util.h"

namespace wavtok {
namespace {

using namespace wavtok::testing;

constexpr const char* kEncoderConvs =
    R"('encoder\.model\.\d+\.(conv\.conv|block\.\d+\.conv\.conv|shortcut\.conv\.conv)$')";

std::string recipe(const std::string& extra) {
  return std::string("rules:\n  - match: ") + kEncoderConvs + "\n    act_range: token\n" + extra;
}

class PtqGptq : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    model_ = Model::load(fixture("wavtokenizer-75/model.ckpt"), {fixture("wavtokenizer-75/config.yaml")});
    const std::vector<float> a = read_audio(fixture("wavtokenizer-75/speech.input.wav"), 24000).samples;
    const size_t half = a.size() / 2 / 320 * 320;  // calibrate on the first half, measure on the second
    calib_.assign(a.begin(), a.begin() + long(half));
    held_.assign(a.begin() + long(half), a.end());
  }
  static void TearDownTestSuite() { model_.reset(); }
  static std::shared_ptr<const Model> model_;
  static std::vector<float> calib_, held_;
};
std::shared_ptr<const Model> PtqGptq::model_;
std::vector<float> PtqGptq::calib_, PtqGptq::held_;

TEST_F(PtqGptq, MomentsOfTheRightLayersWithTheirGeometry) {
  const PtqRecipe r = parse_recipe(recipe("    weight_rounding: gptq\n"), "gptq");
  const auto want = moment_layers(r);
  ASSERT_TRUE(want);
  EXPECT_FALSE(moment_layers(parse_recipe(recipe(""), "nearest")));  // no rule asks: nothing gathered
  const CalibStats st = calibrate(*model_, {calib_}, 0, 256, want);
  int with = 0;
  for (const auto& [name, s] : st) {
    const bool conv = want(name);
    EXPECT_EQ(s.moment.count() > 0, conv) << name;
    if (!conv) continue;
    ++with;
    const Tensor& w = model_->weights().get(name + ".weight");
    EXPECT_EQ(s.kernel, w.dim(2)) << name;
    EXPECT_EQ(s.moment.size(), w.dim(1) * w.dim(2)) << name;
  }
  EXPECT_EQ(with, 18);
  // the downsampling convs read kernel 2r with stride r; the first conv reads the audio with stride 1
  const LayerStats& down = st.at("feature_extractor.encodec.encoder.model.3.conv.conv");
  EXPECT_EQ(down.kernel, 2 * down.stride);
  EXPECT_GT(down.stride, 1);
  EXPECT_EQ(st.at("feature_extractor.encodec.encoder.model.0.conv.conv").stride, 1);
}

TEST_F(PtqGptq, LowersTheWeightErrorOnHeldOutAudio) {
  const Model& m = *model_;
  const PtqRecipe rg = parse_recipe(recipe("    weight_rounding: gptq\n"), "gptq");
  const PtqRecipe rn = parse_recipe(recipe(""), "nearest");
  const CalibStats st = calibrate(m, {calib_}, 0, 256, moment_layers(rg));
  std::vector<PtqLayerReport> rep;
  const WeightMap qg = apply_recipe(m, rg, st, &rep);
  const WeightMap qn = apply_recipe(m, rn, st);
  int convs = 0;
  for (const auto& e : rep) {
    if (e.gptq_error_nearest == 0) continue;
    ++convs;
    EXPECT_LT(e.gptq_error, e.gptq_error_nearest) << e.name;
    // the grid is rounding to nearest's: the same scales
    const Tensor &sg = qg.get(e.name + ".weight_scale"), &sn = qn.get(e.name + ".weight_scale");
    ASSERT_EQ(sg.numel(), sn.numel());
    for (int64_t o = 0; o < sg.numel(); ++o) EXPECT_EQ(sg[o], sn[o]) << e.name;
    // and the stored weight is codes x scale exactly (what the loader rounds back to the same codes)
    const Tensor& w = qg.get(e.name + ".weight");
    const int64_t per = w.numel() / w.dim(0);
    for (int64_t i = 0; i < w.numel(); ++i) {
      const float c = w[i] / sg[i / per];
      ASSERT_LE(std::fabs(c - std::nearbyint(c)), 1e-4f) << e.name << " " << i;
      ASSERT_LE(std::fabs(std::nearbyint(c)), 127.0f) << e.name;
    }
  }
  EXPECT_EQ(convs, 18);
  auto fg = Model::from_weights(m.config(), with_int8_weights_float_acts(qg));
  auto fn = Model::from_weights(m.config(), with_int8_weights_float_acts(qn));
  const Tensor lf = m.encode_latents(held_.data(), int64_t(held_.size()));
  auto snr = [&](const Model& q) {
    const Tensor l = q.encode_latents(held_.data(), int64_t(held_.size()));
    return snr_db(std::vector<float>(lf.data(), lf.data() + lf.numel()),
                  std::vector<float>(l.data(), l.data() + l.numel()));
  };
  const double s_g = snr(*fg), s_n = snr(*fn);
  std::printf(
      "fixture encoder, int8 weights, float activations, held-out half: latent SNR GPTQ %.2f dB, rounding to "
      "nearest %.2f dB\n",
      s_g, s_n);
  EXPECT_GT(s_g, s_n + 1.0);
  // the model with GPTQ weights runs (per-token activations) and its file is what the recipe wrote
  auto q = Model::from_weights(m.config(), qg);
  EXPECT_EQ(q->encode_latents(held_.data(), int64_t(held_.size())).shape(), lf.shape());
}

TEST_F(PtqGptq, W4WeightsStayInTheirRange) {
  const std::string conv12 = R"('encoder\.model\.12\.conv\.conv$')";
  const std::string text = "rules:\n  - match: " + conv12 + "\n    act_range: token\n    weight_bits: 4\n";
  const PtqRecipe rg = parse_recipe(text + "    weight_rounding: gptq\n", "w4");
  const CalibStats st = calibrate(*model_, {calib_}, 0, 256, moment_layers(rg));
  std::vector<PtqLayerReport> rep;
  const WeightMap q = apply_recipe(*model_, rg, st, &rep);
  ASSERT_EQ(rep.size(), 1u);
  EXPECT_LT(rep[0].gptq_error, rep[0].gptq_error_nearest);
  const Tensor& w = q.get(rep[0].name + ".weight");
  const Tensor& s = q.get(rep[0].name + ".weight_scale");
  const int64_t per = w.numel() / w.dim(0);
  int at_limit = 0;
  for (int64_t i = 0; i < w.numel(); ++i) {
    const float c = std::nearbyint(w[i] / s[i / per]);
    ASSERT_LE(std::fabs(c), 7.0f);
    at_limit += std::fabs(c) == 7.0f;
  }
  EXPECT_GT(at_limit, 0);  // the range is used, not shrunk
}

// W4 in groups of 16 on a per-token conv (the recipe w4-conv12-gptq's form): stored as the s8 codes m q under the row
// scale, without the packed low-bit tensors, one multiplier per group and |q| <= 7; GPTQ lowers the output error, and
// the file loads and runs.
TEST_F(PtqGptq, W4GroupsOnAPerTokenConvAreStoredAsCodes) {
  const std::string conv12 = R"('encoder\.model\.12\.conv\.conv$')";
  const std::string text =
      "rules:\n  - match: " + conv12 + "\n    act_range: token\n    weight_bits: 4\n    group_size: 16\n";
  const PtqRecipe rg = parse_recipe(text + "    weight_rounding: gptq\n", "w4g");
  const CalibStats st = calibrate(*model_, {calib_}, 0, 256, moment_layers(rg));
  std::vector<PtqLayerReport> rep;
  const WeightMap q = apply_recipe(*model_, rg, st, &rep);
  ASSERT_EQ(rep.size(), 1u);
  const std::string n = rep[0].name;
  EXPECT_EQ(rep[0].group_size, 16);
  EXPECT_LT(rep[0].gptq_error, rep[0].gptq_error_nearest);
  EXPECT_FALSE(q.has(n + ".weight_groups"));
  EXPECT_FALSE(q.has(n + ".weight_group_size"));
  EXPECT_TRUE(q.has(n + ".act_dynamic"));
  const Tensor& w = q.get(n + ".weight");
  const Tensor& s = q.get(n + ".weight_scale");
  const int64_t per = w.numel() / w.dim(0);
  int multipliers_above_1 = 0;
  for (int64_t o = 0; o < w.dim(0); ++o)
    for (int64_t g0 = 0; g0 < per; g0 += 16) {
      int m = 0;  // the group's multiplier: the gcd of its codes, at least |code| / 7
      std::vector<int> c;
      for (int64_t j = g0; j < g0 + 16; ++j) {
        const float v = w[o * per + j] / s[o];
        ASSERT_LE(std::fabs(v - std::nearbyint(v)), 1e-3f) << n << " " << o << " " << j;
        c.push_back(int(std::nearbyint(v)));
        m = std::gcd(m, std::abs(c.back()));
      }
      if (m == 0) continue;
      for (int v : c) ASSERT_LE(std::abs(v), 7 * m) << "row " << o << " group " << g0 / 16;
      ASSERT_LE(m, 127);
      multipliers_above_1 += m > 1;
    }
  EXPECT_GT(multipliers_above_1, 0);  // the groups use their multipliers
  auto mq = Model::from_weights(model_->config(), q);
  EXPECT_EQ(mq->encode(held_.data(), int64_t(held_.size()), 1).codes.size(),
            model_->encode(held_.data(), int64_t(held_.size()), 1).codes.size());
}

// Decoder layers that quantize a transformed input (RepQ-ViT on pwconv1, SQ-b on pwconv2) with W4 weights: GPTQ
// works on the transformed input's moment and the transformed weight, and the decoded audio of the held-out half's
// tokens comes closer to the float decoder's.
TEST_F(PtqGptq, DecoderLayersWithInputTransforms) {
  const Model& m = *model_;
  const std::string rules =
      "rules:\n"
      "  - match: 'convnext\\.\\d+\\.pwconv1$'\n    transform: repq\n    act_range: minmax\n    weight_bits: 4\n"
      "    weight_range: mse\nROUND"
      "  - match: 'convnext\\.\\d+\\.pwconv2$'\n    transform: sqb\n    act_range: minmax\n    weight_bits: 4\n"
      "    weight_range: mse\nROUND";
  auto text = [&](const std::string& round) {
    std::string t = rules;
    for (size_t at; (at = t.find("ROUND")) != std::string::npos;) t.replace(at, 5, round);
    return t;
  };
  const PtqRecipe rg = parse_recipe(text("    weight_rounding: gptq\n"), "gptq");
  const PtqRecipe rn = parse_recipe(text(""), "nearest");
  const CalibStats st = calibrate(m, {calib_}, 0, 256, moment_layers(rg));
  std::vector<PtqLayerReport> rep;
  auto qg = Model::from_weights(m.config(), apply_recipe(m, rg, st, &rep));
  auto qn = Model::from_weights(m.config(), apply_recipe(m, rn, st));
  int layers = 0;
  for (const auto& e : rep)
    if (e.gptq_error_nearest > 0) {
      ++layers;
      EXPECT_LT(e.gptq_error, e.gptq_error_nearest) << e.name;
    }
  EXPECT_EQ(layers, 2 * m.config().vocos.num_layers);
  const Tokens t = m.encode(held_.data(), int64_t(held_.size()), 1);
  const std::vector<float> yf = m.decode(t), yg = qg->decode(t), yn = qn->decode(t);
  const double s_g = snr_db(yf, yg), s_n = snr_db(yf, yn);
  std::printf(
      "fixture decoder, W4 pwconv1 (repq) and pwconv2 (sqb), held-out tokens: audio SNR against float GPTQ "
      "%.2f dB, rounding to nearest %.2f dB\n",
      s_g, s_n);
  EXPECT_GT(s_g, s_n + 1.0);
}

TEST_F(PtqGptq, RefusedWhereItCannotRun) {
  auto expect_refused = [&](const std::string& yaml, const CalibStats& st, const std::string& needle) {
    try {
      apply_recipe(*model_, parse_recipe(yaml, "r"), st);
      ADD_FAILURE() << "accepted: " << yaml;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  const CalibStats plain = calibrate(*model_, {calib_}, 0, 256);
  expect_refused(recipe("    weight_rounding: gptq\n"), plain, "no input moment");
  expect_refused("rules:\n  - match: 'encoder\\.model\\.\\d+\\.lstm$'\n    weight_rounding: gptq\n", plain, "LSTM");
  EXPECT_THROW(parse_recipe("rules:\n  - match: x\n    weight_rounding: best\n", "r"), Error);
  try {
    parse_recipe("rules:\n  - match: x\n    hadamard: true\n    weight_rounding: gptq\n", "r.yaml");
    ADD_FAILURE() << "gptq with a Hadamard rotation accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("r.yaml"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace wavtok
