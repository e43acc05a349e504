// RepQuant-style dual clipping of post-LayerNorm activations (act_range: dualclip, docs/PTQ.md): on calibration
// data with outliers it lowers the quantization error of the layer against min-max ranges.
#include <random>

#include <gtest/gtest.h>

#include "core/error.h"
#include "dsp/audio_io.h"
#include "models/model.h"
#include "models/models.h"
#include "ptq/calibrate.h"
#include "tests/testing/fixture_model.h"
#include "tests/testing/test_util.h"

namespace wavtok {
namespace {

using namespace wavtok::testing;

struct Env {
  std::shared_ptr<const Model> model;
  CalibStats stats;
};

const Env& setup() {
  static Env s = [] {
    Env x;
    x.model = fixture_wavtokenizer();
    x.stats = calibrate(*x.model, {fixture_speech(24000)}, 0, 512);
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

// Outliers in a few channels of the post-AdaLayerNorm input of pwconv1 (one row in 64, 10-25x the channel's
// range, one channel negative). Under RepQ the per-channel ranges set the divisors folded into W' = W diag(r1), so
// an outlier channel's column dominates its rows' 4-bit weight scales; clipping each side of each channel (then
// scaling the sides on the output error) lowers the layer's output error. At W8A8 MSE keeps almost every outlier
// (clipping one costs more than the coarser grid), and the search never does worse than min-max.
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
  const double mm4 = layer_error(st, recipe("minmax", 4), layer), dc4 = layer_error(st, recipe("dualclip", 4), layer);
  const double mm8 = layer_error(st, recipe("minmax", 8), layer), dc8 = layer_error(st, recipe("dualclip", 8), layer);
  std::printf(
      "pwconv1 with outliers, relative output MSE: W4A8 min-max %.3e, dual clipping %.3e; "
      "W8A8 %.3e, %.3e\n",
      mm4, dc4, mm8, dc8);
  EXPECT_LT(dc4, 0.92 * mm4);  // measured 0.88
  EXPECT_LE(dc8, mm8);
}

// A per-tensor input (no transform) with a few isolated spikes on the upper side: min-max stretches the one grid
// over them, clipping the upper side alone keeps the grid fine for everything else. The spikes are rare: the
// ranges (every frame) saw them, the row sample the errors are measured on did not.
TEST(DualClip, PerTensorSpikes) {
  const std::string layer = "backbone.convnext.1.pwconv2";
  CalibStats st = setup().stats;
  LayerStats& ls = st.at(layer);
  float hi = 0;
  for (int c = 0; c < ls.cin; ++c) hi = std::max(hi, ls.hi[c]);
  for (int k = 0; k < 3; ++k) {  // (this test wrote the spikes into rows 100 + 37 k of a 75-row sample before)
    const int c = 7 + 50 * k;
    ls.hi[c] = std::max(ls.hi[c], 30.0f * hi);
  }
  const std::string r = "rules:\n  - match: 'convnext\\.1\\.pwconv2$'\n    act_range: ";
  const double mm = layer_error(st, r + "minmax\n", layer), dc = layer_error(st, r + "dualclip\n", layer);
  std::printf("W8A8 pwconv2 per tensor with 3 spikes: min-max %.3e, dual clipping %.3e\n", mm, dc);
  EXPECT_LT(dc, 0.5 * mm);
  EXPECT_THROW(parse_recipe("rules:\n  - match: x\n    act_range: dualclipp\n", "t"), Error);
}

}  // namespace
}  // namespace wavtok
