// Low-rank adapters (RILQ, docs/PTQ.md "Low-rank adapters") in the model file: a quantized fixture model with
// adapters round-trips through a .wtk bit-exactly (feature bit 4), the adapters change what it decodes, and
// malformed adapter tensors or headers are refused with the file named.
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>

#include <gtest/gtest.h>

#include "core/error.h"
#include "dsp/audio_io.h"
#include "io/model_file.h"
#include "models/model.h"
#include "models/models.h"
#include "models/quantized.h"
#include "ptq/calibrate.h"
#include "tests/testing/fixture_model.h"
#include "tests/testing/layer_testing.h"
#include "tests/testing/model_file_testing.h"
#include "tests/testing/test_util.h"

namespace wavtok {
namespace {

using namespace wavtok::testing;

struct Env {
  std::shared_ptr<const Model> model;
  std::vector<float> audio;
  WeightMap q;  // W4 pointwise layers, int8 head
};

const Env& setup() {
  static Env s = [] {
    Env x;
    x.model = fixture_wavtokenizer();
    x.audio = fixture_speech(24000);  // 1 s is plenty here
    const CalibStats st = calibrate(*x.model, {x.audio}, 0, 256);
    x.q = apply_recipe(*x.model,
                       parse_recipe(R"(
rules:
  - match: 'pwconv[12]$'
    weight_bits: 4
  - match: '^head\.out$'
)",
                                    "w4"),
                       st);
    return x;
  }();
  return s;
}

// Adapters on two Linear layers (one W4, one int8), small random values.
WeightMap with_adapters(const WeightMap& q, int rank = 4) {
  WeightMap w = q;
  std::mt19937 rng(5);
  for (const std::string n : {"backbone.convnext.1.pwconv1", "head.out"}) {
    const Tensor& wt = q.get(n + ".weight");
    w.set(n + ".lora_a", randn({rank, wt.dim(1)}, rng, 0.05f));
    w.set(n + ".lora_b", randn({wt.dim(0), rank}, rng, 0.05f));
  }
  return w;
}

TEST(LowRankFile, RoundTripsBitExact) {
  const Env& s = setup();
  const std::string dir = scratch_dir();
  const WeightMap w = with_adapters(s.q);
  EXPECT_EQ(required_model_features(w), kModelFeatureInt8 | kModelFeatureLowRank);
  write_model_file(dir + "/a.wtk", s.model->config(), w);
  const std::string bytes = read_file_bytes(dir + "/a.wtk");
  EXPECT_EQ(u32_at(bytes, 8), kModelFileVersionFeatures);
  EXPECT_EQ(u32_at(bytes, 12), kModelFeatureInt8 | kModelFeatureLowRank);
  ModelConfig cfg;
  WeightMap back;
  read_model_file(dir + "/a.wtk", cfg, back);
  for (const std::string n : {"backbone.convnext.1.pwconv1", "head.out"})
    for (const std::string t : {".lora_a", ".lora_b"}) {
      const Tensor &x = w.get(n + t), &y = back.get(n + t);
      ASSERT_EQ(x.shape(), y.shape());
      EXPECT_EQ(0, std::memcmp(x.data(), y.data(), size_t(x.numel()) * 4)) << n << t;
    }
  auto mem = Model::from_weights(s.model->config(), w);
  auto disk = Model::load(dir + "/a.wtk");
  auto plain = Model::from_weights(s.model->config(), s.q);
  Tokens t = s.model->encode(s.audio.data(), int64_t(s.audio.size()), 1);
  const std::vector<float> ym = mem->decode(t), yd = disk->decode(t), yp = plain->decode(t);
  ASSERT_EQ(ym.size(), yd.size());
  EXPECT_EQ(0, std::memcmp(ym.data(), yd.data(), ym.size() * sizeof(float))) << "decoded audio differs after loading";
  double diff = 0;
  for (size_t i = 0; i < ym.size(); ++i) diff = std::max(diff, double(std::abs(ym[i] - yp[i])));
  EXPECT_GT(diff, 1e-4) << "the adapters changed nothing";
  EXPECT_EQ(disk->fingerprint(), s.model->fingerprint());  // tokens stay valid
}

// Adapters beside packed low-bit weights (feature bits 2 and 4 together): a W4A8 pointwise layer and a weight-only
// low-bit head.out, both with adapters, decode bit for bit after the file round trip, with their weights packed.
TEST(LowRankFile, PackedLowBitWithAdaptersRoundTrips) {
  const Env& s = setup();
  const std::string dir = scratch_dir();
  const CalibStats st = calibrate(*s.model, {s.audio}, 0, 256);
  const WeightMap q = apply_recipe(*s.model,
                                   parse_recipe(R"(
rules:
  - match: 'pwconv[12]$'
    act_range: minmax
    group_size: 64
    avg_bits: 3.2
  - match: '^head\.out$'
    weight_only: true
    group_size: 32
    avg_bits: 4
)",
                                                "w4-packed"),
                                   st);
  ASSERT_TRUE(q.has("head.out.weight_groups") && !q.has("head.out.act_quant"));
  const WeightMap w = with_adapters(q);
  EXPECT_EQ(required_model_features(w), kModelFeatureInt8 | kModelFeatureLowBit | kModelFeatureLowRank);
  write_model_file(dir + "/p.wtk", s.model->config(), w);
  const std::string bytes = read_file_bytes(dir + "/p.wtk");
  EXPECT_EQ(u32_at(bytes, 12), kModelFeatureInt8 | kModelFeatureLowBit | kModelFeatureLowRank);
  write_model_file(dir + "/p0.wtk", s.model->config(), q);
  auto mem = Model::from_weights(s.model->config(), w);
  auto disk = Model::load(dir + "/p.wtk");
  auto plain = Model::load(dir + "/p0.wtk");
  Tokens t = s.model->encode(s.audio.data(), int64_t(s.audio.size()), 1);
  const std::vector<float> ym = mem->decode(t), yd = disk->decode(t), yp = plain->decode(t);
  ASSERT_EQ(ym.size(), yd.size());
  EXPECT_EQ(0, std::memcmp(ym.data(), yd.data(), ym.size() * sizeof(float))) << "decoded audio differs after loading";
  double diff = 0;
  for (size_t i = 0; i < ym.size(); ++i) diff = std::max(diff, double(std::abs(ym[i] - yp[i])));
  EXPECT_GT(diff, 1e-4) << "the adapters changed nothing";
}

TEST(LowRankFile, RefusesBadAdapters) {
  const Env& s = setup();
  const std::string dir = scratch_dir();
  auto refused = [&](const std::string& name, const WeightMap& w, const std::string& what) {
    const std::string path = dir + "/" + name;
    write_model_file(path, s.model->config(), w);
    expect_model_refused(path, what);
  };
  const WeightMap good = with_adapters(s.q);
  WeightMap w = good;
  w.all().erase("head.out.lora_b");
  refused("half.wtk", w, "head.out has .lora_a without .lora_b");
  w = good;
  w.set("head.out.lora_b", Tensor({7, 4}));
  refused("shape.wtk", w, "do not fit");
  w = good;
  Tensor nan = w.get("head.out.lora_a");
  nan[3] = std::nanf("");
  w.set("head.out.lora_a", nan);
  refused("nan.wtk", w, "non-finite");
  w = with_adapters(s.q, Linear::kMaxAdapterRank + 1);
  refused("rank.wtk", w, "rank 65");
  w = good;  // a layer that takes no adapter (depthwise): the tensors would be ignored, so the file is refused
  w.set("backbone.convnext.0.dwconv.lora_a", Tensor({2, 4}));
  w.set("backbone.convnext.0.dwconv.lora_b", Tensor({4, 2}));
  refused("conv.wtk", w, "backbone.convnext.0.dwconv.lora_a is an adapter on 'backbone.convnext.0.dwconv'");

  // Adapter tensors in a file that does not declare them (feature bit cleared, or an old version 1 header).
  write_model_file(dir + "/ok.wtk", s.model->config(), good);
  std::string b = read_file_bytes(dir + "/ok.wtk");
  const uint32_t int8_only = kModelFeatureInt8;
  std::memcpy(b.data() + 12, &int8_only, 4);
  write_file_bytes(dir + "/nobit.wtk", b);
  try {
    Model::load(dir + "/nobit.wtk");
    ADD_FAILURE() << "nobit.wtk was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("does not declare the low-rank feature"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace wavtok
