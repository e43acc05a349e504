#include "dsp/stream_resampler.h"

#include <string>

#include <soxr.h>

#include "core/error.h"
#include "dsp/audio_io.h"

namespace wavtok {

struct StreamResampler::Soxr {
  soxr_t h = nullptr;
  ~Soxr() {
    if (h) soxr_delete(h);
  }
  // soxr_process: input n (NULL, 0 to flush) -> appends everything soxr has ready to `out`.
  size_t run(const float* x, size_t n, std::vector<float>& out, double ratio) {
    const size_t at = out.size();
    size_t fed = 0;
    while (true) {
      // Room for this input's share plus the filter's held-back tail; repeated until soxr stops filling it.
      const size_t room = size_t(double(n - fed) * ratio) + 1024;
      const size_t base = out.size();
      out.resize(base + room);
      size_t idone = 0, odone = 0;
      const soxr_error_t err =
          soxr_process(h, x ? x + fed : nullptr, x ? n - fed : 0, &idone, out.data() + base, room, &odone);
      out.resize(base + odone);
      if (err) throw Error(std::string("resampler: ") + err);
      fed += idone;
      if (fed >= n && odone < room) break;
    }
    return out.size() - at;
  }
};

StreamResampler::StreamResampler(int from, int to) : from_(from), to_(to) {
  if (from <= 0 || to <= 0 || from > kMaxSampleRate || to > kMaxSampleRate)
    throw Error("resampler: sample rates must be in 1.." + std::to_string(kMaxSampleRate) + " Hz, got " +
                std::to_string(from) + " -> " + std::to_string(to));
  if (from == to) return;
  s_ = std::make_unique<Soxr>();
  const soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
  const soxr_quality_spec_t q = soxr_quality_spec(SOXR_HQ, 0);  // as `resample`
  soxr_error_t err = nullptr;
  s_->h = soxr_create(from, to, 1, &err, &io, &q, nullptr);
  if (err || !s_->h) throw Error(std::string("resampler: ") + (err ? err : "cannot create"));
}

StreamResampler::~StreamResampler() = default;
StreamResampler::StreamResampler(StreamResampler&&) noexcept = default;
StreamResampler& StreamResampler::operator=(StreamResampler&&) noexcept = default;

size_t StreamResampler::push(const float* x, size_t n, std::vector<float>& out) {
  if (n == 0) return 0;
  if (!x) throw Error("resampler: no samples given");
  if (!s_) {
    out.insert(out.end(), x, x + n);
    return n;
  }
  return s_->run(x, n, out, double(to_) / from_);
}

size_t StreamResampler::flush(std::vector<float>& out) {
  if (!s_) return 0;
  const size_t n = s_->run(nullptr, 0, out, double(to_) / from_);
  soxr_clear(s_->h);  // a new stream: the same rates and quality, no history
  return n;
}

double StreamResampler::delay_ms() const { return s_ ? 1000.0 * soxr_delay(s_->h) / to_ : 0.0; }

}  // namespace wavtok
