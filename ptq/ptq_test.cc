// Calibration, recipe application and the quantized model file, on the random-weight fixture model.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include <gtest/gtest.h>

#include "core/error.h"
#include "dsp/audio_io.h"
#include "io/model_file.h"
#include "models/model.h"
#include "models/models.h"
#include "models/quantized.h"
#include "ptq/calibrate.h"
#include "quant/log_quant.h"
#include "tests/testing/fixture_model.h"
#include "tests/testing/model_file_testing.h"
#include "tests/testing/test_util.h"

namespace wavtok {
namespace {

using namespace wavtok::testing;

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

TEST(PtqCalibrate, ObservesEveryQuantizableLayer) {
  const FixtureModel& f = fixture_model();
  const int L = f.model->config().vocos.num_layers;
  int decoder = 0, encoder = 0, encoder_convs = 0;
  for (const auto& [name, st] : f.stats)
    if (name != "backbone.pos_net.2.softmax" && name != "backbone.pos_net.2.attn_v")  // not layers
      (name.rfind("feature_extractor.encodec.encoder.", 0) == 0 ? encoder : decoder)++;
  EXPECT_EQ(f.stats.at("backbone.pos_net.2.attn_v").cin, f.model->config().vocos.dim);  // V, for int8 attention
  for (const auto& [name, t] : f.model->weights().all())
    if (name.rfind("feature_extractor.encodec.encoder.", 0) == 0 && name.size() > 17 &&
        name.compare(name.size() - 17, 17, ".conv.conv.weight") == 0)
      ++encoder_convs;
  EXPECT_EQ(decoder, 3 * L + 8 + 4 + 1 + 1);  // depthwise + pointwise, pos_net convs, attention, embed, head
  for (int i = 0; i < L; ++i)  // the depthwise conv's input: the residual stream, one range per channel
    EXPECT_EQ(f.stats.at("backbone.convnext." + std::to_string(i) + ".dwconv").cin, f.model->config().vocos.dim);
  EXPECT_EQ(encoder, encoder_convs + 1);      // every SEANet conv and the LSTM (its layer-0 input)
  EXPECT_EQ(encoder, 19);
  EXPECT_EQ(f.stats.at("feature_extractor.encodec.encoder.model.13.lstm").cin,
            f.model->weights().get("feature_extractor.encodec.encoder.model.13.lstm.weight_ih_l0").dim(1));
  // The attention probabilities: one value per row, a larger sample (the log quantizers search on it).
  const LayerStats& sm = f.stats.at("backbone.pos_net.2.softmax");
  EXPECT_EQ(sm.cin, 1);
  const int64_t T = int64_t(f.audio.size()) / f.model->hop();
  EXPECT_EQ(sm.seen, T * T);
  EXPECT_EQ(sm.sampled(), std::min<int64_t>(T * T, 1 << 17));
  EXPECT_GE(sm.lo[0], 0.0f);
  EXPECT_LE(sm.hi[0], 1.0f);
  for (const auto& [name, st] : f.stats) {
    ASSERT_GT(st.sampled(), 0) << name;
    if (name != "backbone.pos_net.2.softmax") {
      EXPECT_LE(st.sampled(), 512) << name;
    }
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
  const FixtureModel& f = fixture_model();
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
  const FixtureModel& f = fixture_model();
  const std::string dir = scratch_dir("ptq_model");
  std::vector<PtqLayerReport> rep;
  const WeightMap q = apply_recipe(*f.model, parse_recipe(kAllRecipe, "test"), f.stats, &rep);
  // every decoder layer the recipe covers; the encoder, the softmax and the depthwise convs (which need a
  // `transform: channel` rule of their own) stay float
  size_t decoder_layers = 0;
  for (const auto& [name, st] : f.stats)
    decoder_layers += name.rfind("feature_extractor.", 0) != 0 && name != "backbone.pos_net.2.softmax" &&
                      name != "backbone.pos_net.2.attn_v" && name.find(".dwconv") == std::string::npos;
  EXPECT_EQ(rep.size(), decoder_layers);
  EXPECT_EQ(rep.size(), size_t(2 * f.model->config().vocos.num_layers + 14));
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

// The documented layout (io/model_file.h), recomputed: header, config, table, then every tensor 64-byte
// aligned, int8 layers' weights one byte per value.
uint64_t expected_file_size(const ModelConfig& cfg, const WeightMap& w, int64_t* s8_values) {
  auto align = [](uint64_t x) { return (x + 63) / 64 * 64; };
  uint64_t pos = 32 + cfg.to_yaml().size();
  for (const auto& [name, t] : w.all()) pos += 4 + name.size() + 8 + 8 * t.ndim() + 16;
  pos = align(pos);
  uint64_t end = pos;
  *s8_values = 0;
  for (const auto& [name, t] : w.all()) {
    const bool s8 = name.size() > 7 && name.compare(name.size() - 7, 7, ".weight") == 0 &&
                    w.has(name.substr(0, name.size() - 7) + ".act_quant");
    if (s8) *s8_values += t.numel();
    end = pos + uint64_t(t.numel()) * (s8 ? 1 : 4);
    pos = align(end);
  }
  return end;  // the last tensor is not padded
}

// quantize -> save (s8 weights, version 2) -> load runs exactly the in-memory quantized model.
TEST(PtqModelFile, Int8FileLoadsBitExact) {
  const FixtureModel& f = fixture_model();
  const std::string dir = scratch_dir("ptq_file");
  const WeightMap q = apply_recipe(*f.model, parse_recipe(kAllRecipe, "test"), f.stats);
  auto mem = Model::from_weights(f.model->config(), q);
  write_model_file(dir + "/q.wtk", f.model->config(), q);
  write_model_file(dir + "/f.wtk", f.model->config(), f.model->weights());
  auto disk = Model::load(dir + "/q.wtk");
  Tokens t = f.model->encode(f.audio.data(), int64_t(f.audio.size()), 1);
  const std::vector<float> ym = mem->decode(t), yd = disk->decode(t);
  ASSERT_EQ(ym.size(), yd.size());
  EXPECT_EQ(0, std::memcmp(ym.data(), yd.data(), ym.size() * sizeof(float))) << "decoded audio differs";
  EXPECT_EQ(mem->encode(f.audio.data(), int64_t(f.audio.size()), 1).codes,
            disk->encode(f.audio.data(), int64_t(f.audio.size()), 1).codes);
  EXPECT_EQ(disk->fingerprint(), f.model->fingerprint());

  // Header: the quantized file is version 2 requiring int8; the float one stays version 1, flags 0.
  const std::string qb = read_file_bytes(dir + "/q.wtk"), fb = read_file_bytes(dir + "/f.wtk");
  EXPECT_EQ(u32_at(qb, 8), kModelFileVersionFeatures);
  EXPECT_EQ(u32_at(qb, 12), kModelFeatureInt8);
  EXPECT_EQ(u32_at(fb, 8), 1u);
  EXPECT_EQ(u32_at(fb, 12), 0u);
  EXPECT_EQ(Model::load(dir + "/f.wtk")->fingerprint(), f.model->fingerprint());

  // Size: exactly the documented layout, and 3 bytes less per int8 weight than float32 storage would take.
  int64_t s8_values = 0;
  EXPECT_EQ(qb.size(), expected_file_size(f.model->config(), q, &s8_values));
  int64_t quantized_weights = 0;
  for (const auto& [name, w] : q.all())
    if (q.has(name.substr(0, name.size() - 7) + ".act_quant") && name.size() > 7 &&
        name.compare(name.size() - 7, 7, ".weight") == 0)
      quantized_weights += w.numel();
  EXPECT_EQ(s8_values, quantized_weights);
  EXPECT_GT(s8_values, 0);
  int64_t extra_bytes = 0;  // the int8 parameters beside the layers
  for (const auto& [name, w] : q.all())
    if (!f.model->weights().has(name)) extra_bytes += (w.numel() * 4 + 63) / 64 * 64 + 256;
  EXPECT_LE(int64_t(qb.size()), int64_t(fb.size()) - 3 * s8_values + extra_bytes);
  std::printf("float file %.3f MB, int8 file %.3f MB (%lld s8 weights)\n", fb.size() / 1e6, qb.size() / 1e6,
              static_cast<long long>(s8_values));
}

TEST(PtqModelFile, RefusesUnknownFeaturesAndVersions) {
  const FixtureModel& f = fixture_model();
  const std::string dir = scratch_dir("ptq_file_bad");
  const WeightMap q = apply_recipe(*f.model, parse_recipe("rules:\n  - match: 'pwconv'\n", "t"), f.stats);
  write_model_file(dir + "/q.wtk", f.model->config(), q);
  const std::string qb = read_file_bytes(dir + "/q.wtk");
  auto expect_refused = [&](const std::string& name, const std::string& bytes, const std::string& what) {
    write_file_bytes(dir + "/" + name, bytes);
    expect_model_refused(dir + "/" + name, what);
  };
  std::string b = qb;
  const uint32_t unknown = kModelFeatureInt8 | (1u << 8);
  std::memcpy(b.data() + 12, &unknown, 4);
  expect_refused("feature.wtk", b, "requires features this build does not support (bits 0x100)");
  b = qb;
  b[8] = 3;
  expect_refused("version3.wtk", b, "version 3 is not supported");
  b = qb;  // s8 tensors in a version 1 file (what an old writer could never produce)
  b[8] = 1;
  expect_refused("v1_s8.wtk", b, "unsupported dtype 1");
  b = qb;  // version 2 without the int8 feature bit
  std::memset(b.data() + 12, 0, 4);
  expect_refused("nofeature.wtk", b, "unsupported dtype 1");
}

// A recipe's post-softmax quantizer is calibrated on the probabilities, stored (feature bit 1) and restored exactly.
TEST(PtqSoftmax, RecipeRoundTripsThroughFile) {
  const FixtureModel& f = fixture_model();
  const std::string dir = scratch_dir("ptq_softmax");
  Tokens t = f.model->encode(f.audio.data(), int64_t(f.audio.size()), 1);
  const std::vector<float> yf = f.model->decode(t);
  for (const std::string kind : {"log2", "adalog", "tanq"}) {
    const std::string recipe = "softmax: " + kind + "\nsoftmax_bits: 4\nrules:\n  - match: 'pwconv'\n";
    const PtqRecipe r = parse_recipe(recipe, "sm");
    EXPECT_EQ(r.softmax, kind);
    EXPECT_EQ(r.softmax_bits, 4);
    std::vector<PtqLayerReport> rep;
    const WeightMap q = apply_recipe(*f.model, r, f.stats, &rep);
    ASSERT_TRUE(q.has("backbone.pos_net.2.softmax_quant")) << kind;
    auto stored = stored_softmax_quant(q, "backbone.pos_net.2");
    ASSERT_NE(stored, nullptr);
    EXPECT_EQ(stored->bits, 4);
    EXPECT_EQ(int(stored->kind), kind == "log2" ? 0 : kind == "adalog" ? 1 : 2);
    // Against the quantizer calibrated directly on the same sample: same parameters.
    const LayerStats& sm = f.stats.at("backbone.pos_net.2.softmax");
    quant::LogQuantSpec spec;
    spec.bits = 4;
    const quant::LogQParams direct = kind == "log2"     ? quant::calibrate_log_sqrt2(sm.rows, spec)
                                     : kind == "adalog" ? quant::calibrate_adalog(sm.rows, spec)
                                                        : quant::calibrate_tanq(sm.rows, spec);
    // (TanQ's shape parameters are stored as float32: its levels agree to float rounding.)
    ASSERT_EQ(stored->levels.size(), direct.levels.size());
    for (size_t i = 0; i < direct.levels.size(); ++i)
      EXPECT_NEAR(stored->levels[i], direct.levels[i], kind == "tanq" ? 1e-6 : 0.0) << kind << " level " << i;

    auto mem = Model::from_weights(f.model->config(), q);
    write_model_file(dir + "/" + kind + ".wtk", f.model->config(), q);
    const std::string bytes = read_file_bytes(dir + "/" + kind + ".wtk");
    EXPECT_EQ(u32_at(bytes, 8), kModelFileVersionFeatures);
    EXPECT_EQ(u32_at(bytes, 12), kModelFeatureInt8 | kModelFeatureSoftmaxQuant);
    auto disk = Model::load(dir + "/" + kind + ".wtk");
    const std::vector<float> ym = mem->decode(t), yd = disk->decode(t);
    ASSERT_EQ(ym.size(), yd.size());
    EXPECT_EQ(0, std::memcmp(ym.data(), yd.data(), ym.size() * sizeof(float))) << kind;
    // The quantizer is in the graph: without it (same int8 layers) the decode differs.
    WeightMap no_sm = q;
    no_sm.all().erase("backbone.pos_net.2.softmax_quant");
    const std::vector<float> yn = Model::from_weights(f.model->config(), no_sm)->decode(t);
    EXPECT_NE(yn, ym) << kind;
    std::printf("softmax %s 4-bit: decode SNR vs float %.2f dB (without it %.2f dB)\n", kind.c_str(), snr_db(yf, ym),
                snr_db(yf, yn));
  }
  // A softmax-only recipe writes a file that needs only the softmax feature.
  const WeightMap qs =
      apply_recipe(*f.model, parse_recipe("softmax: log2\nrules:\n  - match: 'nothing'\n", "s"), f.stats);
  write_model_file(dir + "/only.wtk", f.model->config(), qs);
  EXPECT_EQ(u32_at(read_file_bytes(dir + "/only.wtk"), 12), kModelFeatureSoftmaxQuant);
  EXPECT_THROW(parse_recipe("softmax: log10\nrules:\n  - match: 'a'\n", "r"), Error);
  EXPECT_THROW(parse_recipe("softmax: log2\nsoftmax_bits: 9\nrules:\n  - match: 'a'\n", "r"), Error);
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
  const FixtureModel& f = fixture_model();
  const WeightMap q = apply_recipe(*f.model, parse_recipe("rules:\n  - match: 'pwconv'\n", "t"), f.stats);
  auto m = Model::from_weights(f.model->config(), q);
  EXPECT_THROW(apply_recipe(*m, parse_recipe("rules:\n  - match: 'pwconv'\n", "t"), f.stats), Error);
}

}  // namespace
}  // namespace wavtok
