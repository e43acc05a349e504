#include "dsp/audio_io.h"

#include <fcntl.h>
#include <sndfile.h>
#include <soxr.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cmath>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "core/error.h"

namespace wavtok {

namespace {

struct SndfileCloser {
  void operator()(SNDFILE* f) const { sf_close(f); }
};
using SndfilePtr = std::unique_ptr<SNDFILE, SndfileCloser>;

std::string extension_of(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  const size_t dot = path.find_last_of('.');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return {};
  std::string ext = path.substr(dot + 1);
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ext;
}

}  // namespace

Audio read_audio(const std::string& path, int target_rate) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) throw Error(path + ": is a directory, not audio");
  SF_INFO info{};
  SndfilePtr file(sf_open(path.c_str(), SFM_READ, &info));
  if (!file) throw Error(path + ": cannot read as audio: " + sf_strerror(nullptr));
  if (info.samplerate <= 0 || info.samplerate > kMaxSampleRate)
    throw Error(path + ": unsupported sample rate " + std::to_string(info.samplerate));
  if (info.channels <= 0 || info.channels > kMaxChannels)
    throw Error(path + ": unsupported channel count " + std::to_string(info.channels) + " (at most " +
                std::to_string(kMaxChannels) + ")");
  if (info.frames <= 0) throw Error(path + ": contains no audio frames");
  if (info.frames > kMaxFrames)
    throw Error(path + ": claims " + std::to_string(info.frames) + " frames, more than the limit of " +
                std::to_string(kMaxFrames));

  const int ch = info.channels;
  Audio out;
  out.sample_rate = info.samplerate;
  // The header's frame count is only a claim (a 100-byte FLAC header may announce 2^31 frames): reserve no more
  // than the file's size in samples, and let the vector grow with what is really decoded.
  out.samples.reserve(static_cast<size_t>(std::min<long long>(info.frames, static_cast<long long>(st.st_size))));
  // Chunked reads: the header's frame count bounds the total, but memory grows only with what is really decoded.
  constexpr sf_count_t kChunk = 1 << 15;
  std::vector<float> buf(static_cast<size_t>(kChunk) * ch);
  sf_count_t total = 0;
  while (total < info.frames) {
    const sf_count_t want = std::min(kChunk, info.frames - total);
    const sf_count_t got = sf_readf_float(file.get(), buf.data(), want);
    if (got <= 0) break;
    append_mono(buf.data(), got, ch, ch, 1, out.samples, path, total);
    total += got;
  }
  if (sf_error(file.get()) != SF_ERR_NO_ERROR)
    throw Error(path + ": decoding failed: " + sf_strerror(file.get()));
  if (out.samples.empty()) throw Error(path + ": contains no audio frames");

  resample_to(out.samples, out.sample_rate, target_rate, path);
  if (target_rate > 0) out.sample_rate = target_rate;
  return out;
}

void append_mono(const float* data, long long frames, int channels, long long frame_stride, long long channel_stride,
                 std::vector<float>& out, const std::string& what, long long first_frame) {
  for (long long i = 0; i < frames; ++i) {
    double sum = 0;
    for (int c = 0; c < channels; ++c) {
      const float v = data[i * frame_stride + c * channel_stride];
      if (!std::isfinite(v))
        throw Error(what + ": contains NaN/Inf at sample " + std::to_string(first_frame + i) +
                    (channels > 1 ? " (channel " + std::to_string(c) + ")" : ""));
      sum += v;
    }
    out.push_back(static_cast<float>(sum / channels));
  }
}

void resample_to(std::vector<float>& samples, int from, int to, const std::string& what) {
  if (to <= 0 || to == from) return;
  samples = resample(samples, from, to);
  // Float input may hold finite values near FLT_MAX, which the resampling filter can overflow to Inf.
  for (size_t i = 0; i < samples.size(); ++i)
    if (!std::isfinite(samples[i]))
      throw Error(what + ": sample values too large: resampling to " + std::to_string(to) +
                  " Hz overflows (Inf at output sample " + std::to_string(i) + ")");
}

bool same_file(const std::string& a, const std::string& b) {
  struct stat sa {}, sb {};
  if (::stat(a.c_str(), &sa) != 0 || ::stat(b.c_str(), &sb) != 0) return false;
  return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

void write_audio(const std::string& path, std::span<const float> samples, int sample_rate,
                 const std::string& protect) {
  if (!protect.empty() && same_file(path, protect))
    throw Error(path + ": refusing to overwrite the input file " + protect);
  if (sample_rate <= 0 || sample_rate > kMaxSampleRate)
    throw Error(path + ": cannot write sample rate " + std::to_string(sample_rate));
  for (size_t i = 0; i < samples.size(); ++i)
    if (!std::isfinite(samples[i]))
      throw Error(path + ": refusing to write NaN/Inf (at sample " + std::to_string(i) + ")");

  SF_INFO info{};
  info.samplerate = sample_rate;
  info.channels = 1;
  const std::string ext = extension_of(path);
  if (ext == "wav") {
    info.format = SF_FORMAT_WAV | SF_FORMAT_FLOAT;
  } else if (ext == "flac") {
    info.format = SF_FORMAT_FLAC | SF_FORMAT_PCM_24;
  } else if (ext == "ogg") {
    info.format = SF_FORMAT_OGG | SF_FORMAT_VORBIS;
  } else {
    throw Error(path + ": unknown audio file extension '" + ext + "' (use .wav, .flac or .ogg)");
  }
  if (!sf_format_check(&info)) throw Error(path + ": libsndfile cannot write this format");

  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) throw Error(path + ": is a directory");

  // Unique temporary beside the target, so the final rename stays on one file system and is atomic.
  static std::atomic<unsigned> counter{0};
  std::string tmp;
  for (int attempt = 0;; ++attempt) {
    tmp = path + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd >= 0) {
      ::close(fd);
      break;
    }
    if (errno != EEXIST || attempt > 100)
      throw Error(path + ": cannot create a file there: " + std::string(std::strerror(errno)));
  }
  struct TmpGuard {
    const std::string& name;
    bool keep = false;
    ~TmpGuard() {
      if (!keep) ::unlink(name.c_str());
    }
  } guard{tmp};

  {
    SndfilePtr file(sf_open(tmp.c_str(), SFM_WRITE, &info));
    if (!file) throw Error(path + ": cannot open for writing: " + sf_strerror(nullptr));
    sf_command(file.get(), SFC_SET_CLIPPING, nullptr, SF_TRUE);  // integer formats saturate instead of wrapping
    const auto n = static_cast<sf_count_t>(samples.size());
    if (n > 0 && sf_writef_float(file.get(), samples.data(), n) != n)
      throw Error(path + ": write failed: " + sf_strerror(file.get()));
    if (sf_close(file.release()) != 0) throw Error(path + ": write failed while closing");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    throw Error(path + ": cannot move the finished file into place: " + std::string(std::strerror(errno)));
  guard.keep = true;
}

std::vector<float> resample(std::span<const float> x, int from, int to) {
  if (from <= 0 || to <= 0)
    throw Error("resample: sample rates must be positive, got " + std::to_string(from) + " -> " +
                std::to_string(to));
  if (from == to || x.empty()) return {x.begin(), x.end()};
  const size_t olen = static_cast<size_t>((static_cast<long double>(x.size()) * to) / from + 0.5L);
  std::vector<float> out(olen);
  const soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
  const soxr_quality_spec_t q = soxr_quality_spec(SOXR_HQ, 0);
  size_t odone = 0;
  const soxr_error_t err =
      soxr_oneshot(from, to, 1, x.data(), x.size(), nullptr, out.data(), olen, &odone, &io, &q, nullptr);
  if (err) throw Error("resample " + std::to_string(from) + " -> " + std::to_string(to) + ": " + err);
  out.resize(odone);
  out.resize(olen, 0.0f);  // soxr may stop a sample short at the very end; keep the documented length
  return out;
}

}  // namespace wavtok
