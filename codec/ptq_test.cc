// Calibration, recipe application and the quantized model file, on the random-weight fixture model.
#include <cmath>
#include <cstdio>

#include <gtest/gtest.h>

#include "codec/error.h"
#include "codec/model.h"
#include "codec/model_file.h"
#include "codec/ptq.h"
#include "codec/ptq_calibrate.h"
#include "dsp/audio_io.h"
#include "tests/test_util.h"

namespace wavtok {
namespace {

using namespace wavtok::testing;

struct Fixture {
  std::shared_ptr<const Model> model;
  std::vector<float> audio;
  CalibStats stats;
};

const Fixture& fixture_model() {
  static Fixture f = [] {
    Fixture x;
    x.model = Model::load(fixture("wavtokenizer-75/model.ckpt"), {fixture("wavtokenizer-75/config.yaml")});
    x.audio = read_audio(fixture("wavtokenizer-75/speech.input.wav"), 24000).samples;
    x.stats = calibrate(*x.model, {x.audio}, 0, 512);
    return x;
  }();
  return f;
}

const char* kAllRecipe = R"(
name: all
rules:
  - match: 'pwconv1$'
    transform: repq
  - match: 'pwconv2$'
    transform: sqb
  - match: 'pos_net'
    transform: sqb
  - match: 'embed$'
  - match: '^head\.out$'
    act_range: percentile
    percentile: 99.999
)";

TEST(PtqCalibrate, ObservesEveryDenseDecoderLayer) {
  const Fixture& f = fixture_model();
  const int L = f.model->config().vocos.num_layers;
  EXPECT_EQ(f.stats.size(), size_t(2 * L + 8 + 4 + 1 + 1));  // pointwise, pos_net convs, attention, embed, head
  for (const auto& [name, st] : f.stats) {
    ASSERT_GT(st.sampled(), 0) << name;
    EXPECT_LE(st.sampled(), 512) << name;
    for (int64_t i = 0; i < int64_t(st.rows.size()); ++i) {  // every sampled value lies in the recorded range
      const int c = int(i % st.cin);
      ASSERT_GE(st.rows[i], st.lo[c]);
      ASSERT_LE(st.rows[i], st.hi[c]);
    }
  }
  EXPECT_TRUE(f.stats.count("backbone.convnext.0.pwconv1"));
  EXPECT_TRUE(f.stats.count("head.out"));
}

// The stored transform must leave the float layer unchanged: W' ((x - shift) / smooth) + b' == W x + b.
TEST(PtqRecipe, TransformsAreExactInFloat) {
  const Fixture& f = fixture_model();
  const PtqRecipe r = parse_recipe(kAllRecipe, "test");
  const WeightMap q = apply_recipe(*f.model, r, f.stats);
  const WeightMap& w0 = f.model->weights();
  for (const std::string name : {"backbone.convnext.1.pwconv1", "backbone.convnext.1.pwconv2"}) {
    ASSERT_TRUE(q.has(name + ".act_shift")) << name;
    const Tensor &wq = q.get(name + ".weight"), &bq = q.get(name + ".bias"), &sh = q.get(name + ".act_shift"),
                 &sm = q.get(name + ".act_smooth");
    const Tensor& w = w0.get(name + ".weight");
    const Tensor& b = w0.get(name + ".bias");
    const bool pw2 = name.find("pwconv2") != std::string::npos;
    const Tensor* g = pw2 ? &w0.get("backbone.convnext.1.gamma") : nullptr;
    EXPECT_FALSE(q.has("backbone.convnext.1.gamma"));
    const LayerStats& st = f.stats.at(name);
    const int64_t cout = w.dim(0), cin = w.dim(1);
    double num = 0, den = 0;
    for (int64_t t = 0; t < 16; ++t) {
      const float* x = st.rows.data() + t * cin;
      for (int64_t o = 0; o < cout; ++o) {
        double y = b[o], yq = bq[o];
        for (int64_t c = 0; c < cin; ++c) {
          y += double(w[o * cin + c]) * x[c];
          yq += double(wq[o * cin + c]) * ((double(x[c]) - sh[c]) / sm[c]);
        }
        if (g) y *= (*g)[o];
        num += (y - yq) * (y - yq);
        den += y * y;
      }
    }
    EXPECT_LT(num / den, 1e-10) << name;
  }
}

TEST(PtqModel, QuantizedFileDecodesCloseToFloat) {
  const Fixture& f = fixture_model();
  const std::string dir = scratch_dir("ptq_model");
  std::vector<PtqLayerReport> rep;
  const WeightMap q = apply_recipe(*f.model, parse_recipe(kAllRecipe, "test"), f.stats, &rep);
  EXPECT_EQ(rep.size(), f.stats.size());
  write_model_file(dir + "/q.wtk", f.model->config(), q);
  auto m = Model::load(dir + "/q.wtk");
  EXPECT_TRUE(has_int8_layers(m->weights()));
  EXPECT_EQ(m->fingerprint(), f.model->fingerprint());  // tokens stay interchangeable
  Tokens t = f.model->encode(f.audio.data(), int64_t(f.audio.size()), 1);
  EXPECT_EQ(m->encode(f.audio.data(), int64_t(f.audio.size()), 1).codes, t.codes);  // the encoder stays float
  const std::vector<float> yf = f.model->decode(t), yq = m->decode(t);
  ASSERT_EQ(yf.size(), yq.size());
  const double snr = snr_db(yf, yq);
  EXPECT_NE(yf, yq);  // the int8 layers really ran
  // Random weights amplify errors through the 26 int8 layers (measured 15 dB here, 31 dB SI-SNR on the
  // trained default model); a wrong scale, zero point or transform gives < 0 dB.
  EXPECT_GT(snr, 10.0) << "int8 decode vs float decode";
  // Plain min-max on the pointwise layers only: fewer quantized layers, so closer to float.
  const WeightMap q2 = apply_recipe(*f.model, parse_recipe("rules:\n  - match: 'pwconv'\n", "t2"), f.stats);
  auto m2 = Model::from_weights(f.model->config(), q2);
  const double snr2 = snr_db(yf, m2->decode(t));
  EXPECT_GT(snr2, 10.0);
  std::printf("int8 decode SNR vs float: all layers %.1f dB, pointwise min-max %.1f dB\n", snr, snr2);
}

TEST(PtqRecipe, RejectsBadRecipes) {
  EXPECT_THROW(parse_recipe("name: x\n", "r"), Error);
  EXPECT_THROW(parse_recipe("rules:\n  - match: 'a'\n    transform: magic\n", "r"), Error);
  EXPECT_THROW(parse_recipe("rules:\n  - match: '('\n", "r"), Error);
  EXPECT_THROW(parse_recipe("rules:\n  - match: 'a'\n    weight_bits: 9\n", "r"), Error);
  EXPECT_THROW(parse_recipe("[1, 2", "r"), Error);
  const PtqRecipe r = parse_recipe("rules:\n  - match: 'a'\n    weight_bits: 4\n    weight_range: omse\n", "r");
  EXPECT_EQ(r.rules.at(0).weight_bits, 4);
}

TEST(PtqModel, RefusesToQuantizeTwice) {
  const Fixture& f = fixture_model();
  const WeightMap q = apply_recipe(*f.model, parse_recipe("rules:\n  - match: 'pwconv'\n", "t"), f.stats);
  auto m = Model::from_weights(f.model->config(), q);
  EXPECT_THROW(apply_recipe(*m, parse_recipe("rules:\n  - match: 'pwconv'\n", "t"), f.stats), Error);
}

}  // namespace
}  // namespace wavtok
