#include "dsp/istft.h"

#include <algorithm>
#include <cmath>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include <numbers>
#include <string>

#include "core/error.h"

namespace wavtok {

namespace {

// Upstream asserts the envelope exceeds this wherever it divides by it.
constexpr double kMinEnvelope = 1e-11;

int checked_n_fft(int n_fft, int hop) {
  if (n_fft < 2 || n_fft % 2 != 0) throw Error("ISTFT: n_fft must be even and >= 2, got " + std::to_string(n_fft));
  if (hop <= 0 || hop > n_fft)
    throw Error("ISTFT: hop must be in [1, n_fft=" + std::to_string(n_fft) + "], got " + std::to_string(hop));
  return n_fft;
}

}  // namespace

IstftStream::IstftStream(int n_fft, int hop)
    : n_fft_(checked_n_fft(n_fft, hop)),
      hop_(hop),
      pad_((n_fft - hop) / 2),
      fft_(n_fft),
      window_(n_fft),
      head_env_(n_fft - hop),
      steady_env_(hop),
      tail_env_(n_fft - hop),
      spec_(n_fft / 2 + 1),
      frame_(n_fft),
      acc_(n_fft, 0.0f) {
  for (int i = 0; i < n_fft; ++i) {
    const double w = 0.5 - 0.5 * std::cos(2.0 * std::numbers::pi * i / n_fft);  // periodic Hann
    window_[i] = static_cast<float>(w / n_fft);
  }
  for (int p = 0; p < n_fft - hop; ++p) head_env_[p] = static_cast<float>(envelope_at(p, -1));
  // Past the head the envelope depends only on the position modulo hop; sample it at a position of full overlap.
  const int64_t steady_base = int64_t((n_fft + hop - 1) / hop) * hop;
  for (int j = 0; j < hop; ++j) steady_env_[j] = static_cast<float>(envelope_at(steady_base + j, -1));
  // Tail position k counts from the end of the last frame's hop: frames m = 1, 2, ... back reach it at k + m*hop.
  for (int k = 0; k < n_fft - hop; ++k) {
    double s = 0;
    for (int q = k + hop; q < n_fft; q += hop) {
      const double w = 0.5 - 0.5 * std::cos(2.0 * std::numbers::pi * q / n_fft);
      s += w * w;
    }
    tail_env_[k] = static_cast<float>(s);
  }
  // Refuse configurations whose envelope vanishes inside the kept span (e.g. hop == n_fft), as upstream would.
  double lo = *std::min_element(steady_env_.begin(), steady_env_.end());
  for (int p = pad_; p < n_fft - hop; ++p) lo = std::min(lo, double(head_env_[p]));
  for (int k = 0; k < tail_length(); ++k) lo = std::min(lo, double(tail_env_[k]));
  if (!(lo > kMinEnvelope))
    throw Error("ISTFT: window envelope vanishes for n_fft " + std::to_string(n_fft) + ", hop " + std::to_string(hop));
}

double IstftStream::envelope_at(int64_t p, int64_t frames) const {
  // Frames t with t*hop <= p < t*hop + n_fft, 0 <= t (< frames when bounded).
  int64_t t_hi = p / hop_;
  if (frames >= 0) t_hi = std::min(t_hi, frames - 1);
  double s = 0;
  for (int64_t t = t_hi; t >= 0 && p - t * hop_ < n_fft_; --t) {
    const double w = 0.5 - 0.5 * std::cos(2.0 * std::numbers::pi * double(p - t * hop_) / n_fft_);
    s += w * w;
  }
  return s;
}

int64_t IstftStream::output_length(int64_t frames) const {
  return frames <= 0 ? 0 : (frames - 1) * hop_ + n_fft_ - 2 * int64_t(pad_);
}

void IstftStream::reset() {
  std::fill(acc_.begin(), acc_.end(), 0.0f);
  frames_ = 0;
}

int64_t IstftStream::push(const float* re, const float* im, int64_t frames, float* out) {
  const int nb = bins();
  const int64_t head = n_fft_ - hop_;
  int64_t written = 0;
  for (int64_t f = 0; f < frames; ++f) {
    const float* r = re + f * nb;
    const float* m = im + f * nb;
    for (int b = 0; b < nb; ++b) spec_[b] = {r[b], m[b]};
    fft_.inverse(spec_.data(), frame_.data());
    for (int i = 0; i < n_fft_; ++i) acc_[i] += frame_[i] * window_[i];

    // No later frame reaches the first hop positions of this one: normalise and emit them (after the lead trim).
    const int64_t base = frames_ * hop_;
    for (int j = 0; j < hop_; ++j) {
      const int64_t p = base + j;
      if (p < pad_) continue;
      const float env = p < head ? head_env_[p] : steady_env_[j];
      out[written++] = acc_[j] / env;
    }
    std::copy(acc_.begin() + hop_, acc_.end(), acc_.begin());
    std::fill(acc_.end() - hop_, acc_.end(), 0.0f);
    ++frames_;
  }
  return written;
}

int64_t IstftStream::finish(float* out) {
  if (frames_ == 0) return 0;
  const int64_t base = frames_ * hop_;
  const int64_t end = output_length(frames_) + pad_;  // one past the last kept untrimmed position
  // Short streams: the tail can reach back past frame 0, so the precomputed tail envelope does not apply.
  const bool long_stream = frames_ * hop_ >= n_fft_;
  int64_t written = 0;
  for (int64_t p = base; p < end; ++p) {
    if (p < pad_) continue;
    const int64_t k = p - base;
    const float env = long_stream ? tail_env_[k] : static_cast<float>(envelope_at(p, frames_));
    out[written++] = acc_[k] / env;
  }
  reset();
  return written;
}

void Istft::inverse(const float* re, const float* im, int64_t frames, float* out) {
  stream_.reset();
  const int64_t n = stream_.push(re, im, frames, out);
  stream_.finish(out + n);
}

#if defined(WAVTOK_HAVE_LIBMVEC) && defined(__AVX512F__)
#define WAVTOK_MVEC_LANES 16
extern "C" {  // glibc libmvec, x86_64 vector ABI (max error 4 ulp, NaN and inf as the scalar functions)
__m512 _ZGVeN16v_expf(__m512);
__m512 _ZGVeN16v_cosf(__m512);
__m512 _ZGVeN16v_sinf(__m512);
}
namespace {
void magphase_lanes(const float* lm, const float* ph, float* re, float* im) {
  // m > 100 ? 100 : m, so a NaN magnitude stays NaN (torch.clip). (Not _mm512_min_ps: GCC 12 warns inside it.)
  const __m512 e = _ZGVeN16v_expf(_mm512_loadu_ps(lm)), hundred = _mm512_set1_ps(100.0f);
  const __m512 m = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(e, hundred, _CMP_GT_OQ), e, hundred);
  const __m512 p = _mm512_loadu_ps(ph);
  _mm512_storeu_ps(re, _mm512_mul_ps(m, _ZGVeN16v_cosf(p)));
  _mm512_storeu_ps(im, _mm512_mul_ps(m, _ZGVeN16v_sinf(p)));
}
}  // namespace
#elif defined(WAVTOK_HAVE_LIBMVEC) && defined(__AVX2__)
#define WAVTOK_MVEC_LANES 8
extern "C" {
__m256 _ZGVdN8v_expf(__m256);
__m256 _ZGVdN8v_cosf(__m256);
__m256 _ZGVdN8v_sinf(__m256);
}
namespace {
void magphase_lanes(const float* lm, const float* ph, float* re, float* im) {
  // MINPS returns its second operand when one is NaN, so a NaN magnitude stays NaN (torch.clip).
  const __m256 m = _mm256_min_ps(_mm256_set1_ps(100.0f), _ZGVdN8v_expf(_mm256_loadu_ps(lm)));
  const __m256 p = _mm256_loadu_ps(ph);
  _mm256_storeu_ps(re, _mm256_mul_ps(m, _ZGVdN8v_cosf(p)));
  _mm256_storeu_ps(im, _mm256_mul_ps(m, _ZGVdN8v_sinf(p)));
}
}  // namespace
#endif

void magphase_to_complex(const float* log_mag, const float* phase, int64_t count, float* re, float* im) {
#ifdef WAVTOK_MVEC_LANES
  // libmvec's exp/cos/sin: a third of the scalar libm time of the head (decoding spends ~7 % there in float).
  // The tail goes through the same vector functions on a padded copy, so an element's value never depends on
  // where it sits in the call (streaming and one-shot give the same bits).
  constexpr int64_t W = WAVTOK_MVEC_LANES;
  int64_t i = 0;
  for (; i + W <= count; i += W) magphase_lanes(log_mag + i, phase + i, re + i, im + i);
  if (i < count) {
    float lm[W] = {}, ph[W] = {}, r[W], m[W];
    std::copy(log_mag + i, log_mag + count, lm);
    std::copy(phase + i, phase + count, ph);
    magphase_lanes(lm, ph, r, m);
    std::copy(r, r + (count - i), re + i);
    std::copy(m, m + (count - i), im + i);
  }
#else
  for (int64_t i = 0; i < count; ++i) {
    // std::min(a, b) returns a when a is NaN, so a NaN magnitude stays NaN like torch.clip.
    const float mag = std::min(std::exp(log_mag[i]), 100.0f);
    re[i] = mag * std::cos(phase[i]);
    im[i] = mag * std::sin(phase[i]);
  }
#endif
}

}  // namespace wavtok
