"""EnCodec-style model (SEANet encoder + residual VQ + SEANet decoder), plain state_dict layout
(encoder.*, quantizer.vq.layers.N._codebook.*, decoder.*) as released EnCodec checkpoints.
No input normalisation and no segmenting (the 24 kHz setup)."""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence

import torch
from torch import nn

from .seanet import SEANetEncoder, SEANetDecoder
from .vq import ResidualVectorQuantizer


class EncodecModel(nn.Module):
    def __init__(self, n_filters: int = 32, dimension: int = 128, ratios: Sequence[int] = (8, 5, 4, 2),
                 n_q: int = 32, bins: int = 1024, causal: bool = True, pad_mode: str = "reflect",
                 lstm_layers: int = 2, sample_rate: int = 24000, channels: int = 1,
                 target_bandwidths: Sequence[float] = (1.5, 3.0, 6.0, 12.0, 24.0),
                 kernel_size: int = 7, last_kernel_size: int = 7, residual_kernel_size: int = 3,
                 compress: int = 2, trim_right_ratio: float = 1.0):
        super().__init__()
        common = dict(channels=channels, dimension=dimension, n_filters=n_filters, ratios=list(ratios),
                      norm="weight_norm", causal=causal, pad_mode=pad_mode, lstm=lstm_layers,
                      kernel_size=kernel_size, last_kernel_size=last_kernel_size,
                      residual_kernel_size=residual_kernel_size, compress=compress, true_skip=False)
        self.encoder = SEANetEncoder(**common)
        self.decoder = SEANetDecoder(trim_right_ratio=trim_right_ratio, **common)
        self.quantizer = ResidualVectorQuantizer(dimension=dimension, n_q=n_q, bins=bins)
        self.sample_rate = sample_rate
        self.channels = channels
        self.target_bandwidths = list(target_bandwidths)
        self.frame_rate = sample_rate / math.prod(ratios)

    def n_q_for_bandwidth(self, bandwidth_kbps: Optional[float]) -> int:
        return min(self.quantizer.n_q, self.quantizer.n_q_for_bandwidth(self.frame_rate, bandwidth_kbps))

    @torch.no_grad()
    def encode(self, audio: torch.Tensor, bandwidth: Optional[float] = None):
        """audio (B, C, T) or (B, T) -> (codes (n_q, B, F), emb (B, D, F))."""
        if audio.dim() == 2:
            audio = audio[:, None]
        emb = self.encoder(audio)
        return self.quantizer.encode(emb, n_q=self.n_q_for_bandwidth(bandwidth)), emb

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        return self.decoder(latents)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (n_q, B, F) -> audio (B, C, F * hop), untrimmed."""
        return self.decoder(self.quantizer.decode(codes))

    def forward(self, audio: torch.Tensor, n_q: Optional[int] = None):
        """Training: (audio_hat, codes, commit_loss)."""
        if audio.dim() == 2:
            audio = audio[:, None]
        res = self.quantizer(self.encoder(audio), n_q=n_q, frame_rate=self.frame_rate)
        return self.decoder(res.quantized), res.codes, res.penalty

    @classmethod
    def from_state_dict(cls, sd: Dict[str, torch.Tensor], causal: bool = True, pad_mode: str = "reflect",
                        **kwargs) -> "EncodecModel":
        """Infer sizes from tensor shapes of a released-layout state_dict and load it (eval mode)."""
        first = sd["encoder.model.0.conv.conv.weight_v"]
        n_filters = int(first.shape[0])
        idx = sorted({int(k.split(".")[2]) for k in sd if k.startswith("encoder.model.")})
        # downsampling convs: kernel 2 * stride, channels doubling
        strides: List[int] = []
        for i in idx:
            w = sd.get(f"encoder.model.{i}.conv.conv.weight_v")
            if w is not None and i != idx[0] and int(w.shape[0]) == 2 * int(w.shape[1]):
                strides.append(int(w.shape[-1]) // 2)
        last = sd[f"encoder.model.{idx[-1]}.conv.conv.weight_v"]
        n_q = 0
        while f"quantizer.vq.layers.{n_q}._codebook.embed" in sd:
            n_q += 1
        n_lstm = 0
        while any(k.startswith("encoder.") and k.endswith(f"lstm.weight_ih_l{n_lstm}") for k in sd):
            n_lstm += 1
        model = cls(n_filters=n_filters, dimension=int(last.shape[0]), ratios=list(reversed(strides)),
                    n_q=n_q, bins=int(sd["quantizer.vq.layers.0._codebook.embed"].shape[0]), causal=causal,
                    pad_mode=pad_mode, lstm_layers=n_lstm, channels=int(first.shape[1]),
                    kernel_size=int(first.shape[-1]), last_kernel_size=int(last.shape[-1]), **kwargs)
        model.load_state_dict(sd, strict=True)
        model.eval()
        return model
