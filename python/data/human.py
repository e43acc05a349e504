"""Recorded human voices for the training and evaluation data, and the changes a real microphone brings.

Sources (Debian packages, see scripts/setup.sh):
  klettres-data   letters and syllables spoken by native speakers, one directory per language under
                  /usr/share/klettres/<lang>/{alpha,syllab}/*.ogg (one speaker per language as packaged)
  festvox-*       festival's diphone / cluster-unit voices (concatenations of a human speaker's recorded units),
                  driven by `text2wave` with texts from textgen.py

Whole speakers are held out: the klettres languages in KLETTRES_EVAL and the festival voices in FESTIVAL_EVAL are
only ever used by the eval_human split, the others only by train_human.

mic_chain() applies what a real microphone and room bring, with sox and numpy: band limits and EQ, room reverb,
background noise at a set SNR, level rides and an overall level.
"""
from __future__ import annotations

import glob
import os
import subprocess
from typing import Dict, List, Optional, Tuple

import numpy as np

SR = 24000
KLETTRES_DIR = "/usr/share/klettres"
FESTIVAL_DIR = "/usr/share/festival/voices"
# klettres languages (= speakers) never used in training
KLETTRES_EVAL = ["en_GB", "it", "ru", "hu", "he"]
# festival voices: name -> (textgen language, text encoding festival expects)
FESTIVAL_VOICES: Dict[str, Tuple[str, str]] = {
    "kal_diphone": ("en", "latin-1"),
    "ked_diphone": ("en", "latin-1"),
    "lp_diphone": ("it", "latin-1"),
    "pc_diphone": ("it", "latin-1"),
    "suo_fi_lj_diphone": ("fi", "latin-1"),
    "hy_fi_mv_diphone": ("fi", "latin-1"),
    "msu_ru_nsh_clunits": ("ru", "utf-8"),
}
FESTIVAL_EVAL = ["ked_diphone"]
SNR_SET_DB = [5, 10, 15, 20, 30]


def _run(cmd: List[str], stdin: Optional[bytes] = None):
    r = subprocess.run(cmd, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])}... failed ({r.returncode}): {r.stderr.decode(errors='ignore')[-400:]}")


def klettres_speakers() -> Dict[str, List[str]]:
    """language -> sorted list of its .ogg files (letters and syllables)."""
    out = {}
    for d in sorted(glob.glob(os.path.join(KLETTRES_DIR, "*"))):
        files = sorted(glob.glob(os.path.join(d, "alpha", "*.ogg")) + glob.glob(os.path.join(d, "syllab", "*.ogg")))
        if files:
            out[os.path.basename(d)] = files
    return out


def festival_voices() -> List[str]:
    have = {os.path.basename(p) for p in glob.glob(os.path.join(FESTIVAL_DIR, "*", "*"))}
    return [v for v in FESTIVAL_VOICES if v in have]


def trim_silence(x: np.ndarray, floor_db: float = -40.0, margin_s: float = 0.03) -> np.ndarray:
    """Cut leading/trailing parts quieter than floor_db below the loudest 10 ms frame."""
    hop = SR // 100
    n = len(x) // hop
    if n < 2:
        return x
    e = 10 * np.log10(np.mean(x[:n * hop].reshape(n, hop).astype(np.float64) ** 2, axis=1) + 1e-12)
    act = np.nonzero(e > e.max() + floor_db)[0]
    if len(act) == 0:
        return x[:0]
    m = int(margin_s * SR)
    return x[max(0, act[0] * hop - m):min(len(x), (act[-1] + 1) * hop + m)]


def _rms_db(x: np.ndarray) -> float:
    return 10 * np.log10(np.mean(x.astype(np.float64) ** 2) + 1e-12)


class HumanVoices:
    def __init__(self, tmp: str, eval_split: bool, read_wav, write_wav, text_gen, colored_noise):
        self.tmp = tmp
        self.eval_split = eval_split
        self.read_wav = read_wav
        self.write_wav = write_wav
        self.text = text_gen
        self.colored_noise = colored_noise
        spk = klettres_speakers()
        fv = festival_voices()
        if eval_split:
            self.klettres = {k: v for k, v in spk.items() if k in KLETTRES_EVAL}
            self.festival = [v for v in fv if v in FESTIVAL_EVAL]
        else:
            self.klettres = {k: v for k, v in spk.items() if k not in KLETTRES_EVAL}
            self.festival = [v for v in fv if v not in FESTIVAL_EVAL]
        if not self.klettres and not self.festival:
            raise RuntimeError("no human voices found: install klettres-data and festvox-* (scripts/setup.sh)")
        self.klettres_langs = sorted(self.klettres)
        self._cache: Dict[str, np.ndarray] = {}

    # ------------------------------------------------------------------ sources
    def _load(self, path: str) -> np.ndarray:
        x = self._cache.get(path)
        if x is None:
            b = os.path.join(self.tmp, "kl24.wav")
            _run(["sox", "-R", path, "-r", str(SR), "-c", "1", "-b", "16", b])
            x, _ = self.read_wav(b)
            x = trim_silence(x)
            self._cache[path] = x
        return x

    def klettres_clip(self, rng: np.random.Generator, seconds: float) -> Tuple[np.ndarray, Dict]:
        """Several recordings of one speaker, silence-trimmed, levelled and joined with short pauses."""
        lang = self.klettres_langs[int(rng.integers(len(self.klettres_langs)))]
        files = self.klettres[lang]
        parts, names, total = [], [], 0.0
        base_db = -22.0
        while total < seconds and len(names) < 60:
            f = files[int(rng.integers(len(files)))]
            x = self._load(f)
            if len(x) < SR * 0.1:
                continue
            x = x * (10 ** ((base_db + rng.uniform(-3, 3) - _rms_db(x)) / 20))
            parts.append(x.astype(np.float32))
            names.append(os.path.relpath(f, KLETTRES_DIR))
            total += len(x) / SR
            gap = np.zeros(int(SR * rng.uniform(0.08, 0.5)), np.float32)
            parts.append(gap)
            total += len(gap) / SR
        x = np.concatenate(parts)
        return x, {"lang": lang, "voice": f"klettres-{lang}", "text": " ".join(names)[:300]}

    def festival_clip(self, rng: np.random.Generator, seconds: float) -> Tuple[np.ndarray, Dict]:
        voice = self.festival[int(rng.integers(len(self.festival)))]
        lang, enc = FESTIVAL_VOICES[voice]
        stretch = float(np.round(rng.uniform(0.85, 1.3), 2))
        parts, texts, total, tries = [], [], 0.0, 0
        while total < seconds and tries < 8:
            tries += 1
            txt = self.text.paragraph(rng, lang, 1)
            try:
                raw = txt.encode(enc)
            except UnicodeEncodeError:
                raw = txt.encode(enc, errors="ignore")
            tin = os.path.join(self.tmp, "fest.txt")
            a = os.path.join(self.tmp, "fest.wav")
            b = os.path.join(self.tmp, "fest24.wav")
            with open(tin, "wb") as f:
                f.write(raw)
            _run(["text2wave", "-eval", f"(voice_{voice})", "-eval", f"(Parameter.set 'Duration_Stretch {stretch})",
                  "-o", a, tin])
            _run(["sox", "-R", a, "-r", str(SR), "-c", "1", "-b", "16", b])
            x, _ = self.read_wav(b)
            x = trim_silence(x)
            if len(x) < SR * 0.2:
                continue
            parts.append(x)
            texts.append(txt)
            total += len(x) / SR
            if total < seconds:
                parts.append(np.zeros(int(SR * rng.uniform(0.1, 0.6)), np.float32))
        x = np.concatenate(parts) if parts else np.zeros(int(SR * seconds), np.float32)
        return x, {"lang": lang, "voice": f"festival-{voice}", "rate": stretch, "text": " ".join(texts)[:300]}

    def clip(self, rng: np.random.Generator, seconds: float) -> Tuple[np.ndarray, Dict]:
        use_kl = bool(self.klettres) and (not self.festival or rng.random() < 0.6)
        x, info = self.klettres_clip(rng, seconds) if use_kl else self.festival_clip(rng, seconds)
        return x[:int(SR * (seconds + 0.5))], info

    # ------------------------------------------------------------------ the microphone
    def mic_chain(self, rng: np.random.Generator, x: np.ndarray, mild: bool) -> Tuple[np.ndarray, Dict]:
        """Band limits / EQ and room reverb (sox), background noise at a set SNR, level rides (numpy).
        mild=True (the eval split) uses gentler settings; the choices are recorded in the returned dict."""
        fx: List[str] = []
        r = rng.random()
        if r < (0.6 if mild else 0.5):
            fx += ["highpass", str(int(rng.integers(50, 250)))]
        r = rng.random()
        if r < (0.05 if mild else 0.15):
            fx += ["sinc", "300-3400"]
        elif r < (0.25 if mild else 0.45):
            fx += ["lowpass", str(int(rng.integers(3500, 10000)))]
        for _ in range(int(rng.integers(0, 2 if mild else 4))):
            g = rng.uniform(-4, 4) if mild else rng.uniform(-9, 9)
            fx += ["equalizer", str(int(np.exp(rng.uniform(np.log(150), np.log(6000))))), "1.0q", f"{g:.1f}"]
        if rng.random() < (0.3 if mild else 0.45):
            rev = int(rng.integers(10, 40 if mild else 85))
            fx += ["reverb", str(rev), str(int(rng.integers(20, 80))), str(int(rng.integers(10, 100))), "100",
                   str(int(rng.integers(0, 20))), f"{rng.uniform(-6, 0):.1f}", "channels", "1"]
        info: Dict = {"fx": " ".join(fx)}
        if fx:
            a = os.path.join(self.tmp, "mic_in.wav")
            b = os.path.join(self.tmp, "mic_out.wav")
            y = x * (10 ** ((-28 - _rms_db(x)) / 20))
            self.write_wav(a, np.clip(y, -1, 1))
            _run(["sox", "-R", a, "-b", "16", b] + fx)
            x, _ = self.read_wav(b)
        # background noise at a set SNR (of the speech's active level)
        if rng.random() < (0.4 if mild else 0.55):
            snr = float(rng.choice([20, 30] if mild else SNR_SET_DB))
            kind = str(rng.choice(["white", "pink", "brown", "hum"]))
            if kind == "hum":
                t = np.arange(len(x)) / SR
                f0 = float(rng.choice([50.0, 60.0]))
                n = sum((0.6 ** k) * np.sin(2 * np.pi * f0 * (k + 1) * t + rng.uniform(0, 6.3)) for k in range(6))
                n = (n + 0.1 * self.colored_noise(rng, len(x), "pink")).astype(np.float32)
            else:
                n = self.colored_noise(rng, len(x), kind)
            act = trim_silence(x)
            sig_db = _rms_db(act if len(act) else x)
            x = x + n * (10 ** ((sig_db - snr - _rms_db(n)) / 20))
            info.update(noise=kind, snr_db=snr)
        # level rides: a slowly varying gain (speaker moving, automatic gain control)
        if rng.random() < (0.3 if mild else 0.4):
            span = 3.0 if mild else 6.0
            knots = np.arange(0, len(x) + SR, int(SR * rng.uniform(0.5, 2.0)))
            g_db = rng.uniform(-span, span, len(knots))
            g = 10 ** (np.interp(np.arange(len(x)), knots, g_db) / 20)
            x = x * g.astype(np.float32)
            info["ride_db"] = span
        # an overdriven preamp now and then (training only)
        if not mild and rng.random() < 0.05:
            drive = float(rng.uniform(2, 6))
            y = x / (np.max(np.abs(x)) + 1e-9)
            x = np.tanh(drive * y) / np.tanh(drive)
            info["drive"] = round(drive, 1)
        return x.astype(np.float32), info
