"""The short causal depthwise convolution every mixer kind may take (docs/design.md 1.6).

`mixer.short_conv = K` (0 = off) puts a kernel-K causal depthwise convolution on the mixer's
input, as Zoology, Based and fla's layers do on their q, k, v. It lets a mixer see the few tokens
before each position directly (a key next to its value), which is what makes recall learnable
at small budgets. Being one module in front of any layer, it is the same front end for every
kind, so a leaderboard compares patterns, not front ends.
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
