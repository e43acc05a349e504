/* wavtok C API: load a codec model, then stream PCM to tokens and tokens to PCM.
 *
 * Plain C (C99), usable through any FFI. Every object is an opaque handle made by a create or load call and
 * released by the matching free call; the caller owns every handle it gets and frees it exactly once.
 * A model may be shared by any number of encoders/decoders on any threads; each encoder/decoder must be used
 * by one thread at a time. Functions returning int return 0 on success and -1 on error; then
 * wavtok_last_error() describes the error (a thread-local string owned by the library, valid until the next
 * call on the same thread). Output buffers are owned by the caller.
 */
#ifndef WAVTOK_H
#define WAVTOK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wavtok_model wavtok_model;
typedef struct wavtok_encoder wavtok_encoder;
typedef struct wavtok_decoder wavtok_decoder;

/* Session settings. Encoding streams exactly for every model (codes equal one-shot encoding; only n_q is used).
 * Decoding streams exactly for EnCodec-format models; WavTokenizer decodes windows of left + block + lookahead
 * frames and keeps the block (latency: block + lookahead frames; see docs/STREAMING.md). */
typedef struct wavtok_stream_params {
  int block_frames;     /* frames emitted per window run */
  int left_frames;      /* past context per window */
  int lookahead_frames; /* future context per window (latency) */
  int n_q;              /* codebooks (0: all the model has) */
  int bandwidth_id;     /* WavTokenizer AdaLayerNorm id used when decoding */
  int crossfade_frames; /* windowed decoding: cross-fade length at block seams */
} wavtok_stream_params;

/* Defaults (the "default" preset). */
wavtok_stream_params wavtok_stream_default_params(void);
/* A named preset ("low-latency", "default", "high-fidelity", "realtime") or a YAML file with the fields above
 * (configs/streaming/). Returns 0, or -1 with *out untouched. "realtime" (one-frame blocks) is meant for causal
 * models (docs/STREAMING.md); these fields cannot carry its check, so with a model that looks ahead the sessions
 * decode one-frame windows without context instead of refusing: pick a causal model for it. */
int wavtok_stream_preset(const char* name_or_path, wavtok_stream_params* out);

const char* wavtok_last_error(void);
/* The library's version, "MAJOR.MINOR.PATCH" (a static string). */
const char* wavtok_version(void);

/* Threads (OpenMP) the layers use for the calls the calling thread makes from now on. OpenMP keeps this setting
 * per thread, so a program running sessions on several threads calls it on each of them (1 thread per session
 * thread avoids oversubscribing the cores). Without it, OpenMP's default (OMP_NUM_THREADS, else every core).
 * Returns 0, or -1 for n < 1. */
int wavtok_set_num_threads(int n);
/* Arithmetic of the matrix layers for every model of the process: "f32" (the default), "bf16" (bfloat16 inputs,
 * float32 accumulation: faster on CPUs with AVX512-BF16 or AMX; tokens agree with f32 on about 98-100% of
 * frames) or "f64" (the encoder's convolutions accumulate in float64, the rest as f32: a residual VQ's deep
 * levels closest to upstream's codes, at a slower encode). Returns 0, or -1 with the precision unchanged (an unknown name, or "bf16" on a CPU without native
 * bf16). Set it before sessions run, not while they do. */
int wavtok_set_precision(const char* name);

/* Loads a .wtk model file or a PyTorch checkpoint (config.yaml beside it, or config_path). NULL on error.
 * path == NULL loads the default model built into the library. */
wavtok_model* wavtok_model_load(const char* path, const char* config_path);
void wavtok_model_free(wavtok_model* model);
int wavtok_model_sample_rate(const wavtok_model* model);
int wavtok_model_hop(const wavtok_model* model); /* samples per frame */
int wavtok_model_n_q(const wavtok_model* model); /* codebooks the model has */
int wavtok_model_codebook_size(const wavtok_model* model);
/* 1 when the model streams exactly (EnCodec-format, causal): codes and audio equal one-shot processing and
 * the window parameters are unused; 0 for windowed recomputation (WavTokenizer); -1 for NULL. */
int wavtok_model_streams_exactly(const wavtok_model* model);
/* The model's fingerprint (its config and codebooks; .wtt token files carry the fingerprint of the model that made
 * them), and the fingerprint of the model it was adapted from by `wavtok adapt` (0 for none). 0 for NULL. */
uint64_t wavtok_model_fingerprint(const wavtok_model* model);
uint64_t wavtok_model_parent_fingerprint(const wavtok_model* model);
/* Before decoding stored tokens: may tokens made by the model with fingerprint `fingerprint` (whose parent is
 * `parent_fingerprint`, 0 for none) be decoded by `model`? Returns 0 for the same model; 1 for its parent or its
 * child (an adapted codebook keeps each code's meaning: decodable, and wavtok_last_error() then holds a warning
 * naming both fingerprints, to show the user); -1 for any other model (refused, the reason in wavtok_last_error())
 * or NULL. The sessions themselves take bare codes and check nothing. */
int wavtok_model_check_tokens(const wavtok_model* model, uint64_t fingerprint, uint64_t parent_fingerprint);

/* Optional, once per model and set of parameters, before live streams start: runs throwaway sessions over a
 * synthetic signal pushed in chunks of chunk_samples, so that the model's layers create the oneDNN primitives
 * such streams use (shared by all sessions of the model) and the first chunks of real streams run at warm speed.
 * params NULL: the defaults. Returns the number of shapes created (>= 0), -1 on error. */
int64_t wavtok_stream_warm_up(const wavtok_model* model, const wavtok_stream_params* params, size_t chunk_samples);

/* Encoder: PCM (float, mono, the model's rate unless wavtok_encoder_set_input_rate says otherwise) in, codes out. The
 * encoder keeps its own reference to the model, so the model handle may be freed before the encoder. */
wavtok_encoder* wavtok_encoder_create(const wavtok_model* model, const wavtok_stream_params* params);
void wavtok_encoder_free(wavtok_encoder* enc);
/* Feeds n samples. Returns the number of new frames that are ready (>= 0), -1 on error. A chunk holding NaN or
 * Inf is refused (-1, the sample's index in wavtok_last_error()) and leaves the stream as it was. */
int64_t wavtok_encoder_push(wavtok_encoder* enc, const float* pcm, size_t n);
/* Ends the stream; remaining frames become ready. Returns their number, -1 on error. */
int64_t wavtok_encoder_flush(wavtok_encoder* enc);
/* Copies up to max_frames ready frames (n_q codes each, frame-major) into codes; returns frames copied
 * (frames not read stay queued for the next read). */
int64_t wavtok_encoder_read(wavtok_encoder* enc, int32_t* codes, size_t max_frames);
int wavtok_encoder_n_q(const wavtok_encoder* enc); /* codes per frame; -1 for NULL */
/* Optional, before a stream's first push (a new encoder, or one just flushed): the sample rate of the PCM this
 * encoder will be given (1..768000 Hz). PCM at another rate than the model's is resampled as it streams (libsoxr,
 * the quality `wavtok encode` resamples files with; it holds back about 30 ms of audio at 48 kHz, which adds to
 * the latency). Returns 0, or -1 (a bad rate, or a stream under way). */
int wavtok_encoder_set_input_rate(wavtok_encoder* enc, int rate);

/* Decoder: codes in (frame-major, n_q per frame, n_q <= the model's), PCM out (hop samples per frame at the model's
 * rate, or resampled to the rate set with wavtok_decoder_set_output_rate). */
wavtok_decoder* wavtok_decoder_create(const wavtok_model* model, const wavtok_stream_params* params);
void wavtok_decoder_free(wavtok_decoder* dec);
/* Feeds frames of codes. Returns the number of new samples that are ready (>= 0), -1 on error. A push with a
 * code outside the codebook or more codebooks than the model has is refused and leaves the stream as it was.
 * n_q may change between pushes (an EnCodec-format stream may switch bitrate). */
int64_t wavtok_decoder_push(wavtok_decoder* dec, const int32_t* codes, size_t frames, int n_q);
/* Ends the stream; the remaining samples become ready. Returns their number, -1 on error. */
int64_t wavtok_decoder_flush(wavtok_decoder* dec);
/* Optional, before a stream's first push: the sample rate of the PCM this decoder gives out (1..768000 Hz; default
 * the model's), resampled as it streams like the encoder's input. Push and flush then count output samples.
 * Returns 0, or -1. */
int wavtok_decoder_set_output_rate(wavtok_decoder* dec, int rate);
/* Copies up to max_samples ready samples into pcm; returns samples copied. */
int64_t wavtok_decoder_read(wavtok_decoder* dec, float* pcm, size_t max_samples);

#ifdef __cplusplus
}
#endif

#endif /* WAVTOK_H */
