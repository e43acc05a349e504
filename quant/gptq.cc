#include "quant/gptq.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include <Eigen/Cholesky>
#include <Eigen/Core>

#include "core/error.h"

namespace wavtok::quant {

namespace {
using RowMatrixXd = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

void check_finite(std::span<const float> v, const char* what) {
  for (float x : v)
    if (!std::isfinite(x)) throw Error(std::string("gptq: non-finite value in ") + what);
}
}  // namespace

SecondMoment::SecondMoment(int64_t n) : n_(n), sum_(size_t(n * n), 0.0), first_(size_t(n), 0.0) {
  if (n < 0) throw Error("gptq: negative moment size");
}

void SecondMoment::add(std::span<const float> cols, int64_t m) {
  if (m < 0 || int64_t(cols.size()) != m * n_) throw Error("gptq: moment columns do not match their size");
  if (m == 0) return;
  Eigen::Map<Eigen::MatrixXd> s(sum_.data(), n_, n_);
  const Eigen::MatrixXd x = Eigen::Map<const Eigen::MatrixXf>(cols.data(), n_, m).cast<double>();
  s.selfadjointView<Eigen::Lower>().rankUpdate(x);
  Eigen::Map<Eigen::VectorXd>(first_.data(), n_) += x.rowwise().sum();
  count_ += m;
}

std::vector<double> SecondMoment::mean() const {
  if (count_ == 0) throw Error("gptq: no input columns were seen");
  std::vector<double> out(size_t(n_ * n_));
  for (int64_t j = 0; j < n_; ++j)
    for (int64_t i = j; i < n_; ++i) {
      const double v = sum_[size_t(j * n_ + i)] / double(count_);  // column-major lower triangle: (i, j), i >= j
      out[size_t(i * n_ + j)] = out[size_t(j * n_ + i)] = v;
    }
  return out;
}

std::vector<double> SecondMoment::mean(std::span<const double> shift, std::span<const double> scale) const {
  if (int64_t(shift.size()) != n_ || int64_t(scale.size()) != n_)
    throw Error("gptq: the input transform does not match the moment's size");
  for (double s : scale)
    if (!(s != 0) || !std::isfinite(s)) throw Error("gptq: an input scale is zero or not finite");
  std::vector<double> h = mean();
  for (int64_t i = 0; i < n_; ++i)
    for (int64_t j = 0; j < n_; ++j) {
      const double mi = first_[size_t(i)] / double(count_), mj = first_[size_t(j)] / double(count_);
      const double c =
          h[size_t(i * n_ + j)] - shift[size_t(i)] * mj - mi * shift[size_t(j)] + shift[size_t(i)] * shift[size_t(j)];
      h[size_t(i * n_ + j)] = c / (scale[size_t(i)] * scale[size_t(j)]);
    }
  return h;
}

std::vector<int32_t> gptq_round(std::span<const float> w, int64_t rows, int64_t n, std::span<const float> step,
                                std::span<const int32_t> qmax, std::span<const double> h, const GptqSpec& spec) {
  if (rows < 0 || n <= 0 || int64_t(w.size()) != rows * n || step.size() != w.size() || qmax.size() != w.size() ||
      int64_t(h.size()) != n * n)
    throw Error("gptq: sizes of the weight, steps, code ranges and moment do not agree");
  check_finite(w, "the weight");
  for (float s : step)
    if (!(s > 0) || !std::isfinite(s)) throw Error("gptq: a step is not a positive finite number");
  for (int32_t q : qmax)
    if (q < 1) throw Error("gptq: a code range is below 1");
  for (double v : h)
    if (!std::isfinite(v)) throw Error("gptq: non-finite value in the input moment");

  RowMatrixXd hd = Eigen::Map<const RowMatrixXd>(h.data(), n, n);
  for (int64_t j = 0; j < n; ++j)
    if (!(hd(j, j) > 0)) hd(j, j) = 1.0;  // an input that never moves: any code of its column costs nothing
  std::vector<int64_t> perm(static_cast<size_t>(n));
  std::iota(perm.begin(), perm.end(), 0);
  if (spec.act_order)
    std::stable_sort(perm.begin(), perm.end(), [&](int64_t a, int64_t b) { return hd(a, a) > hd(b, b); });
  RowMatrixXd hp(n, n);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = 0; k < n; ++k) hp(i, k) = hd(perm[size_t(i)], perm[size_t(k)]);
  const double mean_diag = hp.diagonal().mean();
  // H^-1's upper Cholesky factor U (H^-1 = U^T U): row j holds how rounding column j moves the later columns.
  // H from a short calibration can be singular: the damping grows until both factorizations succeed.
  RowMatrixXd u;
  for (double damp = spec.damp;; damp = std::max(damp * 10, 1e-6)) {  // from 0 too
    RowMatrixXd hk = hp;
    hk.diagonal().array() += damp * mean_diag;
    Eigen::LLT<Eigen::MatrixXd> l1(hk);
    if (l1.info() == Eigen::Success) {
      const Eigen::MatrixXd inv = l1.solve(Eigen::MatrixXd::Identity(n, n));
      Eigen::LLT<Eigen::MatrixXd> l2(inv);
      if (l2.info() == Eigen::Success) {
        u = l2.matrixU();
        break;
      }
    }
    if (damp > 1e3) throw Error("gptq: the input moment cannot be factorized, even damped");
  }

  std::vector<int32_t> codes(w.size());
  Eigen::VectorXd r(n), st(n);
  for (int64_t o = 0; o < rows; ++o) {
    for (int64_t j = 0; j < n; ++j) {
      r[j] = w[size_t(o * n + perm[size_t(j)])];
      st[j] = step[size_t(o * n + perm[size_t(j)])];
    }
    for (int64_t j = 0; j < n; ++j) {
      const size_t at = size_t(o * n + perm[size_t(j)]);
      const double lim = qmax[at];
      const double q = std::clamp(std::nearbyint(r[j] / st[j]), -lim, lim);
      codes[at] = int32_t(q);
      const double e = (r[j] - q * st[j]) / u(j, j);
      if (j + 1 < n) r.tail(n - j - 1) -= e * u.row(j).tail(n - j - 1).transpose();
    }
  }
  return codes;
}

double relative_output_error(std::span<const float> w, std::span<const float> v, int64_t rows, int64_t n,
                             std::span<const double> h) {
  if (int64_t(w.size()) != rows * n || v.size() != w.size() || int64_t(h.size()) != n * n)
    throw Error("gptq: sizes of the weights and moment do not agree");
  const Eigen::Map<const RowMatrixXd> hm(h.data(), n, n);
  double num = 0, den = 0;
  Eigen::VectorXd a(n), d(n);
  for (int64_t o = 0; o < rows; ++o) {
    for (int64_t j = 0; j < n; ++j) {
      a[j] = w[size_t(o * n + j)];
      d[j] = a[j] - double(v[size_t(o * n + j)]);
    }
    num += d.dot(hm * d);
    den += a.dot(hm * a);
  }
  return den > 0 ? num / den : 0.0;
}

}  // namespace wavtok::quant
