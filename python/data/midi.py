"""A tiny Standard MIDI File writer and a random song generator (melody, chords, bass, drums).

The songs are rendered to audio with fluidsynth and a General MIDI soundfont by make_dataset.py.
"""
from __future__ import annotations

import struct
from typing import List, Tuple

import numpy as np

TPQ = 480  # ticks per quarter note

# GM programs (0-based) grouped by role
MELODY_PROGRAMS = [0, 1, 4, 6, 11, 13, 16, 19, 21, 24, 25, 26, 40, 41, 42, 56, 57, 60, 64, 65, 66, 68, 71, 73, 74,
                   75, 79, 80, 81, 82, 104, 105, 108]
CHORD_PROGRAMS = [0, 2, 4, 5, 16, 17, 19, 24, 25, 27, 29, 46, 48, 49, 50, 52, 61, 88, 89, 90, 91, 94]
BASS_PROGRAMS = [32, 33, 34, 35, 36, 38, 39, 42, 43, 58, 70]
SCALES = {
    "major": [0, 2, 4, 5, 7, 9, 11],
    "minor": [0, 2, 3, 5, 7, 8, 10],
    "dorian": [0, 2, 3, 5, 7, 9, 10],
    "mixolydian": [0, 2, 4, 5, 7, 9, 10],
    "pentatonic": [0, 2, 4, 7, 9],
    "harmonic_minor": [0, 2, 3, 5, 7, 8, 11],
}


def _varlen(n: int) -> bytes:
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


def _track(events: List[Tuple[int, bytes]]) -> bytes:
    """events: (absolute tick, raw message bytes); sorted stably, note-offs before note-ons at equal ticks."""
    def key(e):
        t, msg = e
        status = msg[0] & 0xF0
        off = status == 0x80 or (status == 0x90 and len(msg) > 2 and msg[2] == 0)
        return (t, 0 if msg[0] == 0xFF else (1 if off else 2))
    body = bytearray()
    last = 0
    for t, msg in sorted(events, key=key):
        body += _varlen(t - last) + msg
        last = t
    body += _varlen(0) + b"\xff\x2f\x00"
    return b"MTrk" + struct.pack(">I", len(body)) + bytes(body)


def write_midi(path: str, tracks: List[List[Tuple[int, bytes]]]):
    data = b"MThd" + struct.pack(">IHHH", 6, 1, len(tracks), TPQ)
    for tr in tracks:
        data += _track(tr)
    with open(path, "wb") as f:
        f.write(data)


def note(events, ch: int, t0: int, dur: int, pitch: int, vel: int):
    pitch = int(min(127, max(0, pitch)))
    vel = int(min(127, max(1, vel)))
    events.append((int(t0), bytes([0x90 | ch, pitch, vel])))
    events.append((int(t0 + max(1, dur)), bytes([0x80 | ch, pitch, 0])))


def random_song(rng: np.random.Generator, seconds: float,
                programs: dict | None = None) -> Tuple[List[List[Tuple[int, bytes]]], dict]:
    """A random multi-track song about `seconds` long. Returns (tracks, description).

    programs: optional {"melody": [...], "chords": [...], "bass": [...]} GM program lists replacing the defaults
    (python/data/drift_music.py renders songs with instruments the training data never uses)."""
    lists = {"melody": MELODY_PROGRAMS, "chords": CHORD_PROGRAMS, "bass": BASS_PROGRAMS}
    if programs:
        lists.update(programs)
    bpm = float(rng.uniform(60, 170))
    us_per_q = int(60e6 / bpm)
    n_beats = int(np.ceil(seconds * bpm / 60.0)) + 1
    root = int(rng.integers(0, 12))
    scale_name = str(rng.choice(list(SCALES)))
    scale = SCALES[scale_name]
    meta = [(0, b"\xff\x51\x03" + us_per_q.to_bytes(3, "big"))]
    tracks = [meta]
    desc = {"bpm": round(bpm, 1), "root": root, "scale": scale_name, "parts": []}

    def degree_pitch(deg: int, octave: int) -> int:
        o, d = divmod(deg, len(scale))
        return 12 * (octave + o) + root + scale[d]

    # chord progression: scale degrees, one chord per bar (4 beats) or per 2 beats
    beats_per_chord = int(rng.choice([2, 4, 4, 8]))
    prog_len = int(rng.choice([2, 4, 4, 8]))
    progression = [int(rng.integers(0, len(scale))) for _ in range(prog_len)]
    progression[0] = 0

    parts = ["melody", "chords", "bass", "drums"]
    active = [p for p in parts if rng.random() < {"melody": 0.9, "chords": 0.7, "bass": 0.6, "drums": 0.5}[p]]
    if not active:
        active = ["melody"]
    ch_next = 0
    for part in active:
        ev: List[Tuple[int, bytes]] = []
        if part == "drums":
            ch = 9
            style = int(rng.integers(0, 3))
            sub = int(rng.choice([2, 4]))
            for b in range(n_beats):
                for s in range(sub):
                    t = (b * sub + s) * TPQ // sub
                    if s == 0 and (b % 2 == 0 or style == 2):
                        note(ev, ch, t, TPQ // 4, 36, rng.integers(80, 120))  # kick
                    if s == 0 and b % 2 == 1:
                        note(ev, ch, t, TPQ // 4, int(rng.choice([38, 40])), rng.integers(70, 115))  # snare
                    if rng.random() < 0.85:
                        note(ev, ch, t, TPQ // 8, int(rng.choice([42, 42, 44, 46, 51])), rng.integers(40, 90))
                    if rng.random() < 0.03:
                        note(ev, ch, t, TPQ, int(rng.choice([49, 57, 45, 47, 50])), rng.integers(60, 110))
            desc["parts"].append(("drums", None))
        else:
            ch = ch_next
            ch_next += 1
            if ch_next == 9:
                ch_next = 10
            prog = int(rng.choice(lists[part]))
            ev.append((0, bytes([0xC0 | ch, prog])))
            ev.append((0, bytes([0xB0 | ch, 7, int(rng.integers(70, 120))])))  # channel volume
            ev.append((0, bytes([0xB0 | ch, 10, int(rng.integers(20, 108))])))  # pan (mono later)
            desc["parts"].append((part, prog))
            if part == "melody":
                octave = int(rng.integers(4, 7))
                deg = int(rng.integers(0, len(scale)))
                t = 0
                end = n_beats * TPQ
                durs = [TPQ // 4, TPQ // 2, TPQ // 2, TPQ, TPQ, TPQ * 3 // 2, TPQ * 2]
                legato = float(rng.uniform(0.6, 1.0))
                while t < end:
                    d = int(rng.choice(durs))
                    if rng.random() < 0.12:  # rest
                        t += d
                        continue
                    deg += int(rng.choice([-2, -1, -1, 0, 1, 1, 2, 3, -3]))
                    deg = max(-len(scale), min(2 * len(scale), deg))
                    note(ev, ch, t, int(d * legato), degree_pitch(deg, octave), rng.integers(60, 120))
                    t += d
            elif part == "chords":
                octave = int(rng.integers(3, 5))
                arpeggio = rng.random() < 0.4
                for ci in range(0, n_beats, beats_per_chord):
                    dg = progression[(ci // beats_per_chord) % prog_len]
                    t0 = ci * TPQ
                    tones = [degree_pitch(dg + k, octave) for k in (0, 2, 4)]
                    if rng.random() < 0.3:
                        tones.append(degree_pitch(dg + 6, octave))
                    if arpeggio:
                        step = TPQ // 2
                        for k in range(beats_per_chord * 2):
                            note(ev, ch, t0 + k * step, step, tones[k % len(tones)], rng.integers(50, 95))
                    else:
                        v = int(rng.integers(50, 95))
                        for p in tones:
                            note(ev, ch, t0, beats_per_chord * TPQ - 10, p, v)
            else:  # bass
                octave = int(rng.integers(2, 4))
                for ci in range(0, n_beats, beats_per_chord):
                    dg = progression[(ci // beats_per_chord) % prog_len]
                    for k in range(beats_per_chord):
                        if rng.random() < 0.8:
                            p = degree_pitch(dg + (4 if (k % 2 and rng.random() < 0.3) else 0), octave)
                            note(ev, ch, (ci + k) * TPQ, TPQ * 9 // 10, p, rng.integers(70, 115))
        tracks.append(ev)
    return tracks, desc
