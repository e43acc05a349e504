#include "dsp/audio_io.h"

#include <fcntl.h>
#include <sndfile.h>
#include <soxr.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>

#include "core/error.h"

namespace wavtok {

namespace {

struct SndfileCloser {
  void operator()(SNDFILE* f) const { sf_close(f); }
};
using SndfilePtr = std::unique_ptr<SNDFILE, SndfileCloser>;

// libsndfile keeps the error of a failed sf_open in one process-wide variable, so with files opened on several
// threads (wavtok batch) sf_strerror(nullptr) could report another thread's outcome ("No Error." for a corrupt
// file). Opening and reading that error under one lock keeps each message with its file.
SndfilePtr open_sndfile(const std::string& path, int mode, SF_INFO* info, std::string& why) {
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  SndfilePtr f(sf_open(path.c_str(), mode, info));
  if (!f) why = sf_strerror(nullptr);
  return f;
}

std::string extension_of(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  const size_t dot = path.find_last_of('.');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return {};
  std::string ext = path.substr(dot + 1);
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ext;
}

// Bytes per sample of the uncompressed encodings whose frame count follows from the data size; 0 for others.
int bytes_per_sample(int format) {
  switch (format & SF_FORMAT_SUBMASK) {
    case SF_FORMAT_PCM_S8:
    case SF_FORMAT_PCM_U8:
    case SF_FORMAT_ULAW:
    case SF_FORMAT_ALAW:
      return 1;
    case SF_FORMAT_PCM_16:
      return 2;
    case SF_FORMAT_PCM_24:
      return 3;
    case SF_FORMAT_PCM_32:
    case SF_FORMAT_FLOAT:
      return 4;
    case SF_FORMAT_DOUBLE:
      return 8;
    default:
      return 0;
  }
}

uint64_t le(const unsigned char* p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
uint64_t be(const unsigned char* p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; ++i) v = (v << 8) | p[i];
  return v;
}

// The frame count that a WAV/RF64/AIFF header itself declares (libsndfile clamps its own count to the bytes the
// file holds, hiding a cut). -1 when not one of those containers, not an uncompressed encoding, or the header
// leaves the length open (0 or 0xFFFFFFFF, as streaming writers put there).
int64_t declared_frames(const std::string& path, const SF_INFO& info) {
  const int major = info.format & SF_FORMAT_TYPEMASK;
  const int bps = bytes_per_sample(info.format);
  if (bps == 0 || info.channels <= 0) return -1;
  if (major != SF_FORMAT_WAV && major != SF_FORMAT_WAVEX && major != SF_FORMAT_RF64 && major != SF_FORMAT_AIFF)
    return -1;
  std::ifstream f(path, std::ios::binary);
  unsigned char head[12];
  if (!f.read(reinterpret_cast<char*>(head), 12)) return -1;
  const bool riff = std::memcmp(head, "RIFF", 4) == 0 && std::memcmp(head + 8, "WAVE", 4) == 0;
  const bool rf64 = std::memcmp(head, "RF64", 4) == 0 && std::memcmp(head + 8, "WAVE", 4) == 0;
  const bool aiff = std::memcmp(head, "FORM", 4) == 0 &&
                    (std::memcmp(head + 8, "AIFF", 4) == 0 || std::memcmp(head + 8, "AIFC", 4) == 0);
  if (!riff && !rf64 && !aiff) return -1;
  uint64_t ds64_data = 0;
  for (int chunk = 0; chunk < 4096; ++chunk) {  // bounded walk over the chunk list
    unsigned char ch[8];
    if (!f.read(reinterpret_cast<char*>(ch), 8)) return -1;
    const uint64_t size = aiff ? be(ch + 4, 4) : le(ch + 4, 4);
    const std::streamoff body = f.tellg();
    if (aiff && std::memcmp(ch, "COMM", 4) == 0) {
      unsigned char comm[6];
      if (size < 6 || !f.read(reinterpret_cast<char*>(comm), 6)) return -1;
      const int64_t frames = static_cast<int64_t>(be(comm + 2, 4));
      return frames > 0 ? frames : -1;
    }
    if (rf64 && std::memcmp(ch, "ds64", 4) == 0) {
      unsigned char d[16];
      if (size < 16 || !f.read(reinterpret_cast<char*>(d), 16)) return -1;
      ds64_data = le(d + 8, 8);
    }
    if (!aiff && std::memcmp(ch, "data", 4) == 0) {
      uint64_t bytes = size;
      if (rf64 && size == 0xFFFFFFFFu) bytes = ds64_data;
      if (bytes == 0 || bytes == 0xFFFFFFFFu) return -1;
      return static_cast<int64_t>(bytes / (static_cast<uint64_t>(bps) * info.channels));
    }
    f.seekg(body + static_cast<std::streamoff>(size + (size & 1)));
    if (!f) return -1;
  }
  return -1;
}

}  // namespace

std::string truncation_message(const std::string& path, const Audio& a) {
  if (!a.truncated()) return {};
  const int64_t missing = a.frames_promised - a.frames_read;
  char secs[48] = "";
  if (a.file_sample_rate > 0)
    std::snprintf(secs, sizeof secs, ", %.3f s", static_cast<double>(missing) / a.file_sample_rate);
  return path + ": truncated: the header promises " + std::to_string(a.frames_promised) +
         " samples (per channel), the file holds " + std::to_string(a.frames_read) + " (" + std::to_string(missing) +
         " missing" + secs + ")";
}

Audio read_audio(const std::string& path, int target_rate, const ReadOptions& opts) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) throw Error(path + ": is a directory, not audio");
  SF_INFO info{};
  std::string why;
  SndfilePtr file = open_sndfile(path, SFM_READ, &info, why);
  if (!file) throw Error(path + ": cannot read as audio: " + why);
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
  out.file_sample_rate = info.samplerate;
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
  if (sf_error(file.get()) != SF_ERR_NO_ERROR) throw Error(path + ": decoding failed: " + sf_strerror(file.get()));
  if (out.samples.empty()) throw Error(path + ": contains no audio frames");
  out.frames_read = total;
  out.frames_promised = std::max<int64_t>(info.frames, declared_frames(path, info));
  if (opts.strict && out.truncated()) throw Error(truncation_message(path, out) + "; refused (strict)");

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
  struct stat sa {
  }, sb{};
  if (::stat(a.c_str(), &sa) != 0 || ::stat(b.c_str(), &sb) != 0) return false;
  return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

void write_audio(const std::string& path, std::span<const float> samples, int sample_rate, const std::string& protect) {
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
    std::string why;
    SndfilePtr file = open_sndfile(tmp, SFM_WRITE, &info, why);
    if (!file) throw Error(path + ": cannot open for writing: " + why);
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
    throw Error("resample: sample rates must be positive, got " + std::to_string(from) + " -> " + std::to_string(to));
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
