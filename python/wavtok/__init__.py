"""wavtok: neural audio codec tokenizer (WavTokenizer, EnCodec-style RVQ) on CPU, from Python.

Quick start::

    import numpy as np, wavtok

    model = wavtok.Model()                      # the built-in default model (24 kHz, 75 tokens/s)
    audio = np.random.default_rng(0).standard_normal(48000).astype(np.float32) * 0.1
    codes = model.encode(audio, 48000)         # any rate, mono or (channels, samples): int64 (n_q, frames)
    out = model.decode(codes)                  # float32 audio at model.sample_rate

    enc = wavtok.Encoder(model, sample_rate=48000)  # streaming: push audio, get the codes that are final
    parts = [enc.push(chunk) for chunk in np.array_split(audio, 10)] + [enc.flush()]

Model(path) loads a .wtk file or a released checkpoint (WavTokenizer .ckpt + config.yaml, EnCodec .th).
Errors raise wavtok.Error (a RuntimeError) with the engine's message; bad arguments raise wavtok.InputError,
which is also a ValueError. The GIL is released while the engine computes, so Python threads run in parallel.
"""
import pkgutil as _pkgutil

# When this directory is the source tree's python/wavtok (e.g. a script run from python/), the compiled module
# lives in the installed copy or the build tree: look for it in every `wavtok` folder on sys.path.
__path__ = _pkgutil.extend_path(__path__, __name__)

try:
    from ._wavtok import (  # noqa: F401
        Decoder,
        Encoder,
        Error,
        InputError,
        Model,
        __version__,
        bf16_supported,
        get_precision,
        set_precision,
    )
except ImportError as _e:  # pragma: no cover - depends on the installation
    raise ImportError(
        "wavtok: the compiled module wavtok._wavtok is missing ({}); build it (bash scripts/build.sh, then "
        "PYTHONPATH=build/python) or install the package (bash scripts/install_python.sh)".format(_e)
    ) from _e

for _cls in (Model, Encoder, Decoder):
    _cls.__module__ = __name__  # wavtok.Model rather than wavtok._wavtok.Model in reprs and help()

__all__ = [
    "Model",
    "Encoder",
    "Decoder",
    "Error",
    "InputError",
    "set_precision",
    "get_precision",
    "bf16_supported",
    "__version__",
]
