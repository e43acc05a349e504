"""Vector quantizers: Euclidean codebook with k-means init and EMA updates, stacked residually.

Buffer names (inited, cluster_size, embed, embed_avg) and the module path
``vq.layers.N._codebook`` match released EnCodec / WavTokenizer checkpoints.
"""
from __future__ import annotations

import math
from typing import List, NamedTuple, Optional

import torch
from torch import nn
import torch.nn.functional as F


def pick_rows(samples: torch.Tensor, n: int) -> torch.Tensor:
    """n rows of samples: a random subset, or drawn with replacement if there are too few."""
    m = samples.shape[0]
    if m >= n:
        idx = torch.randperm(m, device=samples.device)[:n]
    else:
        idx = torch.randint(0, m, (n,), device=samples.device)
    return samples[idx]


def kmeans(samples: torch.Tensor, k: int, iters: int = 10):
    """Lloyd's algorithm from random rows. Returns (centroids [k, D], counts [k])."""
    d = samples.shape[-1]
    means = pick_rows(samples, k)
    counts = torch.zeros(k, dtype=torch.long, device=samples.device)
    for _ in range(iters):
        # nearest mean by squared Euclidean distance (expanded form: no N x k x D tensor)
        dist = (samples.pow(2).sum(1, keepdim=True) - 2 * samples @ means.t()
                + means.pow(2).sum(1)[None, :])
        assign = dist.min(dim=-1).indices
        counts = torch.bincount(assign, minlength=k)
        empty = counts == 0
        sums = torch.zeros(k, d, dtype=samples.dtype, device=samples.device)
        sums.index_add_(0, assign, samples)
        new_means = sums / counts.clamp(min=1)[:, None].to(samples.dtype)
        means = torch.where(empty[:, None], means, new_means)
    return means, counts


class EuclideanCodebook(nn.Module):
    def __init__(self, dim: int, codebook_size: int, kmeans_init: bool = True, kmeans_iters: int = 10,
                 decay: float = 0.99, epsilon: float = 1e-5, threshold_ema_dead_code: int = 2):
        super().__init__()
        self.dim = dim
        self.codebook_size = codebook_size
        self.kmeans_iters = kmeans_iters
        self.decay = decay
        self.epsilon = epsilon
        self.threshold_ema_dead_code = threshold_ema_dead_code
        if kmeans_init:
            embed = torch.zeros(codebook_size, dim)
        else:
            embed = torch.empty(codebook_size, dim)
            nn.init.kaiming_uniform_(embed)
        self.register_buffer("inited", torch.tensor([0.0 if kmeans_init else 1.0]))
        self.register_buffer("cluster_size", torch.zeros(codebook_size))
        self.register_buffer("embed", embed)
        self.register_buffer("embed_avg", embed.clone())

    # --- initialisation / maintenance (training) ---
    @torch.no_grad()
    def init_from_data(self, x: torch.Tensor, force: bool = False):
        """k-means initialise from rows of x [N, D] (once, unless force)."""
        if bool(self.inited.item()) and not force:
            return
        means, counts = kmeans(x, self.codebook_size, self.kmeans_iters)
        self.embed.copy_(means)
        self.embed_avg.copy_(means)
        self.cluster_size.copy_(counts.to(self.cluster_size.dtype))
        self.inited.fill_(1.0)

    @torch.no_grad()
    def expire_dead_codes(self, x: torch.Tensor):
        if self.threshold_ema_dead_code == 0:
            return
        dead = self.cluster_size < self.threshold_ema_dead_code
        if not bool(dead.any()):
            return
        fresh = pick_rows(x, self.codebook_size)
        self.embed.copy_(torch.where(dead[:, None], fresh, self.embed))

    @torch.no_grad()
    def ema_update(self, x: torch.Tensor, codes: torch.Tensor):
        onehot = F.one_hot(codes, self.codebook_size).to(x.dtype)
        self.cluster_size.mul_(self.decay).add_(onehot.sum(0), alpha=1 - self.decay)
        self.embed_avg.mul_(self.decay).add_((x.t() @ onehot).t(), alpha=1 - self.decay)
        total = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.epsilon) / (total + self.codebook_size * self.epsilon) * total
        self.embed.copy_(self.embed_avg / smoothed[:, None])

    # --- inference ---
    def nearest(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, D] -> index of the nearest codeword (squared Euclidean)."""
        e = self.embed.t()
        score = -(x.pow(2).sum(1, keepdim=True) - 2 * x @ e + e.pow(2).sum(0, keepdim=True))
        return score.max(dim=-1).indices

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x [..., D] -> codes [...]."""
        flat = x.reshape(-1, x.shape[-1])
        return self.nearest(flat).view(*x.shape[:-1])

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return F.embedding(codes, self.embed)

    def forward(self, x: torch.Tensor):
        """x [..., D] -> (quantized [..., D], codes [...]); updates the codebook in training mode."""
        flat = x.reshape(-1, x.shape[-1])
        self.init_from_data(flat.detach())
        codes_flat = self.nearest(flat)
        codes = codes_flat.view(*x.shape[:-1])
        quantized = self.decode(codes)
        if self.training:
            self.expire_dead_codes(flat.detach())
            self.ema_update(flat.detach(), codes_flat)
        return quantized, codes


class VectorQuantization(nn.Module):
    """One codebook on (B, D, T) tensors (no projection: codebook dim == dim)."""

    def __init__(self, dim: int, codebook_size: int, decay: float = 0.99, epsilon: float = 1e-5,
                 kmeans_init: bool = True, kmeans_iters: int = 50, threshold_ema_dead_code: int = 2,
                 commitment_weight: float = 1.0):
        super().__init__()
        self.commitment_weight = commitment_weight
        self.codebook_size = codebook_size
        self._codebook = EuclideanCodebook(dim, codebook_size, kmeans_init=kmeans_init,
                                           kmeans_iters=kmeans_iters, decay=decay, epsilon=epsilon,
                                           threshold_ema_dead_code=threshold_ema_dead_code)

    @property
    def codebook(self) -> torch.Tensor:
        return self._codebook.embed

    def encode(self, x):  # (B, D, T) -> (B, T)
        return self._codebook.encode(x.transpose(1, 2))

    def decode(self, codes):  # (B, T) -> (B, D, T)
        return self._codebook.decode(codes).transpose(1, 2)

    def forward(self, x):
        xt = x.transpose(1, 2)
        q, codes = self._codebook(xt)
        loss = torch.zeros(1, device=x.device)
        if self.training:
            q = xt + (q - xt).detach()  # straight-through
            if self.commitment_weight > 0:
                loss = loss + F.mse_loss(q.detach(), xt) * self.commitment_weight
        return q.transpose(1, 2), codes, loss


class ResidualVectorQuantization(nn.Module):
    """Stack of VectorQuantization layers; each quantizes what the previous ones left."""

    def __init__(self, *, num_quantizers: int, **kwargs):
        super().__init__()
        self.layers = nn.ModuleList([VectorQuantization(**kwargs) for _ in range(num_quantizers)])

    def forward(self, x, n_q: Optional[int] = None):
        n_q = n_q or len(self.layers)
        out = torch.zeros_like(x)
        residual = x
        codes, losses = [], []
        for layer in self.layers[:n_q]:
            q, c, l = layer(residual)
            residual = residual - q.detach()
            out = out + q
            codes.append(c)
            losses.append(l)
        return out, torch.stack(codes), torch.stack(losses)

    def encode(self, x, n_q: Optional[int] = None) -> torch.Tensor:
        n_q = n_q or len(self.layers)
        residual = x
        codes = []
        for layer in self.layers[:n_q]:
            c = layer.encode(residual)
            codes.append(c)
            residual = residual - layer.decode(c)
        return torch.stack(codes)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        out = None
        for i, c in enumerate(codes):
            q = self.layers[i].decode(c)
            out = q if out is None else out + q
        return out


class QuantizedResult(NamedTuple):
    quantized: torch.Tensor  # (B, D, T)
    codes: torch.Tensor      # (n_q, B, T)
    bandwidth: torch.Tensor  # kbit/s actually used
    penalty: torch.Tensor    # commitment loss (0 in eval)


class ResidualVectorQuantizer(nn.Module):
    """Wrapper that picks the number of codebooks from a bandwidth; holds ``vq``."""

    def __init__(self, dimension: int = 256, n_q: int = 8, bins: int = 1024, decay: float = 0.99,
                 kmeans_init: bool = True, kmeans_iters: int = 50, threshold_ema_dead_code: int = 2):
        super().__init__()
        self.n_q = n_q
        self.dimension = dimension
        self.bins = bins
        self.vq = ResidualVectorQuantization(num_quantizers=n_q, dim=dimension, codebook_size=bins,
                                             decay=decay, kmeans_init=kmeans_init,
                                             kmeans_iters=kmeans_iters,
                                             threshold_ema_dead_code=threshold_ema_dead_code)

    def bandwidth_per_quantizer(self, frame_rate: float) -> float:
        return math.log2(self.bins) * frame_rate  # bit/s

    def n_q_for_bandwidth(self, frame_rate: float, bandwidth_kbps: Optional[float]) -> int:
        if bandwidth_kbps and bandwidth_kbps > 0:
            return int(max(1, math.floor(bandwidth_kbps * 1000 / self.bandwidth_per_quantizer(frame_rate))))
        return self.n_q

    def forward(self, x, n_q: Optional[int] = None, frame_rate: float = 75.0) -> QuantizedResult:
        n_q = min(n_q or self.n_q, self.n_q)
        q, codes, losses = self.vq(x, n_q=n_q)
        bw = torch.tensor(n_q * self.bandwidth_per_quantizer(frame_rate) / 1000.0)
        return QuantizedResult(q, codes, bw, losses.mean())

    def encode(self, x, n_q: Optional[int] = None) -> torch.Tensor:
        return self.vq.encode(x, n_q=min(n_q or self.n_q, self.n_q))

    def decode(self, codes) -> torch.Tensor:
        return self.vq.decode(codes)
