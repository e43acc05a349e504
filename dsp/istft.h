// Inverse STFT with "same" padding, as WavTokenizer's / Vocos' ISTFT head computes it:
//   frame t:   irfft(X_t, n_fft) (1/n_fft scaling) times the periodic Hann window (torch.hann_window default)
//   overlap-add at t * hop over a buffer of (T - 1) * hop + n_fft samples
//   trim pad = (n_fft - hop) / 2 (integer division) samples from both ends
//   divide by the overlap-added squared window over the same span.
// Output length: (T - 1) * hop + n_fft - 2 * pad, which is T * hop when n_fft - hop is even (T * hop + 1 if odd).
// The imaginary parts of the DC and Nyquist bins are ignored, as torch.fft.irfft does.
#pragma once

#include <complex>
#include <cstdint>
#include <vector>

#include "dsp/real_fft.h"

namespace wavtok {

// Streaming form. Frames go in one or many at a time; samples come out as soon as no later frame can change them.
// Output position i (after the leading trim) is final once frames 0..t with (t + 1) * hop > i + pad are in, so:
//   after n frames in total, max(0, n * hop - pad) samples have been emitted by push();
//   finish() emits the rest, output_length(n) minus that: n_fft - hop - pad samples (pad if n_fft - hop is even)
//   once n * hop >= pad, all output_length(n) samples for shorter streams. Their envelope depends on where the
//   stream ends, which is why they wait for finish().
// The concatenation of every push() output and finish() equals Istft::inverse() on all frames bit for bit:
// the leading and trailing pad samples that inverse() trims are trimmed here too, nothing else is dropped.
// The latency is therefore pad samples (480 = 20 ms for n_fft 1280, hop 320 at 24 kHz) plus one frame.
class IstftStream {
 public:
  IstftStream(int n_fft, int hop);  // n_fft even, 0 < hop <= n_fft; throws wavtok::Error otherwise

  int n_fft() const { return n_fft_; }
  int hop() const { return hop_; }
  int bins() const { return n_fft_ / 2 + 1; }
  int pad() const { return pad_; }
  // Samples the whole stream yields for `frames` frames (0 for 0 frames).
  int64_t output_length(int64_t frames) const;
  // The most samples finish() can write.
  int tail_length() const { return n_fft_ - hop_ - pad_; }

  // re/im: frames x bins, row-major. Writes at most frames * hop samples to out; returns how many.
  int64_t push(const float* re, const float* im, int64_t frames, float* out);
  // Ends the stream: writes the last tail_length() samples (none if no frame was pushed), returns how many,
  // and resets so a new stream can start.
  int64_t finish(float* out);
  void reset();
  int64_t frames_pushed() const { return frames_; }

 private:
  // Squared-window overlap-add sum at untrimmed position p for a stream of `frames` frames (frames < 0: unbounded).
  double envelope_at(int64_t p, int64_t frames) const;

  int n_fft_, hop_, pad_;
  RealFft fft_;
  std::vector<float> window_;      // periodic Hann scaled by 1/n_fft (folds irfft's normalisation in)
  std::vector<float> head_env_;    // envelope for buffer positions [0, n_fft - hop): fewer frames overlap there
  std::vector<float> steady_env_;  // envelope for later positions, periodic in hop
  std::vector<float> tail_env_;    // envelope for the last n_fft - hop positions, when frames >= n_fft / hop + 1
  std::vector<std::complex<float>> spec_;
  std::vector<float> frame_;
  std::vector<float> acc_;  // overlap-add accumulator: acc_[k] is untrimmed position frames_ * hop + k
  int64_t frames_ = 0;
};

// One-shot inverse STFT; plans, window and envelopes are made once in the constructor.
class Istft {
 public:
  Istft(int n_fft, int hop) : stream_(n_fft, hop) {}

  int n_fft() const { return stream_.n_fft(); }
  int hop() const { return stream_.hop(); }
  int bins() const { return stream_.bins(); }
  int64_t output_length(int64_t frames) const { return stream_.output_length(frames); }

  // re/im: frames x bins row-major; writes output_length(frames) samples to out. Not thread-safe (scratch state).
  void inverse(const float* re, const float* im, int64_t frames, float* out);

 private:
  IstftStream stream_;
};

// The ISTFT head's last step: magnitude = min(exp(log_mag), 100) (clipped after exp, as upstream), then
// re = magnitude * cos(phase), im = magnitude * sin(phase). Elementwise, so any layout works; NaN propagates.
void magphase_to_complex(const float* log_mag, const float* phase, int64_t count, float* re, float* im);

}  // namespace wavtok
