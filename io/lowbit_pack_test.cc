// Packed low-bit codes: bit-exact round trip at every width, the documented bit layout, hostile input refused.
#include "io/lowbit_pack.h"

#include <random>

#include <gtest/gtest.h>

#include "core/error.h"

namespace wavtok {
namespace {

struct Groups {
  int64_t rows, cols, group;
  std::vector<uint8_t> bits, mult;
  std::vector<int8_t> codes;
};

Groups random_groups(int64_t rows, int64_t cols, int64_t group, uint32_t seed) {
  std::mt19937 rng(seed);
  const int64_t G = (cols + group - 1) / group;
  Groups g{rows, cols, group, {}, {}, std::vector<int8_t>(size_t(rows * cols))};
  const int widths[] = {2, 3, 4, 5, 6, 7, 8};
  for (int64_t i = 0; i < rows * G; ++i) {
    const int b = widths[rng() % 7], qmax = lowbit_code_max(b);
    g.bits.push_back(uint8_t(b));
    g.mult.push_back(uint8_t(1 + rng() % (127 / qmax)));
  }
  for (int64_t o = 0; o < rows; ++o)
    for (int64_t j = 0; j < cols; ++j) {
      const int64_t k = o * G + j / group;
      const int qmax = lowbit_code_max(g.bits[k]);
      const int q = int(rng() % uint32_t(2 * qmax + 1)) - qmax;  // every code value, the extremes included
      g.codes[o * cols + j] = int8_t(q * g.mult[k]);
    }
  return g;
}

TEST(LowBitPack, RoundTripsBitExactAtEveryWidth) {
  for (int64_t group : {1, 7, 64, 128}) {
    const Groups g = random_groups(13, 200, group, uint32_t(group));
    const std::vector<uint8_t> p = pack_lowbit(g.codes, g.bits, g.mult, g.rows, g.cols, g.group, "t");
    uint64_t total_bits = 0;
    const int64_t G = (g.cols + group - 1) / group;
    for (int64_t k = 0; k < g.rows * G; ++k) total_bits += g.bits[k] * std::min(group, g.cols - (k % G) * group);
    EXPECT_EQ(p.size(), (total_bits + 7) / 8);
    EXPECT_EQ(p.size(), lowbit_packed_bytes(g.bits, g.rows, g.cols, g.group));
    EXPECT_EQ(unpack_lowbit(p, g.bits, g.mult, g.rows, g.cols, g.group, "t"), g.codes) << "group " << group;
  }
}

TEST(LowBitPack, TwoFourBitCodesPerByteLsbFirst) {
  // one row of four 4-bit codes (q = -7, 0, 7, 1; multiplier 2): values q + 7 = 0, 7, 14, 8
  const std::vector<int8_t> codes = {-14, 0, 14, 2};
  const std::vector<uint8_t> bits = {4}, mult = {2};
  const std::vector<uint8_t> p = pack_lowbit(codes, bits, mult, 1, 4, 4, "t");
  ASSERT_EQ(p.size(), 2u);
  EXPECT_EQ(p[0], 0x70);
  EXPECT_EQ(p[1], 0x8E);
}

TEST(LowBitPack, RefusesHostileInput) {
  const Groups g = random_groups(4, 50, 16, 9);
  const std::vector<uint8_t> p = pack_lowbit(g.codes, g.bits, g.mult, g.rows, g.cols, g.group, "t");
  auto refused = [&](const std::vector<uint8_t>& pk, std::vector<uint8_t> bits, std::vector<uint8_t> mult, int64_t rows,
                     int64_t cols, int64_t group, const std::string& what) {
    try {
      unpack_lowbit(pk, bits, mult, rows, cols, group, "bad.wtk: layer x");
      ADD_FAILURE() << "accepted: " << what;
    } catch (const Error& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find("bad.wtk: layer x"), std::string::npos) << m;
      EXPECT_NE(m.find(what), std::string::npos) << m;
    }
  };
  std::vector<uint8_t> shorter(p.begin(), p.end() - 1), longer = p;
  longer.push_back(0);
  refused(shorter, g.bits, g.mult, 4, 50, 16, "bytes, their groups need");
  refused(longer, g.bits, g.mult, 4, 50, 16, "bytes, their groups need");
  std::vector<uint8_t> b = g.bits;
  b[3] = 9;
  refused(p, b, g.mult, 4, 50, 16, "width 9");
  b[3] = 1;
  refused(p, b, g.mult, 4, 50, 16, "width 1");
  std::vector<uint8_t> m = g.mult;
  m[2] = 0;
  refused(p, g.bits, m, 4, 50, 16, "multiplier 0");
  m[2] = uint8_t(127 / lowbit_code_max(g.bits[2]) + 1);
  refused(p, g.bits, m, 4, 50, 16, "multiplier");
  refused(p, g.bits, g.mult, 4, 50, 0, "bad low-bit shape");
  refused(p, g.bits, g.mult, 4, 50, 17, "low-bit groups for");
  refused(p, std::vector<uint8_t>(g.bits.begin(), g.bits.end() - 1), g.mult, 4, 50, 16, "low-bit groups for");
  refused(p, g.bits, std::vector<uint8_t>(g.mult.begin(), g.mult.end() - 1), 4, 50, 16, "differ in count");
  // a code value 2^b - 1 (one past 2 qmax) is not a code: all-ones 4-bit groups
  const std::vector<uint8_t> ones(4, 0xFF), four = {4, 4}, one = {1, 1};
  refused(ones, four, one, 1, 8, 4, "outside its 4-bit range");
  // padding bits after the last code must be zero (3 codes of 2 bits = 6 bits in one byte)
  const std::vector<uint8_t> pad = {0xC0}, two = {2}, m1 = {1};
  refused(pad, two, m1, 1, 3, 3, "padding");
  // the packer refuses codes off the group's grid
  EXPECT_THROW(pack_lowbit(std::vector<int8_t>{3}, std::vector<uint8_t>{4}, std::vector<uint8_t>{2}, 1, 1, 1, "t"),
               Error);
  EXPECT_THROW(pack_lowbit(std::vector<int8_t>{16}, std::vector<uint8_t>{4}, std::vector<uint8_t>{2}, 1, 1, 1, "t"),
               Error);
}

}  // namespace
}  // namespace wavtok
