#include "io/lowbit_pack.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "core/error.h"

namespace wavtok {
namespace {
struct LowBitShape {
  int64_t rows, cols, group;
};
}  // namespace

void check_lowbit_groups(std::span<const uint8_t> bits, std::span<const uint8_t> mult, const std::string& origin) {
  if (bits.size() != mult.size()) throw Error(origin + ": low-bit group widths and multipliers differ in count");
  for (size_t i = 0; i < bits.size(); ++i) {
    if (bits[i] < 2 || bits[i] > 8)
      throw Error(origin + ": low-bit group " + std::to_string(i) + " has width " + std::to_string(bits[i]) +
                  " (must be 2..8)");
    const int qmax = lowbit_code_max(bits[i]);
    if (mult[i] < 1 || int(mult[i]) * qmax > 127)
      throw Error(origin + ": low-bit group " + std::to_string(i) + " has multiplier " + std::to_string(mult[i]) +
                  " (must be 1.." + std::to_string(127 / qmax) + " at " + std::to_string(bits[i]) + " bits)");
  }
}

uint64_t lowbit_packed_bytes(std::span<const uint8_t> bits, int64_t rows, int64_t cols, int64_t group) {
  if (rows <= 0 || cols <= 0 || group <= 0) return 0;
  const int64_t G = (cols + group - 1) / group;
  if (int64_t(bits.size()) != rows * G) return 0;
  uint64_t total = 0;
  for (int64_t gi = 0; gi < rows * G; ++gi)
    total += uint64_t(bits[gi]) * uint64_t(std::min(group, cols - (gi % G) * group));
  return (total + 7) / 8;
}

std::vector<uint8_t> pack_lowbit(std::span<const int8_t> codes, std::span<const uint8_t> bits,
                                 std::span<const uint8_t> mult, int64_t rows, int64_t cols, int64_t group,
                                 const std::string& origin) {
  LowBitShape w{rows, cols, group};
  if (rows <= 0 || cols <= 0 || group <= 0 || int64_t(codes.size()) != rows * cols ||
      int64_t(bits.size()) != rows * ((cols + group - 1) / group))
    throw Error(origin + ": low-bit codes or groups do not match " + std::to_string(rows) + " x " +
                std::to_string(cols) + " (group " + std::to_string(group) + ")");
  check_lowbit_groups(bits, mult, origin);
  const int64_t G = (cols + group - 1) / group;
  std::vector<uint8_t> out(lowbit_packed_bytes(bits, rows, cols, group), 0);
  uint64_t pos = 0;
  for (int64_t o = 0; o < w.rows; ++o)
    for (int64_t g = 0; g < G; ++g) {
      const int b = bits[o * G + g], m = mult[o * G + g], qmax = lowbit_code_max(b);
      for (int64_t j = g * w.group; j < std::min(w.cols, (g + 1) * w.group); ++j) {
        const int c = codes[o * w.cols + j];
        if (c % m != 0 || std::abs(c / m) > qmax)
          throw Error(origin + ": low-bit code " + std::to_string(c) + " is not on its group's grid");
        const uint32_t v = uint32_t(c / m + qmax);
        for (int k = 0; k < b; ++k, ++pos)
          if (v >> k & 1u) out[pos >> 3] |= uint8_t(1u << (pos & 7));
      }
    }
  return out;
}

std::vector<int8_t> unpack_lowbit(std::span<const uint8_t> packed, std::span<const uint8_t> bits,
                                  std::span<const uint8_t> mult, int64_t rows, int64_t cols, int64_t group,
                                  const std::string& origin) {
  if (rows <= 0 || cols <= 0 || group <= 0 || group > cols)
    throw Error(origin + ": bad low-bit shape (" + std::to_string(rows) + " x " + std::to_string(cols) + ", group " +
                std::to_string(group) + ")");
  const int64_t G = (cols + group - 1) / group;
  if (int64_t(bits.size()) != rows * G)
    throw Error(origin + ": " + std::to_string(bits.size()) + " low-bit groups for " + std::to_string(rows) + " x " +
                std::to_string(G) + " groups");
  check_lowbit_groups(bits, mult, origin);
  const uint64_t need = lowbit_packed_bytes(bits, rows, cols, group);
  if (packed.size() != need)
    throw Error(origin + ": packed low-bit weights hold " + std::to_string(packed.size()) +
                " bytes, their groups need " + std::to_string(need));
  std::vector<int8_t> codes(size_t(rows * cols));
  uint64_t pos = 0;
  for (int64_t o = 0; o < rows; ++o)
    for (int64_t g = 0; g < G; ++g) {
      const int b = bits[o * G + g], m = mult[o * G + g], qmax = lowbit_code_max(b);
      for (int64_t j = g * group; j < std::min(cols, (g + 1) * group); ++j) {
        uint32_t v = 0;
        if ((pos >> 3) + 8 <= packed.size()) {  // a 64-bit window holds the b <= 8 bits from any bit offset
          uint64_t win;
          std::memcpy(&win, packed.data() + (pos >> 3), 8);
          v = uint32_t(win >> (pos & 7)) & ((1u << b) - 1u);
          pos += uint64_t(b);
        } else {
          for (int k = 0; k < b; ++k, ++pos) v |= uint32_t(packed[pos >> 3] >> (pos & 7) & 1u) << k;
        }
        if (v > uint32_t(2 * qmax))
          throw Error(origin + ": packed low-bit code " + std::to_string(v) + " is outside its " + std::to_string(b) +
                      "-bit range (row " + std::to_string(o) + ", column " + std::to_string(j) + ")");
        codes[o * cols + j] = int8_t((int(v) - qmax) * m);
      }
    }
  for (; pos < need * 8; ++pos)
    if (packed[pos >> 3] >> (pos & 7) & 1u) throw Error(origin + ": packed low-bit weights have non-zero padding bits");
  return codes;
}

}  // namespace wavtok
