// RepQuant-style dual clipping of post-LayerNorm activations (act_range: dualclip, docs/PTQ.md): on calibration
// data with outliers it lowers the quantization error of the layer against min-max ranges.
#include <random>

#include <gtest/gtest.h>

#include "core/error.h"
#include "dsp/audio_io.h"
#include "models/model.h"
#include "models/models.h"
#include "ptq/calibrate.h"
#include "tests/testing/test_util.h"

namespace wavtok {
namespace {

using namespace wavtok::testing;

struct Setup {
  std::shared_ptr<const Model> model;
  CalibStats stats;
};

const Setup& setup() {
  static Setup s = [] {
    Setup x;
    x.model = Model::load(fixture("wavtokenizer-75/model.ckpt"), {fixture("wavtokenizer-75/config.yaml")});
    std::vector<float> audio = read_audio(fixture("wavtokenizer-75/speech.input.wav"), 24000).samples;
    audio.resize(24000);
    x.stats = calibrate(*x.model, {audio}, 0, 512);
    return x;
  }();
  return s;
}

// The relative output error apply_recipe reports for `layer` under `recipe`.
double layer_error(const CalibStats& st, const std::string& recipe, const std::string& layer) {
  std::vector<PtqLayerReport> rep;
  apply_recipe(*setup().model, parse_recipe(recipe, "test"), st, &rep);
  for (const auto& r : rep)
    if (r.name == layer) return r.rel_mse;
  ADD_FAILURE() << layer << " not quantized";
  return 0;
}

std::string recipe(const std::string& act_range, int bits) {
  return "rules:\n  - match: 'convnext\\.0\\.pwconv1$'\n    transform: repq\n    weight_bits: " + std::to_string(bits) +
         "\n    act_range: " + act_range + "\n";
}

// Outliers in a few channels of the post-AdaLayerNorm input of pwconv1 (one row in 64, up to 25x the channel's
// range, mostly on one side): min-max spends the 8-bit grid on them; dual clipping cuts each side separately.
TEST(DualClip, LowersErrorOnOutliers) {
  const std::string layer = "backbone.convnext.0.pwconv1";
  CalibStats st = setup().stats;
  LayerStats& ls = st.at(layer);
  std::mt19937 rng(9);
  std::uniform_real_distribution<float> u(10.0f, 25.0f);
  const int C = ls.cin;
  for (int64_t t = 0; t < ls.sampled(); t += 64)
    for (int c : {3, 17, 40, 41, 90}) {
      float& x = ls.rows[size_t(t * C + c)];
      x = (c == 40 ? -1.0f : 1.0f) * u(rng) * std::max(std::abs(ls.lo[c]), std::abs(ls.hi[c]));
      ls.lo[c] = std::min(ls.lo[c], x);
      ls.hi[c] = std::max(ls.hi[c], x);
    }
  for (int bits : {8, 4}) {
    const double mm = layer_error(st, recipe("minmax", bits), layer);
    const double dc = layer_error(st, recipe("dualclip", bits), layer);
    std::printf("W%dA8 pwconv1 with outliers: min-max %.3e, dual clipping %.3e (relative output MSE)\n", bits, mm, dc);
    EXPECT_LT(dc, 0.7 * mm) << bits << " bits";
  }
  // Without outliers it is never worse than min-max (min-max is one of its candidates).
  const Setup& s = setup();
  const double mm = layer_error(s.stats, recipe("minmax", 8), layer);
  const double dc = layer_error(s.stats, recipe("dualclip", 8), layer);
  std::printf("W8A8 pwconv1 clean: min-max %.3e, dual clipping %.3e\n", mm, dc);
  EXPECT_LE(dc, mm);
}

TEST(DualClip, PerTensorInputAndRecipeChecks) {
  const std::string layer = "backbone.convnext.1.pwconv2";  // post-GELU, no transform: one range per tensor
  CalibStats st = setup().stats;
  LayerStats& ls = st.at(layer);
  for (int64_t t = 0; t < ls.sampled(); t += 50) {
    float& x = ls.rows[size_t(t * ls.cin + 7)];
    x = 30.0f * std::max(1.0f, ls.hi[7]);
    ls.hi[7] = std::max(ls.hi[7], x);
  }
  const std::string r = "rules:\n  - match: 'convnext\\.1\\.pwconv2$'\n    act_range: ";
  const double mm = layer_error(st, r + "minmax\n", layer), dc = layer_error(st, r + "dualclip\n", layer);
  std::printf("W8A8 pwconv2 per tensor with outliers: min-max %.3e, dual clipping %.3e\n", mm, dc);
  EXPECT_LT(dc, 0.7 * mm);
  EXPECT_THROW(parse_recipe("rules:\n  - match: x\n    act_range: dualclipp\n", "t"), Error);
}

}  // namespace
}  // namespace wavtok
