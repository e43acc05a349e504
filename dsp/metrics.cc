#include "dsp/metrics.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <complex>
#include <limits>
#include <numbers>
#include <string>

#include "core/error.h"
#include "dsp/audio_io.h"
#include "dsp/mel.h"
#include "dsp/real_fft.h"

namespace wavtok {

namespace {

void check_pair(const char* what, std::span<const float> a, std::span<const float> b) {
  if (a.empty() || a.size() != b.size())
    throw Error(std::string(what) + ": signals must be non-empty and of equal length (got " + std::to_string(a.size()) +
                " and " + std::to_string(b.size()) + " samples)");
}

double db_ratio(double num, double den) {
  if (den == 0.0) return std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(num / den);
}

}  // namespace

double si_snr(std::span<const float> reference, std::span<const float> estimate) {
  check_pair("SI-SNR", reference, estimate);
  const size_t n = reference.size();
  double mr = 0, me = 0;
  for (size_t i = 0; i < n; ++i) mr += reference[i], me += estimate[i];
  mr /= double(n), me /= double(n);
  double dot = 0, rr = 0;
  for (size_t i = 0; i < n; ++i) {
    const double r = reference[i] - mr, e = estimate[i] - me;
    dot += e * r, rr += r * r;
  }
  if (rr == 0.0) throw Error("SI-SNR: the reference is constant, so the target direction is undefined");
  const double a = dot / rr;
  double ss = 0, nn = 0;
  for (size_t i = 0; i < n; ++i) {
    const double s = a * (reference[i] - mr), d = (estimate[i] - me) - s;
    ss += s * s, nn += d * d;
  }
  return db_ratio(ss, nn);
}

double snr(std::span<const float> reference, std::span<const float> estimate) {
  check_pair("SNR", reference, estimate);
  double rr = 0, dd = 0;
  for (size_t i = 0; i < reference.size(); ++i) {
    const double d = double(estimate[i]) - reference[i];
    rr += double(reference[i]) * reference[i], dd += d * d;
  }
  if (rr == 0.0) throw Error("SNR: the reference is all zeros");
  return db_ratio(rr, dd);
}

double mel_distance(std::span<const float> reference, std::span<const float> estimate, int sample_rate,
                    const MelDistanceOptions& options) {
  check_pair("mel distance", reference, estimate);
  if (options.n_ffts.empty()) throw Error("mel distance: no resolutions given");
  double total = 0;
  for (int n_fft : options.n_ffts) {
    const MelSpectrogram mel(sample_rate, n_fft, n_fft / 4, options.n_mels);
    const Spectrogram a = mel.compute(reference), b = mel.compute(estimate);
    double sum = 0;
    for (size_t i = 0; i < a.data.size(); ++i)
      sum += std::abs(std::log10(std::max<double>(a.data[i], options.clamp)) -
                      std::log10(std::max<double>(b.data[i], options.clamp)));
    total += sum / double(a.data.size());
  }
  return total / double(options.n_ffts.size());
}

// ---- STOI ----

namespace {

constexpr int kStoiRate = 10000;
constexpr int kFrame = 256;
constexpr int kHop = kFrame / 2;
constexpr int kFft = 512;
constexpr int kBins = kFft / 2 + 1;
constexpr int kBands = 15;
constexpr double kMinFreq = 150.0;
constexpr int kSegment = 30;
constexpr double kBetaDb = -15.0;
constexpr double kDynRangeDb = 40.0;
constexpr double kEps = std::numeric_limits<double>::epsilon();

// MATLAB hanning(256): the symmetric Hann of length 258 without its zero end points.
std::array<double, kFrame> stoi_window() {
  std::array<double, kFrame> w{};
  for (int i = 0; i < kFrame; ++i) w[i] = 0.5 - 0.5 * std::cos(2.0 * std::numbers::pi * (i + 1) / (kFrame + 1));
  return w;
}

// Drops frames more than 40 dB below the loudest clean frame, rebuilding both signals by overlap-add.
void remove_silent_frames(const std::vector<double>& x, const std::vector<double>& y, std::vector<double>& xs,
                          std::vector<double>& ys) {
  const auto w = stoi_window();
  const int64_t n = int64_t(x.size());
  std::vector<int64_t> starts;
  std::vector<double> energy;
  // Frame starts 0, hop, ... < n - 256 (strictly, as the reference MATLAB code), so the last full frame may be skipped.
  for (int64_t s = 0; s + kFrame < n; s += kHop) {
    double e = 0;
    for (int i = 0; i < kFrame; ++i) e += (w[i] * x[s + i]) * (w[i] * x[s + i]);
    starts.push_back(s);
    energy.push_back(20.0 * std::log10(std::sqrt(e) + kEps));
  }
  xs.clear(), ys.clear();
  if (starts.empty()) return;
  const double top = *std::max_element(energy.begin(), energy.end());
  int64_t kept = 0;
  for (size_t f = 0; f < starts.size(); ++f) {
    if (!(top - kDynRangeDb - energy[f] < 0)) continue;
    const int64_t at = kept * kHop;
    xs.resize(at + kFrame, 0.0), ys.resize(at + kFrame, 0.0);
    for (int i = 0; i < kFrame; ++i) {
      xs[at + i] += w[i] * x[starts[f] + i];
      ys[at + i] += w[i] * y[starts[f] + i];
    }
    ++kept;
  }
}

struct BandMap {
  std::array<int, kBands> lo{}, hi{};  // bins [lo, hi)
};

BandMap third_octave_bands() {
  BandMap m;
  auto nearest_bin = [](double hz) {
    int best = 0;
    double best_d = std::numeric_limits<double>::infinity();
    for (int k = 0; k < kBins; ++k) {
      const double d = std::abs(double(k) * kStoiRate / kFft - hz);
      if (d < best_d) best = k, best_d = d;  // first bin wins a tie
    }
    return best;
  };
  for (int b = 0; b < kBands; ++b) {
    m.lo[b] = nearest_bin(kMinFreq * std::pow(2.0, (2.0 * b - 1.0) / 6.0));
    m.hi[b] = nearest_bin(kMinFreq * std::pow(2.0, (2.0 * b + 1.0) / 6.0));
  }
  return m;
}

// Band envelopes, bands x frames, of frames starting at 0, hop, ... < length - 256.
std::vector<double> band_envelopes(const std::vector<double>& x, const BandMap& bands, int64_t& frames) {
  const auto w = stoi_window();
  const int64_t n = int64_t(x.size());
  frames = n > kFrame ? (n - kFrame + kHop - 1) / kHop : 0;
  std::vector<double> env(size_t(kBands) * frames);
  RealFft fft(kFft);
  std::vector<float> buf(kFft, 0.0f);
  std::vector<std::complex<float>> spec(kBins);
  std::array<double, kBins> power{};
  for (int64_t t = 0; t < frames; ++t) {
    for (int i = 0; i < kFrame; ++i) buf[i] = float(w[i] * x[t * kHop + i]);
    fft.forward(buf.data(), spec.data());
    for (int k = 0; k < kBins; ++k) power[k] = std::norm(std::complex<double>(spec[k]));
    for (int b = 0; b < kBands; ++b) {
      double s = 0;
      for (int k = bands.lo[b]; k < bands.hi[b]; ++k) s += power[k];
      env[size_t(b) * frames + t] = std::sqrt(s);
    }
  }
  return env;
}

}  // namespace

double stoi(std::span<const float> clean, std::span<const float> processed, int sample_rate) {
  check_pair("STOI", clean, processed);
  if (sample_rate <= 0) throw Error("STOI: invalid sample rate " + std::to_string(sample_rate));
  std::vector<float> xr, yr;
  std::span<const float> xf = clean, yf = processed;
  if (sample_rate != kStoiRate) {
    xr = resample(clean, sample_rate, kStoiRate);
    yr = resample(processed, sample_rate, kStoiRate);
    xf = xr, yf = yr;
  }
  const std::vector<double> x(xf.begin(), xf.end()), y(yf.begin(), yf.end());
  std::vector<double> xs, ys;
  remove_silent_frames(x, y, xs, ys);

  const BandMap bands = third_octave_bands();
  int64_t frames = 0;
  const std::vector<double> xe = band_envelopes(xs, bands, frames);
  const std::vector<double> ye = band_envelopes(ys, bands, frames);
  if (frames < kSegment) return 1e-5;

  const double clip = 1.0 + std::pow(10.0, -kBetaDb / 20.0);
  const int64_t segments = frames - kSegment + 1;
  double total = 0;
  std::array<double, kSegment> a{}, b{};
  for (int64_t m = 0; m < segments; ++m) {
    for (int band = 0; band < kBands; ++band) {
      const double* xv = &xe[size_t(band) * frames + m];
      const double* yv = &ye[size_t(band) * frames + m];
      double nx = 0, ny = 0;
      for (int i = 0; i < kSegment; ++i) nx += xv[i] * xv[i], ny += yv[i] * yv[i];
      const double scale = std::sqrt(nx) / (std::sqrt(ny) + kEps);
      double ma = 0, mb = 0;
      for (int i = 0; i < kSegment; ++i) {
        a[i] = xv[i];
        b[i] = std::min(yv[i] * scale, xv[i] * clip);
        ma += a[i], mb += b[i];
      }
      ma /= kSegment, mb /= kSegment;
      double na = 0, nb = 0, dot = 0;
      for (int i = 0; i < kSegment; ++i) {
        a[i] -= ma, b[i] -= mb;
        na += a[i] * a[i], nb += b[i] * b[i];
      }
      na = std::sqrt(na) + kEps, nb = std::sqrt(nb) + kEps;
      for (int i = 0; i < kSegment; ++i) dot += (a[i] / na) * (b[i] / nb);
      total += dot;
    }
  }
  return total / double(kBands * segments);
}

}  // namespace wavtok
