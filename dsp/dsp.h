// dsp/: signal processing (FFT, STFT/iSTFT, mel, resampling, audio files, quality metrics). The library's public
// header.
#pragma once

#include "dsp/audio_io.h"
#include "dsp/istft.h"
#include "dsp/mel.h"
#include "dsp/metrics.h"
#include "dsp/real_fft.h"
#include "dsp/stft.h"
#include "dsp/stream_resampler.h"
