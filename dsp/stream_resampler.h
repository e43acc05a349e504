// Sample-rate conversion of a stream that arrives in chunks (libsoxr): what `resample` (dsp/audio_io.h) does to a
// whole signal, for live input such as a 48 kHz microphone feeding a 24 kHz codec.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

namespace wavtok {

class StreamResampler {
 public:
  // Mono, `from` Hz -> `to` Hz, the same quality as `resample` (high quality, linear phase). Equal rates pass
  // the samples through. Throws wavtok::Error for rates outside (0, kMaxSampleRate].
  StreamResampler(int from, int to);
  ~StreamResampler();
  StreamResampler(StreamResampler&&) noexcept;
  StreamResampler& operator=(StreamResampler&&) noexcept;

  // Appends the output samples that are ready to `out` and returns how many. The filter holds some back until
  // later input (or flush) covers their support: `delay_ms()` says how much.
  size_t push(const float* x, size_t n, std::vector<float>& out);
  // Ends the stream: appends the rest. The whole stream's output then has about n * to / from samples and equals
  // `resample` of the concatenated input up to rounding. The resampler starts a new stream afterwards.
  size_t flush(std::vector<float>& out);
  // Output the filter currently holds back, in milliseconds (the algorithmic latency it adds).
  double delay_ms() const;
  int from() const { return from_; }
  int to() const { return to_; }

 private:
  struct Soxr;
  int from_, to_;
  std::unique_ptr<Soxr> s_;  // null when the rates are equal
};

}  // namespace wavtok
