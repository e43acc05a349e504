#include "dsp/real_fft.h"

#include <kiss_fftr.h>

#include <string>

#include "core/error.h"

namespace wavtok {

// kiss_fft_cpx is two floats laid out as {r, i}, the same as std::complex<float>, so spectra are passed through.
static_assert(sizeof(kiss_fft_cpx) == sizeof(std::complex<float>));

struct RealFft::Plans {
  struct Free {
    void operator()(kiss_fftr_state* p) const { kiss_fftr_free(p); }
  };
  std::unique_ptr<kiss_fftr_state, Free> fwd;
  std::unique_ptr<kiss_fftr_state, Free> inv;
};

RealFft::RealFft(int n) : n_(n), plans_(std::make_unique<Plans>()) {
  if (n < 2 || n % 2 != 0) throw Error("RealFft: size must be even and >= 2, got " + std::to_string(n));
  plans_->fwd.reset(kiss_fftr_alloc(n, 0, nullptr, nullptr));
  plans_->inv.reset(kiss_fftr_alloc(n, 1, nullptr, nullptr));
  if (!plans_->fwd || !plans_->inv) throw Error("RealFft: cannot allocate a plan of size " + std::to_string(n));
}

RealFft::RealFft(RealFft&&) noexcept = default;
RealFft& RealFft::operator=(RealFft&&) noexcept = default;
RealFft::~RealFft() = default;

void RealFft::forward(const float* time, std::complex<float>* freq) const {
  kiss_fftr(plans_->fwd.get(), time, reinterpret_cast<kiss_fft_cpx*>(freq));
}

void RealFft::inverse(const std::complex<float>* freq, float* time) const {
  kiss_fftri(plans_->inv.get(), reinterpret_cast<const kiss_fft_cpx*>(freq), time);
}

}  // namespace wavtok
