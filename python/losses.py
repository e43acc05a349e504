"""Reconstruction losses for codec training (plain torch, no torchaudio).

- MelFilterbank: triangular filters on the HTK mel scale, identical to torchaudio's
  melscale_fbanks(norm=None, mel_scale="htk") (the default of torchaudio.transforms.MelSpectrogram).
- MultiResolutionMelLoss: mean over resolutions of L1(log mel(y_hat), log mel(y)), magnitude (power=1)
  mel spectrograms with a centred Hann STFT, like upstream WavTokenizer/Vocos' MelSpecReconstructionLoss
  (their single resolution is n_fft 1024, hop 256, 100 mels at 24 kHz: included in the defaults).
- MultiResolutionSTFTLoss: mean over resolutions of spectral convergence ||S - S_hat||_F / ||S||_F
  (Frobenius norms over the whole batch) and L1 of log magnitudes (Parallel WaveGAN style).
"""
from __future__ import annotations

import math
from typing import Dict, Sequence, Tuple

import torch
from torch import nn
import torch.nn.functional as F


def hz_to_mel_htk(f):
    return 2595.0 * math.log10(1.0 + f / 700.0) if not torch.is_tensor(f) else 2595.0 * torch.log10(1.0 + f / 700.0)


def mel_to_hz_htk(m: torch.Tensor) -> torch.Tensor:
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def mel_filterbank(n_freqs: int, n_mels: int, sample_rate: int, f_min: float = 0.0,
                   f_max: float = None) -> torch.Tensor:
    """(n_freqs, n_mels) matrix; n_freqs = n_fft // 2 + 1. Matches torchaudio.functional.melscale_fbanks
    with norm=None and mel_scale='htk'."""
    f_max = float(sample_rate // 2) if f_max is None else float(f_max)
    all_freqs = torch.linspace(0, sample_rate // 2, n_freqs, dtype=torch.float64)
    m_min, m_max = hz_to_mel_htk(float(f_min)), hz_to_mel_htk(f_max)
    m_pts = torch.linspace(m_min, m_max, n_mels + 2, dtype=torch.float64)
    f_pts = mel_to_hz_htk(m_pts)
    f_diff = f_pts[1:] - f_pts[:-1]
    slopes = f_pts[None, :] - all_freqs[:, None]  # (n_freqs, n_mels + 2)
    down = -slopes[:, :-2] / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    fb = torch.clamp(torch.minimum(down, up), min=0.0)
    return fb.to(torch.float32)


def stft_mag(x: torch.Tensor, n_fft: int, hop: int, win: torch.Tensor, center: bool = True) -> torch.Tensor:
    """x (B, T) -> magnitude (B, n_fft//2+1, frames)."""
    s = torch.stft(x, n_fft, hop_length=hop, win_length=win.shape[0], window=win, center=center,
                   pad_mode="reflect", return_complex=True)
    return s.abs()


class MelSpectrogram(nn.Module):
    def __init__(self, sample_rate: int = 24000, n_fft: int = 1024, hop_length: int = 256, n_mels: int = 100):
        super().__init__()
        self.n_fft, self.hop = n_fft, hop_length
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.register_buffer("fb", mel_filterbank(n_fft // 2 + 1, n_mels, sample_rate), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T) -> mel magnitude (B, n_mels, frames)."""
        mag = stft_mag(x, self.n_fft, self.hop, self.window)
        return torch.matmul(mag.transpose(1, 2), self.fb).transpose(1, 2)


def safe_log(x: torch.Tensor, clip: float = 1e-7) -> torch.Tensor:
    return torch.log(torch.clamp(x, min=clip))


class MultiResolutionMelLoss(nn.Module):
    def __init__(self, sample_rate: int = 24000,
                 resolutions: Sequence[Tuple[int, int, int]] = ((512, 128, 64), (1024, 256, 100), (2048, 512, 128))):
        super().__init__()
        self.mels = nn.ModuleList([MelSpectrogram(sample_rate, n, h, m) for n, h, m in resolutions])

    def forward(self, y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        loss = 0.0
        for mel in self.mels:
            loss = loss + F.l1_loss(safe_log(mel(y_hat)), safe_log(mel(y)))
        return loss / len(self.mels)


class MultiResolutionSTFTLoss(nn.Module):
    def __init__(self, resolutions: Sequence[Tuple[int, int]] = ((512, 128), (1024, 256), (2048, 512))):
        super().__init__()
        self.res = list(resolutions)
        for n, _ in self.res:
            self.register_buffer(f"win{n}", torch.hann_window(n), persistent=False)

    def forward(self, y_hat: torch.Tensor, y: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        sc_total, mag_total = 0.0, 0.0
        for n, h in self.res:
            win = getattr(self, f"win{n}")
            s_hat = stft_mag(y_hat, n, h, win)
            s = stft_mag(y, n, h, win)
            # norms over the whole batch: a (near-)silent crop must not blow the ratio up
            sc = torch.linalg.vector_norm(s - s_hat) / (torch.linalg.vector_norm(s) + 1e-3)
            sc_total = sc_total + sc
            mag_total = mag_total + F.l1_loss(safe_log(s_hat, 1e-5), safe_log(s, 1e-5))
        k = len(self.res)
        return sc_total / k, mag_total / k


class EnvelopeCorrelationLoss(nn.Module):
    """1 - mean correlation of short-time band envelopes: the quantity STOI averages (Taal et al. 2011),
    made differentiable. 15 one-third-octave bands from 150 Hz, 25.6 ms Hann frames with 50 % overlap,
    correlation over 30-frame (384 ms) segments sliding by one frame. Unlike STOI it works at the model's
    rate, does not clip the processed envelope and skips segments more than 40 dB below the crop's loudest
    (instead of removing silent frames)."""

    def __init__(self, sample_rate: int = 24000, n_bands: int = 15, f_min: float = 150.0, seg_frames: int = 30):
        super().__init__()
        self.win = int(round(0.0256 * sample_rate))
        self.hop = self.win // 2
        self.n_fft = 1 << (self.win - 1).bit_length()
        self.seg = seg_frames
        self.register_buffer("window", torch.hann_window(self.win), persistent=False)
        freqs = torch.arange(self.n_fft // 2 + 1, dtype=torch.float64) * sample_rate / self.n_fft
        centres = f_min * 2.0 ** (torch.arange(n_bands, dtype=torch.float64) / 3.0)
        lo, hi = centres * 2.0 ** (-1.0 / 6.0), centres * 2.0 ** (1.0 / 6.0)
        bands = ((freqs[None, :] >= lo[:, None]) & (freqs[None, :] < hi[:, None])).to(torch.float32)
        self.register_buffer("bands", bands, persistent=False)  # (n_bands, n_freqs)

    def envelopes(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.stft(x, self.n_fft, hop_length=self.hop, win_length=self.win, window=self.window,
                       center=False, return_complex=True)
        power = s.real ** 2 + s.imag ** 2  # (B, F, frames)
        return torch.sqrt(torch.matmul(self.bands, power) + 1e-10)  # (B, bands, frames)

    def forward(self, y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        e_hat = self.envelopes(y_hat).unfold(-1, self.seg, 1)  # (B, bands, segments, seg)
        e = self.envelopes(y).unfold(-1, self.seg, 1)
        e_hat = e_hat - e_hat.mean(-1, keepdim=True)
        e = e - e.mean(-1, keepdim=True)
        corr = (e_hat * e).sum(-1) / (e_hat.norm(dim=-1) * e.norm(dim=-1) + 1e-8)  # (B, bands, segments)
        energy = e.pow(2).sum(dim=(1, 3))  # (B, segments): the clean segment's envelope variance
        keep = (energy > energy.amax(dim=1, keepdim=True) * 1e-4).unsqueeze(1).expand_as(corr)
        return 1.0 - corr[keep].mean()


class CodecLoss(nn.Module):
    """total = mel_coeff * mel + stft_coeff * (sc + logmag) + commit_coeff * commit + stoi_coeff * envelope."""

    def __init__(self, sample_rate: int = 24000, mel_coeff: float = 45.0, stft_coeff: float = 1.0,
                 commit_coeff: float = 1000.0, stoi_coeff: float = 0.0):
        super().__init__()
        self.mel = MultiResolutionMelLoss(sample_rate)
        self.stft = MultiResolutionSTFTLoss()
        self.env = EnvelopeCorrelationLoss(sample_rate) if stoi_coeff > 0 else None
        self.mel_coeff, self.stft_coeff, self.commit_coeff = mel_coeff, stft_coeff, commit_coeff
        self.stoi_coeff = stoi_coeff

    def forward(self, y_hat: torch.Tensor, y: torch.Tensor, commit: torch.Tensor) -> Tuple[torch.Tensor, Dict]:
        n = min(y_hat.shape[-1], y.shape[-1])
        y_hat, y = y_hat[..., :n], y[..., :n]
        mel = self.mel(y_hat, y)
        sc, mag = self.stft(y_hat, y)
        commit = commit.mean()
        total = self.mel_coeff * mel + self.stft_coeff * (sc + mag) + self.commit_coeff * commit
        parts = {"mel": float(mel), "sc": float(sc), "logmag": float(mag), "commit": float(commit)}
        if self.env is not None:
            env = self.env(y_hat, y)
            total = total + self.stoi_coeff * env
            parts["env"] = float(env)
        return total, parts


@torch.no_grad()
def mel_distance(y_hat: torch.Tensor, y: torch.Tensor, mel: MelSpectrogram) -> float:
    """L1 between log mels (n_fft 1024 / hop 256 / 100 mels: upstream's validation mel loss)."""
    n = min(y_hat.shape[-1], y.shape[-1])
    return float(F.l1_loss(safe_log(mel(y_hat[..., :n])), safe_log(mel(y[..., :n]))))
