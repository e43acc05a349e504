"""Music unlike the default model's training data, for `wavtok adapt` (docs/ADAPT.md).

Random songs from midi.py, but every melody, chord and bass part is played by a General MIDI program that the
training data (python/data/make_dataset.py, midi.py's program lists) never uses: celesta, glockenspiel, music box,
tubular bells, harmonica, distortion guitar, pizzicato, choir, synth brass, brass section, bagpipe, shanai, koto,
steel drums, ... Rendered with fluidsynth and the GM soundfont, 24 kHz mono 16-bit, RMS -20 dBFS.

    /usr/bin/python3 python/data/drift_music.py --out out/drift/adapt --clips 24 --seconds 10 --seed 1
    /usr/bin/python3 python/data/drift_music.py --out out/drift/eval --clips 8 --seconds 10 --seed 2
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
from scipy.io import wavfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import midi  # noqa: E402

SR = 24000
SOUNDFONTS = ["/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/default-GM.sf2"]


# Programs the training songs never play (midi.py's lists hold the ones they do), by role.
MELODY = [8, 9, 10, 12, 14, 15, 22, 23, 30, 31, 44, 45, 47, 53, 55, 59, 62, 63, 67, 69, 72, 76, 77, 78, 83, 84,
          85, 86, 106, 107, 109, 110, 111]
CHORDS = [3, 7, 18, 20, 28, 30, 45, 51, 53, 54, 62, 92, 93, 95, 96, 99, 100, 101]
BASS = [37, 63, 87]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output folder (created)")
    ap.add_argument("--clips", type=int, default=24)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    for group, used in (("melody", midi.MELODY_PROGRAMS), ("chords", midi.CHORD_PROGRAMS), ("bass", midi.BASS_PROGRAMS)):
        mine = {"melody": MELODY, "chords": CHORDS, "bass": BASS}[group]
        clash = set(mine) & set(midi.MELODY_PROGRAMS + midi.CHORD_PROGRAMS + midi.BASS_PROGRAMS)
        if clash:
            sys.exit(f"drift_music: {group} programs {sorted(clash)} are used by the training data")
    sf = next((p for p in SOUNDFONTS if os.path.exists(p)), None)
    if sf is None or shutil.which("fluidsynth") is None:
        sys.exit("drift_music: needs fluidsynth and fluid-soundfont-gm (apt-get install fluidsynth fluid-soundfont-gm)")
    os.makedirs(a.out, exist_ok=True)
    progs = {"melody": MELODY, "chords": CHORDS, "bass": BASS}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(a.clips):
            rng = np.random.default_rng([a.seed, i])
            tracks, desc = midi.random_song(rng, a.seconds + 1.0, programs=progs)
            m, w = os.path.join(tmp, "s.mid"), os.path.join(tmp, "s.wav")
            midi.write_midi(m, tracks)
            subprocess.run(["fluidsynth", "-ni", "-q", "-g", "0.6", "-r", str(SR), "-F", w, sf, m], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            rate, x = wavfile.read(w)
            if rate != SR:
                sys.exit(f"drift_music: fluidsynth wrote {rate} Hz")
            x = x.astype(np.float64)
            if x.ndim == 2:
                x = x.mean(axis=1)
            x = x[int(0.2 * SR):int(0.2 * SR) + int(a.seconds * SR)] / 32768.0
            rms = np.sqrt(np.mean(x ** 2))
            if rms < 1e-5:
                print(f"clip {i}: silent, skipped", file=sys.stderr)
                continue
            x *= 10 ** (-20 / 20) / rms
            peak = np.max(np.abs(x))
            if peak > 0.97:
                x *= 0.97 / peak
            out = os.path.join(a.out, f"drift_{a.seed}_{i:03d}.wav")
            wavfile.write(out, SR, np.round(x * 32767).astype(np.int16))
            print(out, desc["parts"], file=sys.stderr)


if __name__ == "__main__":
    main()
