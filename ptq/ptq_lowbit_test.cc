// W4 recipes on the random-weight fixture model: the Hadamard and LayerNorm folds are exact in float, packed
// low-bit weights round-trip bit-exactly through a .wtk, and malformed low-bit files are refused.
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>

#include <gtest/gtest.h>

#include "core/error.h"
#include "dsp/audio_io.h"
#include "io/model_file.h"
#include "models/model.h"
#include "ptq/calibrate.h"
#include "tests/testing/fixture_model.h"
#include "tests/testing/model_file_testing.h"
#include "tests/testing/test_util.h"

namespace wavtok {
namespace {

using namespace wavtok::testing;

// The fixture model, the first second of its clip (1 s keeps the tests cheap) and that second's tokens.
struct ShortFixture {
  std::shared_ptr<const Model> model;
  std::vector<float> audio;
  Tokens tokens;
};

const ShortFixture& short_fixture() {
  static ShortFixture f = [] {
    ShortFixture x;
    x.model = fixture_wavtokenizer();
    x.audio = fixture_speech(24000);
    x.tokens = x.model->encode(x.audio.data(), int64_t(x.audio.size()), 1);
    return x;
  }();
  return f;
}

double rel_err(const std::vector<float>& ref, const std::vector<float>& y) {
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); ++i)
    num += (double(ref[i]) - y[i]) * (double(ref[i]) - y[i]), den += double(ref[i]) * ref[i];
  return std::sqrt(num / den);
}

// Where a tensor's table entry (dtype field) and data lie in a .wtk (io/model_file.h layout).
struct Entry {
  size_t dtype_at = 0;
  uint64_t off = 0, nb = 0;
  size_t nb_at = 0;
};

Entry find_entry(const std::string& b, const std::string& want) {
  uint64_t ylen, count;
  std::memcpy(&ylen, b.data() + 16, 8);
  std::memcpy(&count, b.data() + 24, 8);
  size_t p = 32 + ylen;
  for (uint64_t i = 0; i < count; ++i) {
    uint32_t nl, nd;
    std::memcpy(&nl, b.data() + p, 4);
    const std::string name = b.substr(p + 4, nl);
    p += 4 + nl;
    Entry e;
    e.dtype_at = p;
    std::memcpy(&nd, b.data() + p + 4, 4);
    p += 8 + 8 * nd;
    std::memcpy(&e.off, b.data() + p, 8);
    std::memcpy(&e.nb, b.data() + p + 8, 8);
    e.nb_at = p + 8;
    p += 16;
    if (name == want) return e;
  }
  throw Error("no tensor " + want);
}

TEST(PtqFold, HadamardFoldIsExactInFloat) {
  const ShortFixture& f = short_fixture();
  const PtqRecipe r = parse_recipe("rules:\n  - match: 'proj_out$'\n    hadamard: true\n", "t");
  std::vector<std::string> rotated;
  const WeightMap w = fold_hadamard(*f.model, r, &rotated);
  ASSERT_EQ(rotated, std::vector<std::string>{"backbone.pos_net.2.proj_out"});
  EXPECT_EQ(w.get("backbone.pos_net.2.proj_out.input_rotation")[0], 128.0f);  // dim 128: one block
  // the weights really changed
  EXPECT_GT(rel_err(std::vector<float>(f.model->weights().get("backbone.pos_net.2.v.weight").data(),
                                       f.model->weights().get("backbone.pos_net.2.v.weight").data() + 128 * 128),
                    std::vector<float>(w.get("backbone.pos_net.2.v.weight").data(),
                                       w.get("backbone.pos_net.2.v.weight").data() + 128 * 128)),
            0.5);
  auto rot = Model::from_weights(f.model->config(), w);
  const std::vector<float> y0 = f.model->decode(f.tokens), y1 = rot->decode(f.tokens);
  ASSERT_EQ(y0.size(), y1.size());
  const double e = rel_err(y0, y1);
  std::printf("Hadamard fold: decoded audio differs from the unrotated model by %.2e (relative rms)\n", e);
  EXPECT_LT(e, 1e-5);
  EXPECT_THROW(fold_hadamard(*rot, r), Error);  // rotating twice is refused
  EXPECT_THROW(fold_hadamard(*f.model, parse_recipe("rules:\n  - match: 'pwconv1$'\n    hadamard: true\n", "t")),
               Error);  // nothing foldable matched
}

// RepQ-ViT's fold: with ln_fold the per-channel transform lives in the (Ada)LayerNorm rows and W', b'; running that
// model in float (quantization parameters removed) equals the float model for every bandwidth id.
TEST(PtqFold, LayerNormFoldIsExactInFloat) {
  const ShortFixture& base = short_fixture();
  // The fixture's AdaLayerNorm rows are alike; make every bandwidth id's row different so the fold is checked on each.
  WeightMap wm = base.model->weights();
  int ada = 0;
  for (const auto& [k, t] : base.model->weights().all())
    if (k.size() > 13 &&
        (k.compare(k.size() - 13, 13, ".scale.weight") == 0 || k.compare(k.size() - 13, 13, ".shift.weight") == 0)) {
      Tensor u = t;
      const int64_t D = u.dim(1);
      for (int64_t e = 0; e < u.dim(0); ++e)
        for (int64_t d = 0; d < D; ++d)
          u[e * D + d] = u[e * D + d] * (1.0f + 0.15f * float(e)) + 0.03f * float((e * 7 + d) % 5);
      wm.set(k, std::move(u));
      ++ada;
    }
  ASSERT_GT(ada, 0);
  struct {
    std::shared_ptr<const Model> model;
    Tokens tokens;
  } f{Model::from_weights(base.model->config(), wm), base.tokens};
  const CalibStats st = calibrate(*f.model, {base.audio}, 0, 256);
  const char* recipe = R"(
rules:
  - match: 'pwconv1$'
    transform: repq
    ln_fold: true
  - match: 'pos_net\.2\.(q|k|v)$'
    transform: repq
    ln_fold: true
  - match: '^head\.out$'
    transform: repq
    ln_fold: true
)";
  const WeightMap q = apply_recipe(*f.model, parse_recipe(recipe, "t"), st);
  EXPECT_FALSE(q.has("backbone.convnext.0.pwconv1.act_shift"));  // the transform is in the norm now
  EXPECT_TRUE(q.has("backbone.convnext.0.pwconv1.act_quant"));
  auto strip = [](WeightMap w) {  // the same weights as a float model
    std::vector<std::string> drop;
    for (const auto& [k, t] : w.all())
      for (const char* s : {".act_quant", ".weight_scale", ".act_shift", ".act_smooth"})
        if (k.size() > std::strlen(s) && k.compare(k.size() - std::strlen(s), std::strlen(s), s) == 0)
          drop.push_back(k);
    for (const auto& k : drop) w.all().erase(k);
    return w;
  };
  auto folded = Model::from_weights(f.model->config(), strip(q));
  const Tensor lat = f.model->dequantize(f.tokens);
  std::vector<float> prev;
  for (int bw : {0, 3}) {  // the first and the last AdaLayerNorm row
    const std::vector<float> y0 = f.model->decode_latents(lat, bw), y1 = folded->decode_latents(lat, bw);
    if (!prev.empty()) {
      EXPECT_GT(rel_err(prev, y0), 1e-3) << "the rows do not differ";
    }
    prev = y0;
    const double e = rel_err(y0, y1);
    std::printf("LayerNorm fold, bandwidth id %d: %.2e relative rms vs float\n", bw, e);
    EXPECT_LT(e, 1e-5) << "bandwidth id " << bw;
  }
  // Control: the same recipe without the fold leaves the transform in act_shift/act_smooth; stripping those
  // then changes the function, so the test above does detect a missing or wrong fold.
  std::string nofold = recipe;
  for (size_t p; (p = nofold.find("ln_fold: true")) != std::string::npos;) nofold.replace(p, 13, "ln_fold: false");
  auto unfolded = Model::from_weights(f.model->config(), strip(apply_recipe(*f.model, parse_recipe(nofold, "t"), st)));
  EXPECT_GT(rel_err(f.model->decode_latents(lat, 0), unfolded->decode_latents(lat, 0)), 1e-3);
  // a rotation rule on a model that was not rotated (fold_hadamard / prepare_for_recipe) is refused
  EXPECT_THROW(apply_recipe(*f.model, parse_recipe("rules:\n  - match: 'proj_out$'\n    hadamard: true\n", "t"), st),
               Error);
  // q/k/v share one norm: folding only some of them is refused
  EXPECT_THROW(apply_recipe(*f.model,
                            parse_recipe("rules:\n  - match: 'pos_net\\.2\\.q$'\n    transform: repq\n"
                                         "    ln_fold: true\n",
                                         "t"),
                            st),
               Error);
}

const char* kW4Recipe = R"(
rules:
  - match: 'encoder\.model\.\d+\.lstm$'
    weight_only: true
    group_size: 64
    avg_bits: 5
  - match: 'encoder\.model\.\d+\.conv\.conv$'
    weight_only: true
    weight_bits: 8
  - match: 'pwconv1$'
    transform: repq
    ln_fold: true
    group_size: 64
    avg_bits: 4
  - match: 'pwconv2$'
    group_size: 64
    avg_bits: 4
  - match: 'proj_out$'
    hadamard: true
    group_size: 64
    avg_bits: 4
  - match: '^head\.out$'
    weight_only: true
    group_size: 128
    avg_bits: 4
)";

TEST(PtqLowBit, PackedFileRoundTripsBitExact) {
  const ShortFixture& f = short_fixture();
  const std::string dir = scratch_dir("ptq_lowbit_file");
  const PtqRecipe r = parse_recipe(kW4Recipe, "t");
  auto prepared = prepare_for_recipe(f.model, r);
  const CalibStats st = calibrate(*prepared, {f.audio}, 0, 256);
  std::vector<PtqLayerReport> rep;
  const WeightMap q = apply_recipe(*prepared, r, st, &rep);
  int lowbit_layers = 0;
  for (const auto& e : rep)
    if (e.group_size > 0) {
      ++lowbit_layers;
      const double want = e.name.find("lstm") != std::string::npos      ? 5.0
                          : e.name.find("encoder") != std::string::npos ? 8.0
                                                                        : 4.0;  // the rule's budget, spent
      EXPECT_LE(e.avg_bits, want + 1e-9) << e.name;
      EXPECT_GT(e.avg_bits, want - 0.2) << e.name;
    }
  EXPECT_GE(lowbit_layers, 4 + 4 + 1 + 1 + 1 + 2);
  EXPECT_FALSE(q.has("head.out.act_quant"));  // weight-only
  EXPECT_TRUE(q.has("feature_extractor.encodec.encoder.model.13.lstm.weight_hh_l1_groups"));
  EXPECT_FALSE(q.has("feature_extractor.encodec.encoder.model.13.lstm.act_quant"));
  write_model_file(dir + "/w4.wtk", f.model->config(), q);
  write_model_file(dir + "/f.wtk", f.model->config(), f.model->weights());
  ModelConfig cfg;
  WeightMap back;
  read_model_file(dir + "/w4.wtk", cfg, back);
  ASSERT_EQ(back.all().size(), q.all().size());
  for (const auto& [k, t] : q.all()) {
    ASSERT_TRUE(back.has(k)) << k;
    const Tensor& u = back.get(k);
    ASSERT_EQ(u.shape(), t.shape()) << k;
    EXPECT_EQ(0, std::memcmp(u.data(), t.data(), size_t(t.numel()) * sizeof(float))) << k << " differs after loading";
  }
  auto mem = Model::from_weights(f.model->config(), q);
  auto disk = Model::load(dir + "/w4.wtk");
  const std::vector<float> ym = mem->decode(f.tokens), yd = disk->decode(f.tokens), yf = f.model->decode(f.tokens);
  ASSERT_EQ(ym.size(), yd.size());
  EXPECT_EQ(0, std::memcmp(ym.data(), yd.data(), ym.size() * sizeof(float))) << "decoded audio differs";
  EXPECT_EQ(mem->encode(f.audio.data(), int64_t(f.audio.size()), 1).codes,
            disk->encode(f.audio.data(), int64_t(f.audio.size()), 1).codes);
  const double snr = -20 * std::log10(rel_err(yf, yd));
  std::printf("W4 (SliM 4.0 bits, g64/g128) decode SNR vs float: %.1f dB\n", snr);
  EXPECT_GT(snr, 10.0);  // random weights, 4-bit: a sanity bound, not a quality claim
  const std::string qb = read_file_bytes(dir + "/w4.wtk"), fb = read_file_bytes(dir + "/f.wtk");
  uint32_t feat;
  std::memcpy(&feat, qb.data() + 12, 4);
  EXPECT_EQ(feat, kModelFeatureInt8 | kModelFeatureLowBit);
  // The packed weights take their code bits, no more: sum of bits over the groups / 8, rounded up.
  const Entry e = find_entry(qb, "backbone.convnext.0.pwconv1.weight");
  const Tensor& g = q.get("backbone.convnext.0.pwconv1.weight_groups");
  uint64_t bits = 0;
  for (int64_t i = 0; i < g.numel(); i += 2) bits += uint64_t(g[i]) * 64;
  EXPECT_EQ(e.nb, (bits + 7) / 8);
  EXPECT_LE(e.nb, uint64_t(384 * 128 / 2));
  std::printf("fixture model: float %.3f MB, W4 file %.3f MB\n", fb.size() / 1e6, qb.size() / 1e6);
  EXPECT_LT(qb.size(), fb.size());
}

TEST(PtqLowBit, RefusesMalformedFiles) {
  const ShortFixture& f = short_fixture();
  const std::string dir = scratch_dir("ptq_lowbit_bad");
  const PtqRecipe r = parse_recipe("rules:\n  - match: 'pwconv2$'\n    group_size: 64\n    avg_bits: 4\n", "t");
  const CalibStats st = calibrate(*f.model, {f.audio}, 0, 64);
  write_model_file(dir + "/q.wtk", f.model->config(), apply_recipe(*f.model, r, st));
  const std::string qb = read_file_bytes(dir + "/q.wtk");
  auto expect_refused = [&](const std::string& name, const std::string& bytes, const std::string& what) {
    write_file_bytes(dir + "/" + name, bytes);
    expect_model_refused(dir + "/" + name, what);
  };
  EXPECT_NO_THROW(Model::load(dir + "/q.wtk"));
  std::string b = qb;
  const uint32_t int8_only = kModelFeatureInt8;  // packed tensors in a file not marked lowbit
  std::memcpy(b.data() + 12, &int8_only, 4);
  expect_refused("nofeature.wtk", b, "low-bit outside a file marked lowbit");
  const Entry w = find_entry(qb, "backbone.convnext.1.pwconv2.weight");
  const Entry g = find_entry(qb, "backbone.convnext.1.pwconv2.weight_groups");
  b = qb;  // a group width of 9 bits
  b[g.off] = 9;
  expect_refused("width.wtk", b, "has width 9");
  b = qb;  // a multiplier that overflows s8
  b[g.off + 1] = char(200);
  expect_refused("mult.wtk", b, "has multiplier 200");
  b = qb;  // one byte less of packed codes than the groups need
  const uint64_t shorter = w.nb - 1;
  std::memcpy(b.data() + w.nb_at, &shorter, 8);
  expect_refused("short.wtk", b, "their groups need");
  b = qb;  // a packed size claiming 100 bits per code
  const uint64_t huge = w.nb * 100;
  std::memcpy(b.data() + w.nb_at, &huge, 8);
  expect_refused("huge.wtk", b, "byte size does not match its shape");
  b = qb;  // packed dtype on a tensor that is not a weight
  const uint32_t packed = 3;
  std::memcpy(b.data() + find_entry(qb, "backbone.convnext.1.pwconv2.bias").dtype_at, &packed, 4);
  expect_refused("dtype.wtk", b, "");
  b = qb;  // u8 group table on a weight
  const uint32_t u8 = 2;
  std::memcpy(b.data() + w.dtype_at, &u8, 4);
  expect_refused("u8weight.wtk", b, "");
  // the file itself is untouched by all this
  EXPECT_EQ(read_file_bytes(dir + "/q.wtk"), qb);
}

}  // namespace
}  // namespace wavtok

namespace wavtok {
namespace {

TEST(PtqRecipe, RejectsBadLowBitRules) {
  auto refused = [](const std::string& rule, const std::string& what) {
    try {
      parse_recipe("rules:\n  - match: 'x'\n" + rule, "bad.yaml");
      ADD_FAILURE() << "accepted: " << rule;
    } catch (const Error& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find("bad.yaml"), std::string::npos) << m;
      EXPECT_NE(m.find(what), std::string::npos) << m;
    }
  };
  refused("    group_size: 64\n    avg_bits: 9\n", "avg_bits must lie between");
  refused("    group_size: 64\n    avg_bits: 1.5\n", "avg_bits must lie between");
  refused("    avg_bits: 4\n", "avg_bits needs group_size");
  refused("    group_size: -1\n", "group_size");
  refused("    group_size: 64\n    widths: [1, 4]\n", "widths must lie in 2..8");
  refused("    group_size: 64\n    widths: []\n", "widths must list");
  refused("    weight_only: true\n    transform: sqb\n", "weight_only layers keep float inputs");
  refused("    ln_fold: true\n", "ln_fold needs transform");
  const PtqRecipe r = parse_recipe(
      "rules:\n  - match: 'x'\n    group_size: 128\n    avg_bits: 3.5\n    widths: [3, 4]\n    sqc: false\n", "ok");
  ASSERT_EQ(r.rules.size(), 1u);
  EXPECT_EQ(r.rules[0].group_size, 128);
  EXPECT_EQ(r.rules[0].avg_bits, 3.5);
  EXPECT_EQ(r.rules[0].widths, (std::vector<int>{3, 4}));
  EXPECT_FALSE(r.rules[0].sqc);
}

}  // namespace
}  // namespace wavtok
