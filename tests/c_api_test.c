/* Compiled as plain C: the public header must be valid C. Drives a full stream through the C API. */
#include <stdio.h>
#include <stdlib.h>

#include "codec/wavtok.h"

int wavtok_c_api_roundtrip(const char* model_path, const float* pcm, size_t n, int32_t* codes, size_t max_frames,
                           float* out, size_t max_out, size_t* frames_out, size_t* samples_out) {
  wavtok_model* m = wavtok_model_load(model_path, NULL);
  if (!m) return -1;
  wavtok_stream_params p = wavtok_stream_default_params();
  wavtok_encoder* e = wavtok_encoder_create(m, &p);
  wavtok_decoder* d = wavtok_decoder_create(m, &p);
  wavtok_model_free(m); /* sessions keep their own reference */
  if (!e || !d) return -1;
  size_t frames = 0, samples = 0, i;
  for (i = 0; i < n; i += 480) {
    size_t k = n - i < 480 ? n - i : 480;
    if (wavtok_encoder_push(e, pcm + i, k) < 0) return -1;
    frames += (size_t)wavtok_encoder_read(e, codes + frames, max_frames - frames);
  }
  if (wavtok_encoder_flush(e) < 0) return -1;
  frames += (size_t)wavtok_encoder_read(e, codes + frames, max_frames - frames);
  if (wavtok_decoder_push(d, codes, frames, 1) < 0) return -1;
  if (wavtok_decoder_flush(d) < 0) return -1;
  samples = (size_t)wavtok_decoder_read(d, out, max_out);
  wavtok_encoder_free(e);
  wavtok_decoder_free(d);
  *frames_out = frames;
  *samples_out = samples;
  return 0;
}
