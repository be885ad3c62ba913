"""The state-expanded mixers of docs/design.md 1.4: kind `expanded` (conf/mixer/se_*.yaml).

Each position carries a head_dim x head_dim matrix state instead of a vector,

    S_i = sum_{j in A(i)} alpha[i,j] k_j v_j^T + sum_{j in B(i)} beta[i,j] S_j,    o_i = S_i^T q_i

computed by `glr_expanded` as masked linear attention with M = (I - B)^{-1} A. The coefficients
come from their own projections, never from S, which is what makes the masked form exact:

    softmax (default, docs/design.md 1.2): scores cq_i . ck_j / sqrt(d) over A(i) and
        cq_i . ckr_j / sqrt(d) over B(i), one softmax over both lists: rows of [A | B] are convex,
        so every S_i is a convex mixture of outer products and stays bounded at any n.
    decay (Mamba-2 / GLA style): a per-head gate g_i = sigmoid(w . x_i + b) splits the row,
        alpha = (1 - g_i) softmax(direct scores), beta = g_i softmax(recurrent scores). With
        recurrent=first this is S_i = (1 - g_i) k_i v_i^T + g_i S_{i-1}. Rows stay convex.
    signed (docs/design.md 1.10): the softmax rows with beta times a per-token, per-head sign
        sigma_i in (-1, 1) (mixers/signed.py). Rows of [A | |B|] sum to at most 1, so
        ||S_i|| <= max_j ||k_j v_j^T|| in any norm, at any n; the carried state may flip sign.

The readout is o_i, normalised per head by RMS (as GLA and RetNet do), then the output
projection. q is scaled by 1/sqrt(head_dim) before the op (the op has no scale inside).

`step` decodes with the patterns' live sets: (ck, k, v) per direct entry, (ckr, S) per recurrent
entry, so se_pow2_cache keeps O(log n) matrix states per head (tests/mixers/test_expanded.py).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .config import MixerConfig
from .conv import QKVConv, qkv_conv
from .layers import _conv_theory, _merge_heads, _project_qkv, _project_qkv_step, _split_heads
from .ops.chunked import gather_dot
from .ops.expanded import BACKENDS_EXPANDED, glr_expanded
from .patterns import make_direct, make_pattern
from .positions import ScorePositions
from .registry import register_kind
from .signed import SignGate, coefficient_rule, signed_rows

COEFFICIENT_RULES = ("softmax", "decay", "signed")


class ExpandedMixer(nn.Module):
    def __init__(self, d_model: int, num_heads: int, direct: str = "self",
                 recurrent: str = "none", cache_efficient: bool = False, chunk_size: int = 64,
                 backend: str = "auto", coefficients: str = "softmax", eps: float = 1e-6,
                 qkv_conv: QKVConv | None = None, pos_emb: str = "none"):
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by num_heads ({num_heads})")
        self.num_heads, self.head_dim = num_heads, d_model // num_heads
        # rope rotates the read-out's q and k and the coefficient query and keys; alibi biases
        # the coefficient scores (the read-out q . k is linear, not a softmax score)
        self.pos = ScorePositions(pos_emb, num_heads, self.head_dim)
        self.direct = make_direct(direct)
        self.recurrent = make_pattern(recurrent, cache_efficient=cache_efficient)
        self.chunk_size, self.backend, self.coefficients = chunk_size, backend, coefficients
        self.has_recurrence = self.recurrent.num_terms != 0
        coefficient_rule({"coefficients": coefficients}, "expanded", COEFFICIENT_RULES,
                         self.has_recurrence)
        # q, k, v of the state; cq, ck the coefficient query and direct keys; ckr the recurrent
        # coefficient keys (docs/design.md 1.4: scores from a separate query and keys)
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.qkv_conv = qkv_conv  # the coefficient projections stay unconvolved
        self.coef = nn.Linear(d_model, (3 if self.has_recurrence else 2) * d_model, bias=False)
        self.gate = (nn.Linear(d_model, num_heads)
                     if coefficients == "decay" and self.has_recurrence else None)
        self.sign = SignGate(d_model, num_heads) if coefficients == "signed" else None
        self.norm = nn.RMSNorm(self.head_dim, eps=eps)
        self.out = nn.Linear(d_model, d_model, bias=False)

    # -- coefficients ------------------------------------------------------------------------
    def _rows(self, s, r, x):
        """[alpha | beta] rows from direct scores s [.., Ka] and recurrent scores r [.., Kb]
        (-inf where nothing is read); x the layer input for the decay or sign gate ([b, n, d]
        or [b, d])."""
        if r is None:
            return torch.softmax(s, dim=-1), None
        if self.gate is None:
            coef = torch.softmax(torch.cat([s, r], dim=-1), dim=-1)
            alpha, beta = coef.split([s.shape[-1], r.shape[-1]], dim=-1)
            if self.sign is not None:
                beta = signed_rows(beta, self.sign(x))
            return alpha, beta
        g = torch.sigmoid(self.gate(x))  # [b, n, h] or [b, h]
        g = g.transpose(1, 2) if g.dim() == 3 else g  # -> [b, h, n] or [b, h]
        # a row without recurrent reads (token 0) puts all its weight on the direct part
        has_rec = torch.isfinite(r).any(-1)
        g = torch.where(has_rec, g, torch.zeros_like(g)).unsqueeze(-1)
        beta = torch.softmax(r.masked_fill(~has_rec.unsqueeze(-1), 0.0), dim=-1)
        beta = torch.where(torch.isfinite(r), beta, torch.zeros_like(beta))
        return (1 - g) * torch.softmax(s, dim=-1), g * beta

    def _readout(self, o):
        return self.norm(o)

    # -- parallel form ------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[1]
        scale = 1.0 / math.sqrt(self.head_dim)
        pos = torch.arange(n, device=x.device)
        q, k, v = (_split_heads(t, self.num_heads) for t in _project_qkv(self, x))
        q, k = self.pos.rotate(q, pos), self.pos.rotate(k, pos)
        coef = [self.pos.rotate(_split_heads(t, self.num_heads), pos) for t in self.coef(x).chunk(
            3 if self.has_recurrence else 2, dim=-1)]
        a_idx = self.direct.index_on(n, x.device)  # checked once, cached per device
        b_idx = self.recurrent.index_on(n, x.device)
        s = self.pos.bias(gather_dot(coef[0], a_idx.clamp(min=0), coef[1], n) * scale, pos, a_idx)
        s = s.masked_fill(a_idx < 0, float("-inf"))
        r = None
        if self.has_recurrence:
            r = self.pos.bias(gather_dot(coef[0], b_idx.clamp(min=0), coef[2], n) * scale, pos,
                              b_idx)
            r = r.masked_fill(b_idx < 0, float("-inf"))
        alpha, beta = self._rows(s, r, x)
        if beta is None:
            beta = alpha.new_zeros(*alpha.shape[:-1], 0)
        o = glr_expanded(q * scale, k, v, alpha, a_idx, beta, b_idx, backend=self.backend,
                         chunk_size=self.chunk_size)
        return self.out(_merge_heads(self._readout(o)))

    # -- decoding ---------------------------------------------------------------------------
    def step(self, x_t: torch.Tensor, cache: dict | None = None):
        """One token: x_t [B, d_model] -> (y_t [B, d_model], cache).

        The cache holds (ck, k, v) for the direct entries a later token reads and (ckr, S) for
        the live matrix states, pruned after every step to the patterns' live sets."""
        if cache is None:
            cache = {"t": 0, "direct": {}, "recurrent": {}}
        t, b, h, dh = cache["t"], x_t.shape[0], self.num_heads, self.head_dim
        scale = 1.0 / math.sqrt(dh)
        pos = torch.tensor(t, device=x_t.device)  # the position index the cache carries
        q, k, v = (u.view(b, h, dh) for u in _project_qkv_step(self, x_t, cache))
        q, k = self.pos.rotate(q, pos), self.pos.rotate(k, pos)
        coef = [self.pos.rotate(u.view(b, h, dh), pos) for u in self.coef(x_t).chunk(
            3 if self.has_recurrence else 2, dim=-1)]
        cache["direct"][t] = (coef[1], k, v)
        read = list(self.direct.reads(t))
        direct = [cache["direct"][j] for j in read]
        ck = torch.stack([e[0] for e in direct], dim=2)  # [b, h, m, dh]
        s = self.pos.bias((ck @ coef[0].unsqueeze(-1)).squeeze(-1) * scale, pos,
                          torch.tensor(read, device=x_t.device))
        r = None
        if self.has_recurrence:
            reads = list(self.recurrent.reads(t))
            rec = [cache["recurrent"][j] for j in reads]
            if rec:
                ckr = torch.stack([e[0] for e in rec], dim=2)
                r = self.pos.bias((ckr @ coef[0].unsqueeze(-1)).squeeze(-1) * scale, pos,
                                  torch.tensor(reads, device=x_t.device))
            else:  # token 0: no past state; the same rows as the parallel form's -inf padding
                r = s.new_full((b, h, 1), float("-inf"))
        alpha, beta = self._rows(s, r, x_t)
        ks = torch.stack([e[1] for e in direct], dim=2)
        vs = torch.stack([e[2] for e in direct], dim=2)
        S = (alpha.unsqueeze(-1) * ks).transpose(-1, -2) @ vs  # [b, h, dh, dh]
        if self.has_recurrence and rec:
            past = torch.stack([e[1] for e in rec], dim=2)  # [b, h, m, dh, dh]
            S = S + (beta[..., None, None] * past).sum(2)
        o = ((q * scale).unsqueeze(-2) @ S).squeeze(-2)
        if self.has_recurrence:
            cache["recurrent"][t] = (coef[2], S)
            live = set(self.recurrent.live(t))
            cache["recurrent"] = {j: e for j, e in cache["recurrent"].items() if j in live}
        live = set(self.direct.live(t))
        cache["direct"] = {j: e for j, e in cache["direct"].items() if j in live}
        cache["t"] = t + 1
        return self.out(self._readout(o).reshape(b, -1)), cache

    # -- theory (mixers.registry) ------------------------------------------------------------
    state_expanded = True

    @property
    def patterns(self):
        return self.direct, self.recurrent

    def cache_size(self, n: int) -> int:
        """Entries per head kept to decode token n: direct (ck, k, v) triples plus matrix
        states."""
        return self.direct.cache_size(n) + self.recurrent.cache_size(n)

    def state_size(self, n: int) -> int:
        """Floats kept to decode token n, all heads: head_dim^2 + head_dim (the state and its
        coefficient key) per matrix state, 3 head_dim per direct entry."""
        per_head = (self.recurrent.cache_size(n) * (self.head_dim ** 2 + self.head_dim)
                    + self.direct.cache_size(n) * 3 * self.head_dim)
        return per_head * self.num_heads + _conv_theory(self)[0]

    def flops_per_token(self, n: int) -> int:
        """Mixing flops of token n - 1 (projections excluded), per head: a score (2 d) and a
        d x d accumulation (2 d^2) per read, and the readout S^T q (2 d^2)."""
        i, d = n - 1, self.head_dim
        reads = len(self.direct.reads(i)) + len(self.recurrent.reads(i))
        return (reads * (2 * d + 2 * d * d) + 2 * d * d) * self.num_heads + _conv_theory(self)[1]


@register_kind("expanded", keys=("direct", "recurrent", "cache_efficient", "chunk_size", "backend",
                                  "params"), qkv_conv=True, positions=True)
def _build_expanded(cfg: MixerConfig, d_model: int, num_heads: int, pos_emb: str = "none"
                    ) -> nn.Module:
    rule = coefficient_rule(cfg.params, "expanded", COEFFICIENT_RULES,
                            make_pattern(cfg.recurrent).num_terms != 0)
    if cfg.backend not in BACKENDS_EXPANDED:
        raise ValueError(f"mixer.backend: kind 'expanded' runs on {BACKENDS_EXPANDED}, "
                         f"got {cfg.backend!r}")
    return ExpandedMixer(d_model, num_heads, direct=cfg.direct, recurrent=cfg.recurrent,
                         cache_efficient=cfg.cache_efficient, chunk_size=cfg.chunk_size,
                         backend=cfg.backend, coefficients=rule,
                         qkv_conv=qkv_conv(cfg, d_model), pos_emb=pos_emb)
