// GPTQ rounding of a layer's weights (Frantar et al. 2023; docs/PTQ.md "GPTQ rounding in `wavtok quantize`").
//
// Rounding every weight to its nearest code minimises the weight error; what matters is the layer's output error
// E|(W - Q) x|^2 = sum_o (w_o - q_o)^T H (w_o - q_o), H = E[x x^T] the second moment of the layer's input (for a
// convolution, of its im2col columns, Cin*K long, c major). GPTQ rounds the columns one at a time, the column with
// the largest input energy first, and moves the columns not yet rounded to absorb each rounding error as far as H
// says they can (the optimal-brain-surgeon update, computed from the Cholesky factor of H^-1). The grid is given:
// every weight has its own step and code range, so per-row scales, group multipliers and mixed widths all fit.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace wavtok::quant {

// Accumulates H = E[x x^T] of columns of length n (float64).
class SecondMoment {
 public:
  explicit SecondMoment(int64_t n = 0);
  int64_t size() const { return n_; }
  int64_t count() const { return count_; }
  // cols: `m` columns of length n, column-major ([m][n]).
  void add(std::span<const float> cols, int64_t m);
  // E[x x^T], [n, n] row-major (the sum divided by the count). Throws when nothing was added.
  std::vector<double> mean() const;
  // E[u u^T] of the transformed columns u_i = (x_i - shift_i) / scale_i (a layer that quantizes its input after a
  // per-input shift and scale): from E[x x^T] and E[x], no second pass.
  std::vector<double> mean(std::span<const double> shift, std::span<const double> scale) const;

 private:
  int64_t n_ = 0, count_ = 0;
  std::vector<double> sum_;    // lower triangle used, column-major [n, n]
  std::vector<double> first_;  // sum of x [n]
};

struct GptqSpec {
  double damp = 0.01;     // added to H's diagonal, as a fraction of its mean (H from few samples is singular)
  bool act_order = true;  // columns by decreasing H_jj, else in order
};

// w, step: [rows, n] row-major; qmax: [rows, n], the codes of weight (o, j) lie in [-qmax, qmax]; h: [n, n]
// row-major, symmetric. Returns the integer codes [rows, n]; the weights are codes * step. Throws on bad sizes,
// a step <= 0 or a non-finite value.
std::vector<int32_t> gptq_round(std::span<const float> w, int64_t rows, int64_t n, std::span<const float> step,
                                std::span<const int32_t> qmax, std::span<const double> h, const GptqSpec& spec = {});

// sum_o (w_o - v_o)^T H (w_o - v_o) / sum_o w_o^T H w_o: the relative output error of weights v in place of w.
double relative_output_error(std::span<const float> w, std::span<const float> v, int64_t rows, int64_t n,
                             std::span<const double> h);

}  // namespace wavtok::quant
