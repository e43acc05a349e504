/* A live codec loopback through the C API, in plain C: the smallest complete use of capi/wavtok.h.
 *
 *   build/stream_example [MODEL [PRESET]] < in.f32 > out.f32
 *   arecord -f FLOAT_LE -r 24000 -c 1 | build/stream_example | aplay -f FLOAT_LE -r 24000 -c 1
 *
 * Reads raw mono float32 PCM at the model's rate from stdin in 20 ms chunks, turns each chunk into tokens with a
 * streaming encoder, feeds the tokens to a streaming decoder as soon as they are final, and writes the decoded PCM
 * to stdout as soon as it is ready. MODEL: a .wtk file or a checkpoint (default: the model built into the
 * library); PRESET: low-latency, default (the default), high-fidelity, or a YAML file. Prints the token count and
 * the model's latency figures on stderr. Exit status 0, or 1 with the library's error message.
 * Tested by CliTest.CExampleMatchesTheCliPipes: its output equals `wavtok stream-encode - -o - | wavtok
 * stream-decode - -o -` with the same preset.
 */
#include <stdio.h>
#include <stdlib.h>

#include "capi/wavtok.h"

static int fail(const char* what) {
  fprintf(stderr, "stream_example: %s: %s\n", what, wavtok_last_error());
  return 1;
}

/* Moves every ready frame from the encoder into the decoder, and every ready sample from the decoder to stdout. */
static int drain(wavtok_encoder* enc, wavtok_decoder* dec, int32_t* codes, size_t max_frames, int n_q, float* pcm,
                 size_t max_samples, long long* frames_total) {
  int64_t got;
  while ((got = wavtok_encoder_read(enc, codes, max_frames)) > 0) {
    *frames_total += got;
    if (wavtok_decoder_push(dec, codes, (size_t)got, n_q) < 0) return -1;
  }
  while ((got = wavtok_decoder_read(dec, pcm, max_samples)) > 0)
    if (fwrite(pcm, sizeof(float), (size_t)got, stdout) != (size_t)got) return -1;
  return fflush(stdout);
}

int main(int argc, char** argv) {
  const char* model_path = argc > 1 ? argv[1] : NULL;
  const char* preset = argc > 2 ? argv[2] : "default";
  wavtok_stream_params params;
  wavtok_model* model;
  wavtok_encoder* enc;
  wavtok_decoder* dec;
  float* chunk;
  float* pcm;
  int32_t* codes;
  size_t chunk_samples, n, max_frames = 64, max_samples;
  long long frames = 0;
  int n_q, exact, rc = 1;

  if (argc > 3 || (argc > 1 && argv[1][0] == '-')) {
    fprintf(stderr, "usage: %s [MODEL [PRESET]] < in.f32 > out.f32 (raw mono float32 at the model's rate)\n", argv[0]);
    return 2;
  }
  /* One core for this stream: a live session keeps up on one, and a server running a session per thread would
   * otherwise have every session's layers compete for all cores. */
  if (wavtok_set_num_threads(1) != 0) return fail("threads");
  if (wavtok_stream_preset(preset, &params) != 0) return fail(preset);
  model = wavtok_model_load(model_path, NULL);
  if (!model) return fail(model_path ? model_path : "default model");
  chunk_samples = (size_t)wavtok_model_sample_rate(model) / 50; /* 20 ms */
  max_samples = max_frames * (size_t)wavtok_model_hop(model);
  exact = wavtok_model_streams_exactly(model);
  enc = wavtok_encoder_create(model, &params);
  dec = wavtok_decoder_create(model, &params);
  wavtok_model_free(model); /* the sessions hold their own reference to it */
  n_q = enc ? wavtok_encoder_n_q(enc) : 0;
  chunk = malloc(chunk_samples * sizeof(float));
  pcm = malloc(max_samples * sizeof(float));
  codes = malloc(max_frames * (size_t)(n_q > 0 ? n_q : 1) * sizeof(int32_t));
  if (!enc || !dec || !chunk || !pcm || !codes) {
    fail("create");
    goto done;
  }
  while ((n = fread(chunk, sizeof(float), chunk_samples, stdin)) > 0) {
    if (wavtok_encoder_push(enc, chunk, n) < 0 ||
        drain(enc, dec, codes, max_frames, n_q, pcm, max_samples, &frames) != 0) {
      fail("stream");
      goto done;
    }
  }
  if (wavtok_encoder_flush(enc) < 0 || drain(enc, dec, codes, max_frames, n_q, pcm, max_samples, &frames) != 0 ||
      wavtok_decoder_flush(dec) < 0 || drain(enc, dec, codes, max_frames, n_q, pcm, max_samples, &frames) != 0) {
    fail("end of stream");
    goto done;
  }
  if (exact)
    fprintf(stderr, "stream_example (wavtok %s): %lld frames of %d codebook(s); exact streaming decoder\n",
            wavtok_version(), frames, n_q);
  else
    fprintf(stderr, "stream_example (wavtok %s): %lld frames of %d codebook(s); windowed decoder, latency %d frames\n",
            wavtok_version(), frames, n_q, params.block_frames + params.lookahead_frames);
  rc = 0;
done:
  free(chunk);
  free(pcm);
  free(codes);
  wavtok_encoder_free(enc);
  wavtok_decoder_free(dec);
  return rc;
}
