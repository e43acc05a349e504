#!/usr/bin/python3
"""Generate the 24 kHz mono training and evaluation audio for the default wavtok model.

    /usr/bin/python3 python/data/make_dataset.py --out data/ [--minutes 75] [--eval-clips 40] [--seed 20240]

Everything is synthesised locally and reproducibly (one seeded RNG per clip):
  speech   espeak-ng over ~90 languages/dialects x ~90 voice variants, random rate / pitch /
           word gap, texts from python/data/textgen.py; some clips get sox reverb or a
           telephone/low-pass band limit
  music    random songs (melody, chords, bass, drums over many GM programs) written as MIDI
           by python/data/midi.py and rendered with fluidsynth + the GM soundfont
  noise    white / pink / brown noise at a low level
  mixes    speech over music, speech over noise
  human    (splits train_human / eval_human) recorded human voices: klettres-data speakers and festival's
           diphone voices (python/data/human.py), through a simulated microphone (sox EQ / band limits / room
           reverb, background noise at set SNRs, level rides); whole speakers and languages are held out
Each clip is loudness-normalised to a random level and written as 16-bit PCM WAV.

Layout written under --out:
  train/NNNNN_<kind>.wav, train/filelist (one wav name per line, relative to train/),
  train/manifest.tsv (file, seconds, kind, lang, voice, rate, pitch, details)
  eval/...   the same for the held-out set: other texts (disjoint word halves), other
             voice variants, held-out dialects/languages, other seeds; 3-6 s clips, mostly speech
  train_human/, eval_human/   the human-voice splits (eval_human: held-out speakers only, 3-6 s clips, each
             several recordings joined)
Generation resumes: every finished clip is recorded in <split>/manifest.jsonl, and a rerun continues after the last
one (with a larger --minutes it extends the split; the clips so far are the same, one seeded RNG per clip).
Only one external process runs at a time (the machine is shared).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from typing import Dict, List, Optional, Tuple

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import textgen  # noqa: E402
import midi  # noqa: E402
import human  # noqa: E402

SR = 24000
SOUNDFONT_CANDIDATES = ["/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/default-GM.sf2",
                        "/usr/share/soundfonts/FluidR3_GM.sf2", "/usr/share/soundfonts/default.sf2"]

# Voice variants (espeak-ng --voices=variant). 1 in 6 (by sorted position) is held out for eval.
ALL_VARIANTS = sorted("""adam Alex Alicia Andrea Andy Annie antonio aunty belinda benjamin boris caleb david Demonic
Denis Diogo ed edward edward2 Gene Gene2 gustave announcer Henrique Hugo iven iven2 iven3 iven4 Jacky john
kaukovalta Lee linda marcelo Marco Mario max Michael michel miguel Mike Mr Nguyen pablo paul pedro quincy
RicishayMax RicishayMax2 RicishayMax3 rob robert robosoft robosoft2 robosoft3 robosoft4 robosoft5 robosoft6
robosoft7 robosoft8 steph steph2 steph3 Storm Tweaky UniRobot zac anika anikaRobot AnxiousAndy f1 f2 f3 f4 f5
whisperf grandpa klatt klatt2 klatt3 klatt4 klatt5 klatt6 m1 m2 m3 m4 m5 m6 m7 m8 norbert sandro shelby travis
victor whisper croak grandma""".split(), key=str.lower)
EVAL_VARIANTS = set(ALL_VARIANTS[3::6])
# the standard m/f variants are weighted up in training (they are the most natural sounding)
STANDARD_VARIANTS = ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5"]
EVAL_LANGS = ["en-gb-scotland", "en-us-nyc", "es-419", "fr-be", "pt-br", "ru-lv", "sl", "lv", "mk", "hr"]
EN_TRAIN = ["en-us", "en-gb", "en-gb-x-rp", "en-029", "en-gb-x-gbclan", "en-gb-x-gbcwmd"]

TRAIN_MIX = [("speech", 0.56), ("music", 0.18), ("speech_music", 0.1), ("speech_noise", 0.1), ("noise", 0.06)]
EVAL_MIX = [("speech", 0.75), ("music", 0.125), ("speech_music", 0.075), ("speech_noise", 0.05)]


# --------------------------------------------------------------------------- I/O helpers
def read_wav_mono(path: str) -> Tuple[np.ndarray, int]:
    with wave.open(path, "rb") as w:
        sr, ch, sw, n = w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()
        raw = w.readframes(n)
    if sw != 2:
        raise ValueError(f"{path}: expected 16-bit PCM")
    x = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    if ch > 1:
        x = x.reshape(-1, ch).mean(1)
    return x, sr


def write_wav_int16(path: str, x: np.ndarray, sr: int = SR):
    y = np.clip(np.round(x * 32767.0), -32768, 32767).astype("<i2")
    tmp = path + ".tmp"
    with wave.open(tmp, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(y.tobytes())
    os.replace(tmp, path)


def run(cmd: List[str]):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])}... failed ({r.returncode}): {r.stderr.decode(errors='ignore')[-400:]}")


def available_variants() -> set:
    try:
        out = subprocess.run(["espeak-ng", "--voices=variant"], stdout=subprocess.PIPE, check=True).stdout.decode()
    except Exception:
        return set(ALL_VARIANTS)
    names = set()
    for line in out.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 5 and parts[4].startswith("!v/"):
            names.add(parts[4][3:])
    return names


def available_langs() -> set:
    out = subprocess.run(["espeak-ng", "--voices"], stdout=subprocess.PIPE, check=True).stdout.decode()
    return {line.split()[1] for line in out.splitlines()[1:] if len(line.split()) > 1}


# --------------------------------------------------------------------------- signal helpers
def rms_db(x: np.ndarray) -> float:
    return 10 * np.log10(np.mean(x.astype(np.float64) ** 2) + 1e-12)


def set_level(x: np.ndarray, target_db: float, peak: float = 0.97) -> np.ndarray:
    y = x * (10 ** ((target_db - rms_db(x)) / 20))
    m = float(np.max(np.abs(y))) if len(y) else 0.0
    if m > peak:
        y *= peak / m
    return y.astype(np.float32)


def fade(x: np.ndarray, ms: float = 10.0) -> np.ndarray:
    n = min(len(x) // 2, int(SR * ms / 1000))
    if n > 0:
        r = np.linspace(0, 1, n, dtype=np.float32)
        x = x.copy()
        x[:n] *= r
        x[-n:] *= r[::-1]
    return x


def colored_noise(rng: np.random.Generator, n: int, color: str) -> np.ndarray:
    """white, pink (1/f power) or brown (1/f^2 power, flat below ~20 Hz) noise, unit std."""
    w = rng.standard_normal(n)
    if color == "white":
        y = w
    else:
        f = np.fft.rfft(w)
        hz = np.fft.rfftfreq(n, 1.0 / SR)
        hz = np.maximum(hz, 20.0)
        f = f / (np.sqrt(hz) if color == "pink" else hz)
        y = np.fft.irfft(f, n)
    y = y / (np.std(y) + 1e-9)
    return y.astype(np.float32)


# --------------------------------------------------------------------------- generators
class Generator:
    def __init__(self, workdir: str, eval_split: bool, soundfont: Optional[str], with_human: bool = False,
                 train_mic_prob: float = 0.8):
        self.tmp = workdir
        self.eval_split = eval_split
        self.train_mic_prob = train_mic_prob  # share of training human-voice clips through the simulated microphone
        self.sf = soundfont
        self.text = textgen.SentenceGenerator(eval_split=eval_split)
        self.human = (human.HumanVoices(workdir, eval_split, read_wav_mono, write_wav_int16, self.text, colored_noise)
                      if with_human else None)
        avail_v = available_variants()
        avail_l = available_langs()
        vs = [v for v in ALL_VARIANTS if v in avail_v]
        if eval_split:
            self.variants = [v for v in vs if v in EVAL_VARIANTS]
        else:
            self.variants = [v for v in vs if v not in EVAL_VARIANTS and v != "fast"]
        self.std_variants = [v for v in STANDARD_VARIANTS if v in self.variants]
        langs = [l for l in textgen.SUPPORTED_LANGS if l in avail_l]
        if eval_split:
            self.langs_en = [l for l in EVAL_LANGS if l.startswith("en") and l in avail_l]
            self.langs_other = [l for l in EVAL_LANGS if not l.startswith("en") and l in avail_l]
            # plus training languages (with held-out variants and text)
            self.langs_other += [l for l in ["de", "fr-fr", "es", "it", "ru", "cmn", "ja", "pl"] if l in avail_l]
        else:
            self.langs_en = [l for l in EN_TRAIN if l in avail_l]
            self.langs_other = [l for l in langs if l not in EVAL_LANGS and not l.startswith("en")]
        if not self.langs_en:
            self.langs_en = ["en"]

    # ------------------------------------------------------------------ speech
    def speech(self, rng: np.random.Generator, seconds: float) -> Tuple[np.ndarray, Dict]:
        lang = (self.langs_en[int(rng.integers(len(self.langs_en)))] if rng.random() < 0.4
                else self.langs_other[int(rng.integers(len(self.langs_other)))])
        r = rng.random()
        if r < 0.15:
            variant = None
        elif r < 0.6 and self.std_variants:
            variant = self.std_variants[int(rng.integers(len(self.std_variants)))]
        else:
            variant = self.variants[int(rng.integers(len(self.variants)))]
        voice = lang + ("+" + variant if variant else "")
        rate = int(np.clip(rng.normal(165, 30), 95, 260))
        pitch = int(rng.integers(15, 86))
        gap = int(rng.choice([0, 0, 0, 1, 2, 5]))
        # roughly 2.5 words/s at 165 wpm... keep adding sentences until the clip is long enough
        parts: List[np.ndarray] = []
        texts: List[str] = []
        total = 0.0
        tries = 0
        while total < seconds and tries < 6:
            tries += 1
            txt = self.text.paragraph(rng, lang, int(rng.integers(1, 3)))
            x = self._espeak(txt, voice, rate, pitch, gap)
            if len(x) < SR * 0.2:
                continue
            parts.append(x)
            texts.append(txt)
            total += len(x) / SR
            if total < seconds:  # a pause between paragraphs
                parts.append(np.zeros(int(SR * rng.uniform(0.05, 0.6)), np.float32))
        x = np.concatenate(parts) if parts else np.zeros(int(SR * seconds), np.float32)
        x = x[:int(SR * (seconds + 1.0))]
        info = {"lang": lang, "voice": voice, "rate": rate, "pitch": pitch, "text": " ".join(texts)[:300]}
        return x, info

    def _espeak(self, text: str, voice: str, rate: int, pitch: int, gap: int) -> np.ndarray:
        a = os.path.join(self.tmp, "es.wav")
        b = os.path.join(self.tmp, "es24.wav")
        run(["espeak-ng", "-v", voice, "-s", str(rate), "-p", str(pitch), "-g", str(gap), "-w", a, text])
        run(["sox", a, "-r", str(SR), "-c", "1", "-b", "16", b])
        x, sr = read_wav_mono(b)
        assert sr == SR
        return x

    def room_or_band(self, rng: np.random.Generator, x: np.ndarray) -> Tuple[np.ndarray, str]:
        """Occasionally add sox reverb or a band limit (phone / low-pass)."""
        r = rng.random()
        if r < 0.7:
            return x, ""
        a = os.path.join(self.tmp, "fx_in.wav")
        b = os.path.join(self.tmp, "fx_out.wav")
        write_wav_int16(a, set_level(x, -20))
        if r < 0.88:
            eff = ["reverb", str(int(rng.integers(10, 70))), "50", str(int(rng.integers(20, 100)))]
        elif r < 0.95:
            eff = ["sinc", "300-3400"]
        else:
            eff = ["lowpass", str(int(rng.integers(3000, 8000)))]
        run(["sox", a, "-b", "16", b] + eff + ["channels", "1"])
        y, _ = read_wav_mono(b)
        return y, " ".join(eff)

    # ------------------------------------------------------------------ music
    def music(self, rng: np.random.Generator, seconds: float) -> Tuple[np.ndarray, Dict]:
        if not self.sf:
            raise RuntimeError("no soundfont")
        tracks, desc = midi.random_song(rng, seconds + 1.0)
        m = os.path.join(self.tmp, "song.mid")
        a = os.path.join(self.tmp, "song.wav")
        b = os.path.join(self.tmp, "song_mono.wav")
        midi.write_midi(m, tracks)
        run(["fluidsynth", "-ni", "-q", "-g", "0.6", "-r", str(SR), "-F", a, self.sf, m])
        run(["sox", a, "-c", "1", "-b", "16", b])
        x, _ = read_wav_mono(b)
        # skip the very beginning sometimes so clips don't all start at a downbeat
        off = int(rng.uniform(0, 0.5) * SR)
        x = x[off:off + int(seconds * SR)]
        return x, {"music": desc}

    # ------------------------------------------------------------------ noise
    def noise(self, rng: np.random.Generator, seconds: float) -> Tuple[np.ndarray, Dict]:
        color = str(rng.choice(["white", "pink", "brown"]))
        x = colored_noise(rng, int(seconds * SR), color)
        # slow amplitude modulation now and then
        if rng.random() < 0.3:
            t = np.arange(len(x)) / SR
            x *= (1 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.1, 2.0) * t)).astype(np.float32)
        return x, {"noise": color}

    # ------------------------------------------------------------------ one clip
    def clip(self, rng: np.random.Generator, kind: str, seconds: float) -> Tuple[np.ndarray, Dict]:
        info: Dict = {"kind": kind}
        if kind == "speech":
            x, i = self.speech(rng, seconds)
            x, fx = self.room_or_band(rng, x)
            info.update(i, fx=fx)
            level = rng.uniform(-32, -16)
        elif kind == "human":
            x, i = self.human.clip(rng, seconds)
            info.update(i)
            if rng.random() < (0.4 if self.eval_split else self.train_mic_prob):
                x, m = self.human.mic_chain(rng, x, mild=self.eval_split)
                info.update(m)
            level = rng.uniform(-30, -18) if self.eval_split else rng.uniform(-38, -14)
        elif kind == "music":
            x, i = self.music(rng, seconds)
            info.update(i)
            level = rng.uniform(-30, -14)
        elif kind == "noise":
            x, i = self.noise(rng, seconds)
            info.update(i)
            level = rng.uniform(-55, -35)
        elif kind == "speech_music":
            s, i = self.speech(rng, seconds)
            mus, j = self.music(rng, len(s) / SR)
            mus = np.pad(mus, (0, max(0, len(s) - len(mus))))[:len(s)]
            snr = rng.uniform(3, 20)
            x = set_level(s, -20) + set_level(mus, -20 - snr, peak=10)
            info.update(i, **j, snr_db=round(snr, 1))
            level = rng.uniform(-30, -16)
        elif kind == "speech_noise":
            s, i = self.speech(rng, seconds)
            n, j = self.noise(rng, len(s) / SR + 0.01)
            n = n[:len(s)]
            snr = rng.uniform(8, 35)
            x = set_level(s, -20) + set_level(n, -20 - snr, peak=10)
            info.update(i, **j, snr_db=round(snr, 1))
            level = rng.uniform(-30, -16)
        else:
            raise ValueError(kind)
        x = fade(set_level(x, level))
        info["level_db"] = round(float(level), 1)
        return x, info


def pick_kind(rng: np.random.Generator, mix) -> str:
    names = [k for k, _ in mix]
    p = np.array([w for _, w in mix], dtype=np.float64)
    return str(rng.choice(names, p=p / p.sum()))


def load_progress(d: str) -> List[Tuple[str, float, Dict]]:
    """The clips already written to split directory d, in order: from manifest.jsonl (written clip by clip), or,
    for a split written before that file existed, from its manifest.tsv. Stops at the first missing wav."""
    rows: List[Tuple[str, float, Dict]] = []
    jl, tsv = os.path.join(d, "manifest.jsonl"), os.path.join(d, "manifest.tsv")
    if os.path.exists(jl):
        with open(jl, encoding="utf-8") as f:
            for line in f:
                try:
                    r = json.loads(line)
                except json.JSONDecodeError:  # a line cut short by an interruption
                    break
                rows.append((r["file"], float(r["seconds"]), r["info"]))
    elif os.path.exists(tsv):
        with open(tsv, encoding="utf-8") as f:
            for line in f.read().splitlines()[1:]:
                c = line.split("\t")
                info = {"kind": c[2], "lang": c[3], "voice": c[4], "rate": c[5], "pitch": c[6]}
                info = {k: v for k, v in info.items() if v != ""}
                info.update(json.loads(c[7]))
                rows.append((c[0], float(c[1]), info))
        with open(jl, "w", encoding="utf-8") as f:
            for name, dur, info in rows:
                f.write(json.dumps({"file": name, "seconds": dur, "info": info}, ensure_ascii=False) + "\n")
    for k, (name, _, _) in enumerate(rows):
        if name != f"{k:05d}_{rows[k][2]['kind']}.wav" or not os.path.exists(os.path.join(d, name)):
            rows = rows[:k]
            break
    return rows


def generate_split(out_dir: str, split: str, seed: int, total_seconds: Optional[float], n_clips: Optional[int],
                   soundfont: Optional[str], log_every: int = 25) -> Tuple[int, float]:
    eval_split = split.startswith("eval")
    with_human = "_human" in split
    d = os.path.join(out_dir, split)
    os.makedirs(d, exist_ok=True)
    mix = [("human", 1.0)] if with_human else (EVAL_MIX if eval_split else TRAIN_MIX)
    if not soundfont:
        mix = [(k, w) for k, w in mix if "music" not in k]
    split_id = {"train": 0, "eval": 1, "train_human": 2, "eval_human": 3, "train_human2": 4}[split]
    rows = load_progress(d)
    # clips past what this request generates from scratch (an earlier run asked for more) are left out, so that the
    # filelist is the same as a fresh run's
    keep, acc = 0, 0.0
    while keep < len(rows) and (n_clips is None or keep < n_clips) and (total_seconds is None or acc < total_seconds):
        acc += rows[keep][1]
        keep += 1
    rows = rows[:keep]
    total = sum(r[1] for r in rows)
    if rows:
        print(f"[{split}] resuming after {len(rows)} clips ({total / 60:.1f} min)", flush=True)
    t0 = time.time()
    jl = os.path.join(d, "manifest.jsonl")
    with open(jl + ".tmp", "w", encoding="utf-8") as f:  # exactly the rows kept, then one line per new clip
        for name, dur, info in rows:
            f.write(json.dumps({"file": name, "seconds": dur, "info": info}, ensure_ascii=False) + "\n")
    os.replace(jl + ".tmp", jl)
    progress = open(jl, "a", encoding="utf-8")
    with tempfile.TemporaryDirectory(prefix="wavtok_data_") as tmp:
        # train_human2 (recipe v7): more human voices as recorded (30 % through the microphone instead of 80 %;
        # eval_human has 60 % as recorded)
        gen = Generator(tmp, eval_split, soundfont, with_human, 0.3 if split == "train_human2" else 0.8)
        i = len(rows)
        while True:
            if n_clips is not None and i >= n_clips:
                break
            if total_seconds is not None and total >= total_seconds:
                break
            rng = np.random.default_rng([seed, split_id, i])
            kind = pick_kind(rng, mix)
            if eval_split:
                seconds = float(rng.uniform(3.0, 6.0))
            else:
                seconds = float(rng.uniform(4.0, 14.0))
            x, info = gen.clip(rng, kind, seconds)
            if eval_split:
                x = fade(x[:int(seconds * SR)])
                if len(x) < 3 * SR:  # too short: pad with silence to the 3 s minimum
                    x = np.pad(x, (0, 3 * SR - len(x)))
            name = f"{i:05d}_{kind}.wav"
            write_wav_int16(os.path.join(d, name), x)
            dur = len(x) / SR
            total += dur
            rows.append((name, dur, info))
            progress.write(json.dumps({"file": name, "seconds": dur, "info": info}, ensure_ascii=False) + "\n")
            progress.flush()
            i += 1
            if i % log_every == 0:
                el = time.time() - t0
                print(f"[{split}] {i} clips, {total / 60:.1f} min audio, {el:.0f} s elapsed "
                      f"({total / max(el, 1e-6):.0f}x real time)", flush=True)
    progress.close()
    with open(os.path.join(d, "filelist.tmp"), "w") as f:
        for name, _, _ in rows:
            f.write(name + "\n")
    with open(os.path.join(d, "manifest.tsv"), "w", encoding="utf-8") as f:
        f.write("file\tseconds\tkind\tlang\tvoice\trate\tpitch\tdetails\n")
        for name, dur, info in rows:
            det = {k: v for k, v in info.items() if k not in ("kind", "lang", "voice", "rate", "pitch")}
            f.write("\t".join([name, f"{dur:.3f}", info["kind"], str(info.get("lang", "")), str(info.get("voice", "")),
                               str(info.get("rate", "")), str(info.get("pitch", "")),
                               json.dumps(det, ensure_ascii=False)]) + "\n")
    os.replace(os.path.join(d, "filelist.tmp"), os.path.join(d, "filelist"))
    el = time.time() - t0
    print(f"[{split}] done: {len(rows)} clips, {total / 60:.1f} min in {el:.0f} s -> {d}", flush=True)
    return len(rows), total


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="data", help="output directory (default: data)")
    ap.add_argument("--minutes", type=float, default=75.0, help="minutes of training audio (default 75)")
    ap.add_argument("--eval-clips", type=int, default=40, help="number of held-out eval clips (default 40)")
    ap.add_argument("--human-minutes", type=float, default=30.0,
                    help="minutes of human-voice training audio, split train_human (default 30)")
    ap.add_argument("--human-eval-clips", type=int, default=32,
                    help="number of held-out human-voice clips, split eval_human (default 32)")
    ap.add_argument("--human2-minutes", type=float, default=20.0,
                    help="minutes of split train_human2 (recipe v7: more speech as recorded; default 20)")
    ap.add_argument("--seed", type=int, default=20240, help="base seed (default 20240)")
    ap.add_argument("--splits", default="train,eval,train_human,eval_human",
                    help="which splits to generate or complete (default: the four above; train_human2 on request)")
    ap.add_argument("--force", action="store_true", help="delete an existing split directory first")
    args = ap.parse_args()

    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found")
    sf = next((p for p in SOUNDFONT_CANDIDATES if os.path.exists(p)), None)
    if sf is None or shutil.which("fluidsynth") is None:
        print("warning: fluidsynth or a GM soundfont is missing: no music in the data", file=sys.stderr)
        sf = None
    os.makedirs(args.out, exist_ok=True)
    splits = [s.strip() for s in args.splits.split(",") if s.strip()]
    summary_path = os.path.join(args.out, "dataset.json")
    summary = {}
    if os.path.exists(summary_path):
        with open(summary_path) as f:
            summary = json.load(f)
    summary.update({"seed": args.seed, "sample_rate": SR})
    for split in splits:
        d = os.path.join(args.out, split)
        if args.force and os.path.isdir(d):
            shutil.rmtree(d)
        if split == "train":
            n, tot = generate_split(args.out, split, args.seed, args.minutes * 60.0, None, sf)
        elif split == "eval":
            n, tot = generate_split(args.out, split, args.seed + 7919, None, args.eval_clips, sf, log_every=10)
        elif split == "train_human":
            n, tot = generate_split(args.out, split, args.seed, args.human_minutes * 60.0, None, sf)
        elif split == "train_human2":
            n, tot = generate_split(args.out, split, args.seed, args.human2_minutes * 60.0, None, sf)
        elif split == "eval_human":
            n, tot = generate_split(args.out, split, args.seed + 7919, None, args.human_eval_clips, sf, log_every=10)
        else:
            sys.exit(f"unknown split {split}")
        summary[split] = {"clips": n, "minutes": round(tot / 60, 2)}
    with open(os.path.join(args.out, "dataset.json"), "w") as f:
        json.dump(summary, f, indent=1)


if __name__ == "__main__":
    main()
