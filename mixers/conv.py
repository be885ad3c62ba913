"""The short causal depthwise convolution every mixer kind may take (docs/design.md 1.6).

`mixer.short_conv = K` (0 = off) puts a kernel-K causal depthwise convolution (then SiLU) where
`mixer.short_conv_on` says:

    input  on the layer's input (`WithShortConv`): one module in front of any kind, fla
           layers included, so a leaderboard compares patterns with the same front end
    qkv    on q, k and v after their projection (`QKVConv`), as Zoology, Based and fla's layers
           do: kinds registered with qkv_conv=True (glr, expanded, linear_attention)

It lets a mixer see the few tokens before each position directly (a key next to its value),
which is what makes recall learnable at small budgets. The placements differ for attention: on
the input, the values are convolved too (docs/results/paper_table1.md measures both).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ShortConv(nn.Module):
    """y_t = sum_{s < K} w_s * x_{t-s} per channel (zero before the sequence start), then SiLU."""

    def __init__(self, d_model: int, kernel_size: int):
        super().__init__()
        if kernel_size < 1:
            raise ValueError(f"mixer.short_conv must be >= 1 here, got {kernel_size}")
        self.kernel_size = kernel_size
        self.conv = nn.Conv1d(d_model, d_model, kernel_size, groups=d_model,
                              padding=kernel_size - 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, n, d]
        n = x.shape[1]
        return F.silu(self.conv(x.transpose(1, 2))[..., :n].transpose(1, 2))

    def step(self, x_t: torch.Tensor, window: torch.Tensor | None):
        """One token: x_t [B, d], window [B, d, K-1] of the previous inputs (None at t = 0)."""
        if window is None:
            window = x_t.new_zeros(x_t.shape[0], x_t.shape[1], self.kernel_size - 1)
        full = torch.cat([window, x_t.unsqueeze(-1)], dim=-1)  # [B, d, K]
        y = (full * self.conv.weight.squeeze(1)).sum(-1) + self.conv.bias
        return F.silu(y), full[..., 1:]


class WithShortConv(nn.Module):
    """A mixer with a ShortConv in front; forwards the mixer's theory, adding the conv's."""

    def __init__(self, mixer: nn.Module, d_model: int, kernel_size: int):
        super().__init__()
        self.short_conv = ShortConv(d_model, kernel_size)
        self.mixer = mixer
        self.d_model = d_model

    def forward(self, x):
        return self.mixer(self.short_conv(x))

    def step(self, x_t, cache=None):
        cache = cache if cache is not None else {"conv": None, "mixer": None}
        u, cache["conv"] = self.short_conv.step(x_t, cache["conv"])
        y, cache["mixer"] = self.mixer.step(u, cache["mixer"])
        return y, cache

    @property
    def patterns(self):
        return self.mixer.patterns

    @property
    def state_expanded(self) -> bool:
        return self.mixer.state_expanded

    def cache_size(self, n: int) -> int:
        return self.mixer.cache_size(n)

    def state_size(self, n: int) -> int:
        # the conv keeps the last K - 1 inputs
        return self.mixer.state_size(n) + (self.short_conv.kernel_size - 1) * self.d_model

    def flops_per_token(self, n: int) -> int:
        return self.mixer.flops_per_token(n) + 2 * self.short_conv.kernel_size * self.d_model


class QKVConv(nn.Module):
    """The qkv placement: a ShortConv over the 3 d_model channels of a layer's fused q, k, v
    projection (depthwise, so each of q, k, v is convolved on its own), kept by the layer
    beside its `qkv` Linear (parameter names of the layers without it are unchanged)."""

    def __init__(self, d_model: int, kernel_size: int):
        super().__init__()
        self.short_conv = ShortConv(3 * d_model, kernel_size)
        self.d_model = d_model

    def forward(self, qkv: torch.Tensor) -> torch.Tensor:  # [B, n, 3 d]
        return self.short_conv(qkv)

    def step(self, qkv_t: torch.Tensor, cache: dict) -> torch.Tensor:
        """One token's [B, 3 d] projection; keeps its window in cache["qkv_conv"]."""
        y, cache["qkv_conv"] = self.short_conv.step(qkv_t, cache.get("qkv_conv"))
        return y

    def state_size(self) -> int:
        return (self.short_conv.kernel_size - 1) * 3 * self.d_model

    def flops_per_token(self) -> int:
        return 2 * self.short_conv.kernel_size * 3 * self.d_model


def qkv_conv(cfg, d_model: int) -> QKVConv | None:
    """The QKVConv a layer built from MixerConfig `cfg` carries (None: none there)."""
    if cfg.short_conv and cfg.short_conv_on == "qkv":
        return QKVConv(d_model, cfg.short_conv)
    return None
