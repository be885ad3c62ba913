"""The dense recurrence as the ChaCAL line of work builds it: kind `chacal`
(conf/mixer/chacal_dense.yaml; derivation in docs/design.md, "The ChaCAL dense recurrence").

With A the causal softmax attention matrix of a head and a gate g in (0, 1),

    Y = (1 - g) A (I - g A)^{-1} V

The direct part is full attention, and the recurrence reads every past output through the same
scores scaled by g, so one layer composes look-ups: (1 - g) sum_k g^k A^(k+1) V. Solving the
diagonal of g A into the left-hand side turns this into a point of the framework with convex rows
(docs/design.md): over the direct pattern `full` and the recurrent pattern `dense`,

    alpha[i, j] = (1 - g) a[i, j] / (1 - g a[i, i])   (j <= i)
    beta[i, j]  =       g a[i, j] / (1 - g a[i, i])   (j < i)

which is exactly GLRMixer's joint softmax when the recurrent keys are the direct keys and every
recurrent score carries the constant log(g / (1 - g)). So the layer is a GLRMixer with two hooks
changed, and every backend of the glr op, the decoding cache and the mixing matrix carry over.

g = sigmoid(theta_h), one theta per head: learned (mixer.params.learn_g, default) from
logit(mixer.params.g) (default g = 0.5), or fixed at g.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .config import MixerConfig
from .conv import QKVConv, qkv_conv
from .layers import GLRMixer, _conv_theory, _merge_heads
from .registry import register_kind

#: mixer.params of kind chacal and their defaults
CHACAL_PARAMS = {"g": 0.5, "learn_g": True}


class ChacalMixer(GLRMixer):
    def __init__(self, d_model: int, num_heads: int, g: float = 0.5, learn_g: bool = True,
                 chunk_size: int = 64, backend: str = "auto", qkv_conv: QKVConv | None = None,
                 pos_emb: str = "none"):
        if isinstance(g, bool) or not isinstance(g, (int, float)) or not 0.0 < g < 1.0:
            raise ValueError(f"mixer.params.g must be a number in (0, 1) (the recurrence's "
                             f"weight; g = 0 is attention), got {g!r}")
        if not isinstance(learn_g, bool):
            raise ValueError(f"mixer.params.learn_g must be true or false, got {learn_g!r}")
        super().__init__(d_model, num_heads, direct="full", recurrent="dense",
                         chunk_size=chunk_size, backend=backend, qkv_conv=qkv_conv,
                         pos_emb=pos_emb)
        self.kr = None  # the recurrence reads the direct scores: no keys of its own
        logit = torch.full((num_heads,), math.log(g / (1.0 - g)))
        if learn_g:
            self.g_logit = nn.Parameter(logit)
        else:
            self.register_buffer("g_logit", logit)

    @property
    def g(self) -> torch.Tensor:
        """The gate of each head [H]."""
        return torch.sigmoid(self.g_logit)

    def _recurrent_keys(self, x, k, pos):
        return k

    def _recurrent_offset(self) -> torch.Tensor:
        # log(g / (1 - g)) = theta: the joint softmax then weighs the past outputs g / (1 - g)
        # times the values at equal score, which is the ratio beta / alpha above
        return self.g_logit

    @torch.no_grad()
    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """The causal softmax attention matrix A [B, H, n, n] of input x [B, n, d_model]."""
        q, k, _ = self._qkv(x)
        return self._attention(x, q, k)

    def _attention(self, x, q, k):
        n = x.shape[1]
        pos = torch.arange(n, device=x.device)
        keys = pos.expand(n, -1)
        s = self.pos.bias((q @ k.transpose(-1, -2)) / math.sqrt(self.head_dim), pos, keys)
        return torch.softmax(s.masked_fill(keys > pos.unsqueeze(-1), float("-inf")), dim=-1)

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        """The defining formula, materialised (O(n^2) memory; tests only):
        Y = (1 - g) A (I - g A)^{-1} V per head, by a dense triangular solve."""
        q, k, v = self._qkv(x)
        a = self._attention(x, q, k)
        g = self.g.view(-1, 1, 1)
        eye = torch.eye(x.shape[1], dtype=a.dtype, device=a.device)
        u = torch.linalg.solve_triangular(eye - g * a, v, upper=False)  # (I - g A)^{-1} V
        return self.out(_merge_heads((1 - g) * (a @ u)))

    # -- theory (mixers.registry) ------------------------------------------------------------
    def state_size(self, n: int) -> int:
        """Floats kept to decode token n: (k, v) per past token for the direct part and the
        output y per past token for the recurrence (its keys are the direct keys, kept once)."""
        per_head = (2 * self.direct.cache_size(n) + self.recurrent.cache_size(n)) * self.head_dim
        return per_head * self.num_heads + _conv_theory(self)[0]

    def flops_per_token(self, n: int) -> int:
        """Mixing flops of token n - 1: a score per direct read (the recurrent reads reuse them)
        and a weighted sum per read, 2 * head_dim flops each, for every head."""
        i = n - 1
        direct, recurrent = len(self.direct.reads(i)), len(self.recurrent.reads(i))
        return (2 * (2 * direct + recurrent) * self.head_dim * self.num_heads
                + _conv_theory(self)[1])


@register_kind("chacal", keys=("chunk_size", "backend", "params"), qkv_conv=True,
               positions=True)
def _build_chacal(cfg: MixerConfig, d_model: int, num_heads: int, pos_emb: str = "none"
                  ) -> nn.Module:
    unknown = sorted(set(cfg.params) - set(CHACAL_PARAMS))
    if unknown:
        raise ValueError(f"mixer.params: kind 'chacal' takes only {sorted(CHACAL_PARAMS)}, got "
                         f"{unknown}")
    params = {**CHACAL_PARAMS, **cfg.params}
    return ChacalMixer(d_model, num_heads, g=params["g"], learn_g=params["learn_g"],
                       chunk_size=cfg.chunk_size, backend=cfg.backend,
                       qkv_conv=qkv_conv(cfg, d_model), pos_emb=pos_emb)
