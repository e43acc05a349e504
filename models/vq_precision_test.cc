// Codebook search in bf16 and int8 (set_vq_precision): token agreement with the float32 search on the fixtures'
// latents (vq/rvq_int8_test.cc checks every precision against a brute force, near ties included).
#include <cstdio>
#include <string>

#include <gtest/gtest.h>

#include "core/error.h"
#include "models/model.h"
#include "models/models.h"
#include "tests/testing/test_util.h"

namespace wavtok {
namespace {

using namespace wavtok::testing;

// Restores the f32 search whatever the test does.
struct VqPrecisionGuard {
  ~VqPrecisionGuard() { set_vq_precision(VqPrecision::F32); }
};

// Fraction of equal codes between the f32 and the bf16 search of `latents` [dim, F] with nq codebooks.
double agreement(const Model& m, const Tensor& latents, int nq, int64_t* total) {
  VqPrecisionGuard guard;
  set_vq_precision(VqPrecision::F32);
  const Tokens f = m.quantize(latents, nq);
  set_vq_precision(VqPrecision::BF16);
  const Tokens b = m.quantize(latents, nq);
  int64_t same = 0;
  for (size_t i = 0; i < f.codes.size(); ++i) same += f.codes[i] == b.codes[i];
  *total = int64_t(f.codes.size());
  return double(same) / double(f.codes.size());
}

Tensor latents_from_npy(const std::string& path) {
  const RawTensor a = read_npy(path);  // (1, dim, F)
  const std::vector<float> v = a.to_float();
  return Tensor({a.shape.at(1), a.shape.at(2)}, v);
}

TEST(VqPrecision, RefusesBf16WithoutCpuSupport) {
  VqPrecisionGuard guard;
  if (bf16_supported()) {
    EXPECT_NO_THROW(set_vq_precision(VqPrecision::BF16));
    EXPECT_EQ(get_vq_precision(), VqPrecision::BF16);
    GTEST_SKIP() << "this CPU has bf16; the refusal path is not reachable";
  }
  try {
    set_vq_precision(VqPrecision::BF16);
    ADD_FAILURE() << "bf16 search accepted on a CPU without bf16";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("AVX512-BF16"), std::string::npos) << e.what();
  }
  EXPECT_EQ(get_vq_precision(), VqPrecision::F32);
}

TEST(VqPrecision, Bf16TokensAgreeWithF32) {
  if (!bf16_supported()) GTEST_SKIP() << "no native bf16 on this CPU";
  auto wt = Model::load(fixture("wavtokenizer-75/model.ckpt"), {fixture("wavtokenizer-75/config.yaml")});
  int64_t n_wt = 0, n_ec = 0;
  const double a_wt = agreement(*wt, latents_from_npy(fixture("wavtokenizer-75/speech.latents.npy")), 1, &n_wt);
  auto ec = Model::load(fixture("encodec-24k/model.th"));
  const double a_ec = agreement(*ec, latents_from_npy(fixture("encodec-24k/speech.emb.npy")), 32, &n_ec);
  std::printf("bf16 codebook search: WavTokenizer %.2f%% of %lld codes, EnCodec (32 codebooks) %.2f%% of %lld\n",
              100 * a_wt, static_cast<long long>(n_wt), 100 * a_ec, static_cast<long long>(n_ec));
  // The bf16 scores only shortlist; every code their error bound cannot exclude is rescored exactly (vq/rvq.cc), so
  // the codes are the f32 search's, all of them (the plain bf16 argmax gave 99.67 % and 91.43 %).
  EXPECT_EQ(a_wt, 1.0);
  EXPECT_EQ(a_ec, 1.0);
}

// int8 shortlist (per-row int8 residual and codebook, s8 matmul) with exact rescoring: the f32 codes, every one, on
// both fixtures (all 32 EnCodec levels). Runs on any CPU (7-bit codewords where oneDNN has no VNNI).
TEST(VqPrecision, Int8TokensEqualF32) {
  struct Case {
    std::string model, latents;
    int nq;
  };
  for (const Case& c : {Case{"wavtokenizer-75/model.ckpt", "wavtokenizer-75/speech.latents.npy", 1},
                        Case{"encodec-24k/model.th", "encodec-24k/speech.emb.npy", 32}}) {
    auto m = Model::load(fixture(c.model));
    const Tensor lat = latents_from_npy(fixture(c.latents));
    VqPrecisionGuard guard;
    set_vq_precision(VqPrecision::F32);
    const Tokens f = m->quantize(lat, c.nq);
    set_vq_precision(VqPrecision::INT8);
    const Tokens i = m->quantize(lat, c.nq);
    EXPECT_EQ(i.codes, f.codes) << c.model;
  }
}

}  // namespace
}  // namespace wavtok
