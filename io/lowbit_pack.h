// Packed storage of group-wise low-bit weights (quant/lowbit.h; the .wtk dtype "packed", io/model_file.h).
//
// A [rows, cols] matrix of s8 codes c = m_g * q is cut into groups of `group` columns per row (the last one of a
// row may be shorter); group g has a width b_g (2..8) and a multiplier m_g (1 <= m_g, m_g * qmax(b_g) <= 127),
// qmax(b) = 2^(b-1) - 1. Each code is written as the unsigned value q + qmax(b_g) in b_g
// bits, least significant bit first, row after row and group after group, into one bit stream (so two 4-bit codes
// per byte for 4-bit groups); the stream is zero-padded to a whole byte.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace wavtok {

inline int lowbit_code_max(int bits) { return (1 << (bits - 1)) - 1; }

// Checks (bits, mult) of every group: bits in 2..8, 1 <= mult <= 127 / qmax(bits). Throws naming `origin`.
void check_lowbit_groups(std::span<const uint8_t> bits, std::span<const uint8_t> mult, const std::string& origin);
// Bytes of the packed stream of a [rows, cols] matrix with these group widths (0 for inconsistent arguments).
uint64_t lowbit_packed_bytes(std::span<const uint8_t> bits, int64_t rows, int64_t cols, int64_t group);
// Throws naming `origin` when a code is not m * q with |q| <= qmax of its group.
std::vector<uint8_t> pack_lowbit(std::span<const int8_t> codes, std::span<const uint8_t> bits,
                                 std::span<const uint8_t> mult, int64_t rows, int64_t cols, int64_t group,
                                 const std::string& origin);
// The s8 codes (m * q) from a packed stream; throws naming `origin` on a wrong size, a code outside
// [0, 2 qmax], bad group parameters or non-zero padding bits.
std::vector<int8_t> unpack_lowbit(std::span<const uint8_t> packed, std::span<const uint8_t> bits,
                                  std::span<const uint8_t> mult, int64_t rows, int64_t cols, int64_t group,
                                  const std::string& origin);

}  // namespace wavtok
