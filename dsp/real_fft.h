// Real-input FFT of even length n (KissFFT), planned once and reused.
// Conventions match numpy/torch: forward is unnormalised, inverse is unnormalised too (the caller scales by 1/n);
// spectra hold n/2 + 1 complex bins. The inverse ignores the imaginary parts of the DC and Nyquist bins, as
// torch.fft.irfft does.
#pragma once

#include <complex>
#include <memory>

namespace wavtok {

class RealFft {
 public:
  explicit RealFft(int n);  // n must be even and >= 2; throws wavtok::Error otherwise
  RealFft(RealFft&&) noexcept;
  RealFft& operator=(RealFft&&) noexcept;
  ~RealFft();

  int size() const { return n_; }
  int bins() const { return n_ / 2 + 1; }

  // time[n] -> freq[n/2 + 1]
  void forward(const float* time, std::complex<float>* freq) const;
  // freq[n/2 + 1] -> time[n], unnormalised (a forward then inverse multiplies by n).
  void inverse(const std::complex<float>* freq, float* time) const;

 private:
  struct Plans;
  int n_ = 0;
  std::unique_ptr<Plans> plans_;
};

}  // namespace wavtok
