"""Vocos-style decoder: backbone (pos_net + ConvNeXt blocks with AdaLayerNorm) and the iSTFT head."""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn
import torch.nn.functional as F


def swish(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(x)


def group_norm(ch: int, groups: int = 32) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=groups, num_channels=ch, eps=1e-6, affine=True)


class ChannelAffine(nn.Module):
    """x * weight + bias per channel: the streamable stand-in for pos_net's GroupNorm (pos_net_norm "affine").

    GroupNorm over time normalises with statistics of the whole input, so no bounded window reproduces it;
    with fixed statistics folded into its affine it becomes this pointwise layer (same tensor names)."""

    def __init__(self, ch: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ch))
        self.bias = nn.Parameter(torch.zeros(ch))

    def forward(self, x):  # (B, C, T)
        return x * self.weight[None, :, None] + self.bias[None, :, None]


def pos_norm(ch: int, kind: str) -> nn.Module:
    if kind == "group":
        return group_norm(ch)
    if kind == "affine":
        return ChannelAffine(ch)
    raise ValueError(f"pos_net_norm must be 'group' or 'affine', not {kind!r}")


class CausalConv1d(nn.Conv1d):
    """nn.Conv1d (stride 1) padded with kernel - 1 zeros on the left only: output t sees inputs <= t.
    Same parameters (names, shapes) as the centred nn.Conv1d(padding=kernel // 2) it replaces."""

    def __init__(self, cin: int, cout: int, kernel: int, groups: int = 1):
        super().__init__(cin, cout, kernel, padding=0, groups=groups)

    def forward(self, x):
        return super().forward(F.pad(x, (self.kernel_size[0] - 1, 0)))


def conv_same_or_causal(cin: int, cout: int, kernel: int, causal: bool, groups: int = 1) -> nn.Conv1d:
    if causal:
        return CausalConv1d(cin, cout, kernel, groups=groups)
    return nn.Conv1d(cin, cout, kernel, padding=kernel // 2, groups=groups)


class ResnetBlock(nn.Module):
    """GroupNorm -> swish -> conv3 -> GroupNorm -> swish -> dropout -> conv3, plus identity.
    causal: the convs pad 2 frames on the left only."""

    def __init__(self, channels: int, dropout: float = 0.1, norm: str = "group", causal: bool = False):
        super().__init__()
        self.norm1 = pos_norm(channels, norm)
        self.conv1 = conv_same_or_causal(channels, channels, 3, causal)
        self.norm2 = pos_norm(channels, norm)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = conv_same_or_causal(channels, channels, 3, causal)

    def forward(self, x):
        h = self.conv1(swish(self.norm1(x)))
        h = self.conv2(self.dropout(swish(self.norm2(h))))
        return x + h


class AttnBlock(nn.Module):
    """Single-head self-attention over time with 1x1-conv q/k/v/out projections, plus identity.

    window (left, right): query t attends keys t-left .. t+right only (None: the whole input)."""

    def __init__(self, channels: int, norm: str = "group", window: Optional[Sequence[int]] = None):
        super().__init__()
        self.window = None if window is None else (int(window[0]), int(window[1]))
        self.norm = pos_norm(channels, norm)
        self.q = nn.Conv1d(channels, channels, 1)
        self.k = nn.Conv1d(channels, channels, 1)
        self.v = nn.Conv1d(channels, channels, 1)
        self.proj_out = nn.Conv1d(channels, channels, 1)

    def forward(self, x):
        h = self.norm(x)
        q, k, v = self.q(h), self.k(h), self.v(h)  # (B, C, T)
        c = q.shape[1]
        scores = torch.bmm(q.transpose(1, 2), k) * (c ** -0.5)  # (B, Tq, Tk)
        if self.window is not None:
            t = scores.shape[1]
            d = torch.arange(t, device=x.device)[None, :] - torch.arange(t, device=x.device)[:, None]  # key - query
            scores = scores.masked_fill((d < -self.window[0]) | (d > self.window[1]), float("-inf"))
        attn = torch.softmax(scores, dim=2)
        out = torch.bmm(v, attn.transpose(1, 2))  # (B, C, Tq)
        return x + self.proj_out(out)


class AdaLayerNorm(nn.Module):
    """LayerNorm without affine, then a per-condition scale and shift (embedding tables)."""

    def __init__(self, num_embeddings: int, dim: int, eps: float = 1e-6):
        super().__init__()
        self.dim = dim
        self.eps = eps
        self.scale = nn.Embedding(num_embeddings, dim)
        self.shift = nn.Embedding(num_embeddings, dim)
        nn.init.ones_(self.scale.weight)
        nn.init.zeros_(self.shift.weight)

    def forward(self, x, cond_id: torch.Tensor):
        y = F.layer_norm(x, (self.dim,), eps=self.eps)
        return y * self.scale(cond_id) + self.shift(cond_id)


class ConvNeXtBlock(nn.Module):
    """Depthwise conv7 -> (Ada)LayerNorm -> Linear -> GELU -> Linear -> * gamma, plus identity."""

    def __init__(self, dim: int, intermediate_dim: int, layer_scale_init_value: float,
                 adanorm_num_embeddings: Optional[int] = None, causal: bool = False):
        super().__init__()
        self.dwconv = conv_same_or_causal(dim, dim, 7, causal, groups=dim)  # causal: 6 frames of left padding
        self.adanorm = bool(adanorm_num_embeddings)
        self.norm = (AdaLayerNorm(adanorm_num_embeddings, dim, eps=1e-6) if self.adanorm
                     else nn.LayerNorm(dim, eps=1e-6))
        self.pwconv1 = nn.Linear(dim, intermediate_dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(intermediate_dim, dim)
        self.gamma = (nn.Parameter(layer_scale_init_value * torch.ones(dim))
                      if layer_scale_init_value > 0 else None)

    def forward(self, x, cond_id: Optional[torch.Tensor] = None):
        h = self.dwconv(x).transpose(1, 2)  # (B, T, C)
        h = self.norm(h, cond_id) if self.adanorm else self.norm(h)
        h = self.pwconv2(self.act(self.pwconv1(h)))
        if self.gamma is not None:
            h = self.gamma * h
        return x + h.transpose(1, 2)


class VocosBackbone(nn.Module):
    """Features (B, input_channels, F) -> hidden (B, F, dim)."""

    def __init__(self, input_channels: int, dim: int, intermediate_dim: int, num_layers: int,
                 layer_scale_init_value: Optional[float] = None,
                 adanorm_num_embeddings: Optional[int] = None, dropout: float = 0.1,
                 pos_net_norm: str = "group", attention_window: Optional[Sequence[int]] = None,
                 causal: bool = False):
        """pos_net_norm "affine" and attention_window make the backbone local in time (streamable exactly,
        docs/STREAMING.md); the defaults are upstream's. causal: every convolution pads on the left only (frame t
        sees frames <= t), which needs pos_net_norm "affine" and attention_window [left, 0]."""
        super().__init__()
        if causal and (pos_net_norm != "affine" or attention_window is None or int(attention_window[1]) != 0):
            raise ValueError("a causal backbone needs pos_net_norm 'affine' and attention_window [left, 0]")
        self.input_channels = input_channels
        self.causal = causal
        self.embed = conv_same_or_causal(input_channels, dim, 7, causal)
        self.adanorm = bool(adanorm_num_embeddings)
        self.norm = (AdaLayerNorm(adanorm_num_embeddings, dim, eps=1e-6) if self.adanorm
                     else nn.LayerNorm(dim, eps=1e-6))
        scale = layer_scale_init_value or 1.0 / num_layers
        self.convnext = nn.ModuleList([
            ConvNeXtBlock(dim, intermediate_dim, scale, adanorm_num_embeddings, causal) for _ in range(num_layers)
        ])
        self.final_layer_norm = nn.LayerNorm(dim, eps=1e-6)
        # truncated-normal init for embed / ConvNeXt layers (pos_net keeps PyTorch defaults)
        for m in self.modules():
            if isinstance(m, (nn.Conv1d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        pn = pos_net_norm
        self.pos_net = nn.Sequential(
            ResnetBlock(dim, dropout, pn, causal), ResnetBlock(dim, dropout, pn, causal),
            AttnBlock(dim, pn, attention_window),
            ResnetBlock(dim, dropout, pn, causal), ResnetBlock(dim, dropout, pn, causal), pos_norm(dim, pn),
        )

    def forward(self, x, bandwidth_id: Optional[torch.Tensor] = None):
        x = self.pos_net(self.embed(x))
        x = x.transpose(1, 2)
        if self.adanorm:
            if bandwidth_id is None:
                raise ValueError("this backbone is conditioned: pass bandwidth_id")
            x = self.norm(x, bandwidth_id)
        else:
            x = self.norm(x)
        x = x.transpose(1, 2)
        for block in self.convnext:
            x = block(x, bandwidth_id)
        return self.final_layer_norm(x.transpose(1, 2))


class ISTFT(nn.Module):
    """Inverse STFT with a Hann window, "same" padding (or torch.istft center mode)."""

    def __init__(self, n_fft: int, hop_length: int, win_length: int, padding: str = "same"):
        super().__init__()
        if padding not in ("same", "center"):
            raise ValueError("padding must be 'same' or 'center'")
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.win_length = win_length
        self.padding = padding
        self.register_buffer("window", torch.hann_window(win_length))

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        """spec: complex (B, n_fft/2+1, F) -> audio (B, F * hop) for "same" padding."""
        if self.padding == "center":
            return torch.istft(spec, self.n_fft, self.hop_length, self.win_length, self.window, center=True)
        trim = (self.win_length - self.hop_length) // 2
        b, _, n = spec.shape
        frames = torch.fft.irfft(spec, self.n_fft, dim=1, norm="backward") * self.window[None, :, None]
        total = (n - 1) * self.hop_length + self.win_length
        # overlap-add of frames (B, win, F) into (B, total)
        y = F.fold(frames, output_size=(1, total), kernel_size=(1, self.win_length),
                   stride=(1, self.hop_length))[:, 0, 0, trim:total - trim]
        wsq = self.window.square()[None, :, None].expand(1, -1, n)
        env = F.fold(wsq, output_size=(1, total), kernel_size=(1, self.win_length),
                     stride=(1, self.hop_length))[0, 0, 0, trim:total - trim]
        if not bool((env > 1e-11).all()):
            raise RuntimeError("window envelope has zeros (NOLA violated)")
        return y / env


class ISTFTHead(nn.Module):
    """Hidden (B, F, dim) -> Linear -> (log-magnitude, phase) -> complex spectrum -> iSTFT."""

    def __init__(self, dim: int, n_fft: int, hop_length: int, padding: str = "same"):
        super().__init__()
        self.out = nn.Linear(dim, n_fft + 2)
        self.istft = ISTFT(n_fft, hop_length, n_fft, padding)

    def spectrum(self, x: torch.Tensor) -> torch.Tensor:
        y = self.out(x).transpose(1, 2)
        logmag, phase = y.chunk(2, dim=1)
        mag = torch.clip(torch.exp(logmag), max=1e2)
        return mag * (torch.cos(phase) + 1j * torch.sin(phase))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.istft(self.spectrum(x))
