// Audio file reading and writing (libsndfile) and sample-rate conversion (libsoxr).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace wavtok {

struct Audio {
  int sample_rate = 0;
  std::vector<float> samples;  // mono
  // Samples per channel (frames) that the file's header promises, and how many were really decoded, both at the
  // file's own rate. They differ when the file was cut short (an interrupted download or copy): see truncated().
  int64_t frames_promised = 0;
  int64_t frames_read = 0;
  int file_sample_rate = 0;  // the file's own rate, before any resampling
  bool truncated() const { return frames_read < frames_promised; }
};

struct ReadOptions {
  bool strict = false;  // refuse a truncated file (throw) instead of returning what it holds
};

// Limits a file must respect to be read at all.
inline constexpr int kMaxSampleRate = 768000;
inline constexpr int kMaxChannels = 64;
inline constexpr long long kMaxFrames = 1LL << 31;

// Reads any format libsndfile reads (WAV, FLAC, OGG, ...). Integer PCM is scaled to [-1, 1); float files are kept
// as stored. Channels are averaged to mono, then resampled to target_rate (libsoxr, high quality) unless
// target_rate <= 0 or equal to the file's rate. Throws wavtok::Error naming the file if it cannot be opened or
// decoded, has no frames, more than kMaxFrames frames, a sample rate outside (0, kMaxSampleRate], more than
// kMaxChannels channels, or a NaN/Inf sample.
// A truncated file (the header promises more samples than the file holds) is read as far as it goes and reported
// in Audio::frames_promised / frames_read; with opts.strict it is refused with an Error naming both counts.
// libsndfile quietly shortens the frame count of a cut WAV/AIFF to what the file holds, so for those containers
// (plain PCM, float, A-law, u-law) the data size of the header itself is compared too.
Audio read_audio(const std::string& path, int target_rate, const ReadOptions& opts = {});

// "PATH: truncated: the header promises N samples (per channel), the file holds M (K missing, S s)", for warnings
// and errors about a truncated Audio. Empty when a is not truncated.
std::string truncation_message(const std::string& path, const Audio& a);

// Writes mono audio; the container comes from the extension (case-insensitive): .wav = 32-bit float WAV,
// .flac = 24-bit FLAC (samples outside [-1, 1] are clipped), .ogg = Ogg Vorbis. Anything else throws.
// The data go to a temporary file next to `path`, which is renamed over `path` only once complete, so a failure
// leaves neither a partial file nor the temporary. If protect is not empty and names the same file as path
// (see same_file), nothing is written and wavtok::Error is thrown. NaN/Inf samples are refused.
void write_audio(const std::string& path, std::span<const float> samples, int sample_rate,
                 const std::string& protect = {});

// True if both paths exist and are the same file (same device and inode, following symlinks).
bool same_file(const std::string& a, const std::string& b);

// Band-limited sample-rate conversion with libsoxr (high quality, linear phase, delay compensated). The output
// has round(x.size() * to / from) samples. Throws wavtok::Error for rates <= 0.
std::vector<float> resample(std::span<const float> x, int from, int to);

// The two steps read_audio applies after decoding a file, for audio that is already in memory (the Python
// package). append_mono appends the average of `channels` channels of `frames` frames to `out` (summed in double);
// sample (frame i, channel c) is data[i * frame_stride + c * channel_stride], so interleaved and planar buffers
// both work. A NaN/Inf throws wavtok::Error "<what>: contains NaN/Inf at sample N (channel c)", counting frames
// from first_frame; `out` then holds the frames before it.
void append_mono(const float* data, long long frames, int channels, long long frame_stride, long long channel_stride,
                 std::vector<float>& out, const std::string& what, long long first_frame = 0);
// Resamples mono audio from `from` to `to` Hz in place (nothing when equal or to <= 0) and refuses the Inf the
// filter can make of values near FLT_MAX, naming `what`.
void resample_to(std::vector<float>& samples, int from, int to, const std::string& what);

}  // namespace wavtok
