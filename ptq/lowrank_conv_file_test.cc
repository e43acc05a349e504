// Low-rank adapters on the decoder's convolutions (RILQ, docs/PTQ.md "Low-rank adapters"): NAME.lora_a
// [r, Cin, K] / NAME.lora_b [Cout, r] on backbone.embed (k = 7) and the pos_net ResnetBlock convs (k = 3) of a
// fixture model whose convs hold packed low-bit W4A8 weights (a w4-slim-like recipe) round-trip through a .wtk bit
// for bit; zero B leaves the decode bit-identical to the model without adapters; malformed conv adapters, and
// adapters on convs that do not take them, are refused with the file named.
#include <cstring>
#include <limits>
#include <random>
#include <string>

#include <gtest/gtest.h>

#include "core/error.h"
#include "io/model_file.h"
#include "models/model.h"
#include "models/quantized.h"
#include "ptq/calibrate.h"
#include "tests/testing/fixture_model.h"
#include "tests/testing/layer_testing.h"
#include "tests/testing/model_file_testing.h"
#include "tests/testing/test_util.h"

namespace wavtok {
namespace {

using namespace wavtok::testing;

// The adapted convs: embed, a conv1 of the first ResnetBlock and the conv2 of the last (which adds into the
// residual rows), and one Linear beside them.
const char* const kConvs[] = {"backbone.embed", "backbone.pos_net.0.conv1", "backbone.pos_net.4.conv2"};

struct Env {
  std::shared_ptr<const Model> model;
  std::vector<float> audio;
  WeightMap q;  // packed low-bit W4A8 embed, pos_net convs and pointwise layers
};

const Env& setup() {
  static Env s = [] {
    Env x;
    x.model = fixture_wavtokenizer();
    x.audio = fixture_speech(24000);
    const CalibStats st = calibrate(*x.model, {x.audio}, 0, 256);
    x.q = apply_recipe(*x.model,
                       parse_recipe(R"(
rules:
  - match: 'pos_net\.\d+\.(conv1|conv2)$'
    transform: sqb
    act_range: minmax
    group_size: 64
    avg_bits: 3.2
  - match: '^backbone\.embed$'
    act_range: minmax
    group_size: 64
    avg_bits: 3.2
  - match: 'pwconv[12]$'
    act_range: minmax
    group_size: 64
    avg_bits: 3.2
)",
                                    "w4-convs"),
                       st);
    return x;
  }();
  return s;
}

WeightMap with_conv_adapters(const WeightMap& q, int rank = 4, float b_scale = 0.05f) {
  WeightMap w = q;
  std::mt19937 rng(9);
  for (const char* n : kConvs) {
    const Tensor& wt = q.get(std::string(n) + ".weight");  // [Cout, Cin, K]
    w.set(std::string(n) + ".lora_a", randn({rank, wt.dim(1), wt.dim(2)}, rng, 0.05f));
    w.set(std::string(n) + ".lora_b", b_scale == 0 ? Tensor({wt.dim(0), rank}) : randn({wt.dim(0), rank}, rng, b_scale));
  }
  const Tensor& pw = q.get("backbone.convnext.1.pwconv2.weight");
  w.set("backbone.convnext.1.pwconv2.lora_a", randn({rank, pw.dim(1)}, rng, 0.05f));
  w.set("backbone.convnext.1.pwconv2.lora_b", randn({pw.dim(0), rank}, rng, 0.05f));
  return w;
}

std::vector<float> decode(const std::shared_ptr<const Model>& m, const Env& s) {
  const Tokens t = s.model->encode(s.audio.data(), int64_t(s.audio.size()), 1);
  return m->decode(t);
}

TEST(LowRankConvFile, PackedConvAdaptersRoundTripBitExact) {
  const Env& s = setup();
  for (const char* n : kConvs) ASSERT_TRUE(s.q.has(std::string(n) + ".weight_groups")) << n << " is not packed";
  const std::string dir = scratch_dir();
  const WeightMap w = with_conv_adapters(s.q);
  EXPECT_EQ(required_model_features(w), kModelFeatureInt8 | kModelFeatureLowBit | kModelFeatureLowRank);
  write_model_file(dir + "/c.wtk", s.model->config(), w);
  write_model_file(dir + "/c0.wtk", s.model->config(), s.q);
  EXPECT_EQ(u32_at(read_file_bytes(dir + "/c.wtk"), 12), kModelFeatureInt8 | kModelFeatureLowBit | kModelFeatureLowRank);
  ModelConfig cfg;
  WeightMap back;
  read_model_file(dir + "/c.wtk", cfg, back);
  for (const char* n : kConvs)
    for (const std::string t : {".lora_a", ".lora_b"}) {
      const Tensor &x = w.get(n + t), &y = back.get(n + t);
      ASSERT_EQ(x.shape(), y.shape()) << n << t;
      EXPECT_EQ(0, std::memcmp(x.data(), y.data(), size_t(x.numel()) * 4)) << n << t;
    }
  auto disk = Model::load(dir + "/c.wtk");
  const std::vector<float> ym = decode(Model::from_weights(s.model->config(), w), s), yd = decode(disk, s),
                           yp = decode(Model::load(dir + "/c0.wtk"), s);
  ASSERT_EQ(ym.size(), yd.size());
  EXPECT_EQ(0, std::memcmp(ym.data(), yd.data(), ym.size() * sizeof(float))) << "decoded audio differs after loading";
  double diff = 0;
  for (size_t i = 0; i < ym.size(); ++i) diff = std::max(diff, double(std::abs(ym[i] - yp[i])));
  EXPECT_GT(diff, 1e-4) << "the adapters changed nothing";
  EXPECT_EQ(disk->fingerprint(), s.model->fingerprint());
  // Each conv adapter alone changes the decode (none is dropped on the way to its layer).
  for (const char* n : kConvs) {
    WeightMap one = s.q;
    one.set(std::string(n) + ".lora_a", w.get(std::string(n) + ".lora_a"));
    one.set(std::string(n) + ".lora_b", w.get(std::string(n) + ".lora_b"));
    const std::vector<float> y1 = decode(Model::from_weights(s.model->config(), one), s);
    double d1 = 0;
    for (size_t i = 0; i < y1.size(); ++i) d1 = std::max(d1, double(std::abs(y1[i] - yp[i])));
    EXPECT_GT(d1, 1e-5) << n;
  }
}

// B = 0: the adapter adds exact zeros before the main primitive's sum, so the decode is bit-identical to the model
// without adapters (the adapter path leaves the quantized computation itself untouched).
TEST(LowRankConvFile, ZeroAdapterLeavesDecodeBitIdentical) {
  const Env& s = setup();
  const std::vector<float> y0 = decode(Model::from_weights(s.model->config(), s.q), s);
  WeightMap w = with_conv_adapters(s.q, 4, 0.0f);
  w.all().erase("backbone.convnext.1.pwconv2.lora_a");
  w.all().erase("backbone.convnext.1.pwconv2.lora_b");
  const std::vector<float> y = decode(Model::from_weights(s.model->config(), w), s);
  ASSERT_EQ(y.size(), y0.size());
  EXPECT_EQ(0, std::memcmp(y.data(), y0.data(), y.size() * sizeof(float)));
}

TEST(LowRankConvFile, RefusesBadConvAdapters) {
  const Env& s = setup();
  const std::string dir = scratch_dir();
  auto refused = [&](const std::string& name, const WeightMap& w, const std::string& what) {
    const std::string path = dir + "/" + name;
    write_model_file(path, s.model->config(), w);
    expect_model_refused(path, what);
  };
  const WeightMap good = with_conv_adapters(s.q);
  const std::string c1 = "backbone.pos_net.0.conv1";
  const int64_t D = s.q.get(c1 + ".weight").dim(0);
  WeightMap w = good;
  w.all().erase(c1 + ".lora_a");
  refused("half.wtk", w, c1 + " has .lora_b without .lora_a");
  w = good;
  w.set(c1 + ".lora_a", Tensor({4, D}));  // a Linear's [r, Cin]
  refused("flat.wtk", w, "do not fit [r, " + std::to_string(D) + ", 3]");
  w = good;
  w.set(c1 + ".lora_a", Tensor({4, D, 7}));  // embed's kernel on a k=3 conv
  refused("kernel.wtk", w, "do not fit");
  w = good;
  w.set("backbone.embed.lora_b", Tensor({D + 1, 4}));
  refused("cout.wtk", w, "Conv1d backbone.embed: low-rank adapter shapes");
  w = good;
  Tensor inf = w.get("backbone.pos_net.4.conv2.lora_b");
  inf[2] = std::numeric_limits<float>::infinity();
  w.set("backbone.pos_net.4.conv2.lora_b", inf);
  refused("inf.wtk", w, "non-finite");
  refused("rank.wtk", with_conv_adapters(s.q, Conv1d::kMaxAdapterRank + 1), "rank 65");
  // Convs that take no adapters: a depthwise ConvNeXt conv and an encoder conv (the tensors would be ignored).
  for (const std::string n : {"backbone.convnext.0.dwconv", "feature_extractor.encodec.encoder.model.0.conv.conv"}) {
    w = good;
    w.set(n + ".lora_a", Tensor({2, 4, 7}));
    w.set(n + ".lora_b", Tensor({4, 2}));
    refused("other.wtk", w, n + ".lora_a is an adapter on '" + n + "'");
  }
}

}  // namespace
}  // namespace wavtok
