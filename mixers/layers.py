"""Token-mixing layers: one GLRMixer for the whole catalogue, and linear attention.

GLRMixer computes, per head, the joint-softmax coefficients of docs/design.md 1.2

    s[i, j] = q_i . k_j  / sqrt(d)   for j in A(i)      (direct)
    r[i, j] = q_i . kr_j / sqrt(d)   for j in B(i)      (recurrent; kr has its own projection)
    [alpha_i | beta_i] = softmax([s_i | r_i])

and then y = glr(v, alpha, A, beta, B). Every row of [A | B] is a probability vector, so
|y_i| <= max_j |v_j|: stable for any n. Attention, local attention, SSM-like first-order
recurrences, pow2, sq1 ... are all this one class with different patterns (conf/mixer/*.yaml).

Both layers decode token by token with `step(x_t, cache)`, keeping only what the patterns will
read again (for pow2_cache: O(log n) vectors, for sq1_cache: O(sqrt n)).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import MixerConfig
from .conv import QKVConv, WithShortConv, qkv_conv
from .ops import glr
from .ops.chunked import gather_dot
from .ops.reference import dense_matrix
from .patterns import make_direct, make_pattern
from .positions import SCORE_SCHEMES, ScorePositions, check_scheme
from .registry import get_kind, position_kinds, register_kind
from .signed import GLR_RULES, SignGate, coefficient_rule, signed_rows


def _split_heads(x, num_heads):
    b, n, _ = x.shape
    return x.view(b, n, num_heads, -1).transpose(1, 2)  # [b, h, n, dh]


def _merge_heads(y):
    b, h, n, dh = y.shape
    return y.transpose(1, 2).reshape(b, n, h * dh)


def _project_qkv(layer, x):
    """q, k, v [B, n, d] each from x [B, n, d_model]: the fused projection, then the layer's
    QKVConv when it has one (mixer.short_conv_on=qkv)."""
    u = layer.qkv(x)
    if layer.qkv_conv is not None:
        u = layer.qkv_conv(u)
    return u.chunk(3, dim=-1)


def _project_qkv_step(layer, x_t, cache):
    """One token's q, k, v [B, d] each; the QKVConv's window lives in `cache`."""
    u = layer.qkv(x_t)
    if layer.qkv_conv is not None:
        u = layer.qkv_conv.step(u, cache)
    return u.chunk(3, dim=-1)


def _conv_theory(layer) -> tuple[int, int]:
    """(state floats, flops per token) the layer's QKVConv adds; (0, 0) without one."""
    if layer.qkv_conv is None:
        return 0, 0
    return layer.qkv_conv.state_size(), layer.qkv_conv.flops_per_token()


class GLRMixer(nn.Module):
    def __init__(self, d_model: int, num_heads: int, direct: str = "self",
                 recurrent: str = "none", cache_efficient: bool = False, chunk_size: int = 64,
                 backend: str = "auto", qkv_conv: QKVConv | None = None,
                 pos_emb: str = "none", coefficients: str = "softmax"):
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by num_heads ({num_heads})")
        self.num_heads, self.head_dim = num_heads, d_model // num_heads
        # rope / alibi act on this layer's scores (mixers/positions.py); other schemes: no-op
        self.pos = ScorePositions(pos_emb, num_heads, self.head_dim)
        self.direct = make_direct(direct)
        self.recurrent = make_pattern(recurrent, cache_efficient=cache_efficient)
        self.chunk_size, self.backend = chunk_size, backend
        self.has_recurrence = self.recurrent.num_terms != 0
        self.coefficients = coefficient_rule({"coefficients": coefficients}, "glr", GLR_RULES,
                                             self.has_recurrence)
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.qkv_conv = qkv_conv
        self.kr = nn.Linear(d_model, d_model, bias=False) if self.has_recurrence else None
        # signed rows (docs/design.md 1.10): a sign in (-1, 1) per token and head on beta
        self.sign = SignGate(d_model, num_heads) if self.coefficients == "signed" else None
        self.out = nn.Linear(d_model, d_model, bias=False)

    # -- parallel form ----------------------------------------------------------------------
    def _qkv(self, x):
        """q, k, v [B, H, n, dh], q and k rotated at positions 0..n-1 under rope."""
        q, k, v = (_split_heads(t, self.num_heads) for t in _project_qkv(self, x))
        pos = torch.arange(x.shape[1], device=x.device)
        return self.pos.rotate(q, pos), self.pos.rotate(k, pos), v

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self._qkv(x)
        if self.direct.window is None and not self.has_recurrence:
            if self.pos.slopes is None:
                y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            else:  # alibi: the causal mask and the distance bias in one float mask
                pos = torch.arange(x.shape[1], device=x.device)
                keys = pos.expand(len(pos), -1)
                mask = self.pos.bias(q.new_zeros(len(pos), len(pos)), pos, keys)
                mask = mask.masked_fill(keys > pos.unsqueeze(-1), float("-inf"))
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            return self.out(_merge_heads(y))
        alpha, a_idx, beta, b_idx = self._coefficients(x, q, k)
        y = glr(v, alpha, a_idx, beta, b_idx, backend=self.backend, chunk_size=self.chunk_size)
        return self.out(_merge_heads(y))

    def _coefficients(self, x, q, k):
        """The joint softmax of docs/design.md 1.2, beta signed under 1.10: (alpha [B, H, n, Ka],
        a_idx [n, Ka], beta [B, H, n, Kb], b_idx [n, Kb]); padded (-1) entries get coefficient
        0. q and k come rotated (rope); kr is rotated here, and alibi's bias joins both score
        lists."""
        n = x.shape[1]
        pos = torch.arange(n, device=x.device)
        a_idx = self.direct.index_on(n, x.device)
        b_idx = self.recurrent.index_on(n, x.device)
        scale = 1.0 / math.sqrt(self.head_dim)
        s = self.pos.bias(gather_dot(q, a_idx.clamp(min=0), k, n) * scale, pos, a_idx)
        s = s.masked_fill(a_idx < 0, float("-inf"))
        if self.has_recurrence:
            kr = self._recurrent_keys(x, k, pos)
            r = self.pos.bias(gather_dot(q, b_idx.clamp(min=0), kr, n) * scale, pos, b_idx)
            offset = self._recurrent_offset()
            if offset is not None:
                r = r + offset.view(-1, 1, 1)
            r = r.masked_fill(b_idx < 0, float("-inf"))
            coef = torch.softmax(torch.cat([s, r], dim=-1), dim=-1)
        else:
            coef = torch.softmax(s, dim=-1)
        alpha, beta = coef.split([a_idx.shape[1], b_idx.shape[1]], dim=-1)
        if self.sign is not None:
            beta = signed_rows(beta, self.sign(x))
        return alpha, a_idx, beta, b_idx

    def _recurrent_keys(self, x, k, pos):
        """The keys of the recurrent scores, shaped as the rotated direct keys k ([B, H, n, dh],
        or [B, H, dh] for one token; x the layer input [B, n, d_model] or [B, d_model]): the
        recurrence's own projection kr, rotated under rope. A subclass may share k instead."""
        kr = self.kr(x).unflatten(-1, (self.num_heads, self.head_dim)).movedim(-2, 1)
        return self.pos.rotate(kr, pos)

    def _recurrent_offset(self) -> torch.Tensor | None:
        """A per-head constant [H] added to every recurrent score before the joint softmax, or
        None (GLRMixer: none). mixers/chacal.py puts the log-odds of its gate g here."""
        return None

    @torch.no_grad()
    def mixing_matrix(self, x: torch.Tensor):
        """The layer's effective token mixing on input x [B, n, d_model]: (M, A, B), each
        [B, H, n, n], with A and B the dense direct and recurrent coefficient matrices and
        M = (I - B)^{-1} A, so that the op's output (before `out`) is M @ v per head. Every
        row of [A | B] is a probability vector, so M is row-stochastic (with signed
        coefficients, docs/design.md 1.10, rows of [A | |B|] sum to at most 1 and M may be
        negative); for attention (no recurrence) M = A is the causal softmax attention matrix.
        O(n^2) memory: analysis only.
        """
        n = x.shape[1]
        q, k, _ = self._qkv(x)
        alpha, a_idx, beta, b_idx = self._coefficients(x, q, k)
        A = dense_matrix(alpha, a_idx, n)
        B = dense_matrix(beta, b_idx, n)
        eye = torch.eye(n, dtype=A.dtype, device=A.device)
        M = torch.linalg.solve_triangular(eye - B, A, upper=False, unitriangular=True)
        return M, A, B

    # -- decoding ---------------------------------------------------------------------------
    def step(self, x_t: torch.Tensor, cache: dict | None = None):
        """One token: x_t [B, d_model] -> (y_t [B, d_model], cache).

        The cache maps positions to the vectors a later token will read: (k, v) for the direct
        part, (kr, y) for the recurrence. After each step it is pruned to the patterns' live
        sets, so its size is the pattern's true decoding cache, not the sequence length.
        """
        if cache is None:
            cache = {"t": 0, "direct": {}, "recurrent": {}}
        t = cache["t"]
        b = x_t.shape[0]
        pos = torch.tensor(t, device=x_t.device)  # the position index the cache carries
        q, k, v = (u.view(b, self.num_heads, self.head_dim)
                   for u in _project_qkv_step(self, x_t, cache))
        q, k = self.pos.rotate(q, pos), self.pos.rotate(k, pos)
        cache["direct"][t] = (k, v)
        read = list(self.direct.reads(t))
        num_direct = len(read)
        keys = [cache["direct"][j][0] for j in read]
        vals = [cache["direct"][j][1] for j in read]
        if self.has_recurrence:
            reads = self.recurrent.reads(t)
            keys += [cache["recurrent"][j][0] for j in reads]
            vals += [cache["recurrent"][j][1] for j in reads]
            read += list(reads)
        keys, vals = torch.stack(keys, dim=2), torch.stack(vals, dim=2)  # [b, h, m, dh]
        s = (keys @ q.unsqueeze(-1)).squeeze(-1) / math.sqrt(self.head_dim)
        s = self.pos.bias(s, pos, torch.tensor(read, device=x_t.device))
        offset = self._recurrent_offset() if self.has_recurrence else None
        if offset is not None:  # on the recurrent scores, the last len(reads) of the row
            s = torch.cat([s[..., :num_direct], s[..., num_direct:] + offset.view(-1, 1)], -1)
        w = torch.softmax(s, -1)
        if self.sign is not None:  # the recurrent reads come after the direct ones
            m = len(self.direct.reads(t))
            w = torch.cat([w[..., :m], signed_rows(w[..., m:], self.sign(x_t))], dim=-1)
        y = (w.unsqueeze(-1) * vals).sum(2)  # [b, h, dh]
        if self.has_recurrence:
            cache["recurrent"][t] = (self._recurrent_keys(x_t, k, pos), y)
            live = set(self.recurrent.live(t))
            cache["recurrent"] = {j: e for j, e in cache["recurrent"].items() if j in live}
        live = set(self.direct.live(t))
        cache["direct"] = {j: e for j, e in cache["direct"].items() if j in live}
        cache["t"] = t + 1
        return self.out(y.reshape(b, -1)), cache

    # -- theory (mixers.registry) ------------------------------------------------------------
    state_expanded = False

    @property
    def patterns(self):
        return self.direct, self.recurrent

    def cache_size(self, n: int) -> int:
        """Vectors per head kept to decode token n: direct entries plus recurrent entries."""
        return self.direct.cache_size(n) + self.recurrent.cache_size(n)

    def state_size(self, n: int) -> int:
        """Floats this layer keeps to decode token n: (k, v) per direct cache entry and
        (kr, y) per recurrent cache entry, for every head (and a QKVConv's window)."""
        return self.cache_size(n) * 2 * self.head_dim * self.num_heads + _conv_theory(self)[0]

    def flops_per_token(self, n: int) -> int:
        """Mixing flops of token n - 1 (projections excluded): a score and a weighted sum of
        head_dim each per read, for every head."""
        i = n - 1
        reads = len(self.direct.reads(i)) + len(self.recurrent.reads(i))
        return 4 * reads * self.head_dim * self.num_heads + _conv_theory(self)[1]


class LinearAttention(nn.Module):
    """The state-expanded family (docs/design.md 1.4) with B = 0 and A = full of ones:

        o_i = sum_{j <= i} (phi(q_i) . phi(k_j)) v_j / sum_{j <= i} phi(q_i) . phi(k_j)

    phi = elu + 1 keeps the weights positive. The parallel form is chunked: within a chunk the
    masked L x L product, across chunks a d x d state S = sum phi(k_j) v_j^T (and z = sum
    phi(k_j)); `step` carries exactly (S, z). The materialised-M form is `reference`.
    """

    def __init__(self, d_model: int, num_heads: int, chunk_size: int = 64, eps: float = 1e-6,
                 qkv_conv: QKVConv | None = None):
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by num_heads ({num_heads})")
        self.num_heads, self.head_dim = num_heads, d_model // num_heads
        self.chunk_size, self.eps = chunk_size, eps
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.qkv_conv = qkv_conv
        self.out = nn.Linear(d_model, d_model, bias=False)

    def _features(self, x):
        q, k, v = (_split_heads(t, self.num_heads) for t in _project_qkv(self, x))
        return F.elu(q) + 1, F.elu(k) + 1, v

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self._features(x)
        m = (q @ k.transpose(-1, -2)).tril()  # M = A = causal ones, times q_i . k_j
        y = (m @ v) / (m.sum(-1, keepdim=True) + self.eps)
        return self.out(_merge_heads(y))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self._features(x)
        b, h, _, dh = q.shape
        state = q.new_zeros(b, h, dh, dh)
        norm = q.new_zeros(b, h, dh)
        outs = []
        # split, not slices in a loop: the backward of each slice would zero-fill a full-size
        # gradient, O(n^2) over all chunks
        chunks = zip(*(t.split(self.chunk_size, dim=2) for t in (q, k, v)))
        for qc, kc, vc in chunks:
            m = (qc @ kc.transpose(-1, -2)).tril()
            num = m @ vc + qc @ state
            den = m.sum(-1) + (qc * norm.unsqueeze(2)).sum(-1)
            outs.append(num / (den.unsqueeze(-1) + self.eps))
            state = state + kc.transpose(-1, -2) @ vc
            norm = norm + kc.sum(2)
        return self.out(_merge_heads(torch.cat(outs, dim=2)))

    def step(self, x_t: torch.Tensor, cache: dict | None = None):
        b, h, dh = x_t.shape[0], self.num_heads, self.head_dim
        if cache is None:
            cache = {"t": 0, "S": x_t.new_zeros(b, h, dh, dh), "z": x_t.new_zeros(b, h, dh)}
        q, k, v = (u.view(b, h, dh) for u in _project_qkv_step(self, x_t, cache))
        q, k = F.elu(q) + 1, F.elu(k) + 1
        cache["S"] = cache["S"] + k.unsqueeze(-1) * v.unsqueeze(-2)
        cache["z"] = cache["z"] + k
        num = (q.unsqueeze(-1) * cache["S"]).sum(-2)
        den = (q * cache["z"]).sum(-1, keepdim=True)
        cache["t"] += 1
        return self.out((num / (den + self.eps)).reshape(b, -1)), cache

    # -- theory (mixers.registry): one matrix state (and its normalizer) per head ------------
    state_expanded = True

    @property
    def patterns(self):
        return make_direct("full"), make_pattern("none")

    def cache_size(self, n: int) -> int:
        return 1

    def state_size(self, n: int) -> int:
        return self.num_heads * (self.head_dim * self.head_dim + self.head_dim) + \
            _conv_theory(self)[0]

    def flops_per_token(self, n: int) -> int:
        return 4 * self.num_heads * self.head_dim * self.head_dim + _conv_theory(self)[1]


def _sdpa_keys(cfg: MixerConfig) -> tuple[str, ...]:
    """Full attention (direct=full, no recurrence) runs on torch's scaled_dot_product_attention,
    not on the glr op: chunk_size and backend mean nothing to it."""
    if make_direct(cfg.direct).window is None and make_pattern(cfg.recurrent).num_terms == 0:
        return ("chunk_size", "backend")
    return ()


@register_kind("glr", keys=("direct", "recurrent", "cache_efficient", "chunk_size", "backend",
                            "params"), qkv_conv=True, unused=_sdpa_keys, positions=True)
def _build_glr(cfg: MixerConfig, d_model: int, num_heads: int, pos_emb: str = "none"
               ) -> nn.Module:
    # params.coefficients: softmax (default, docs/design.md 1.2) | signed (1.10)
    rule = coefficient_rule(cfg.params, "glr", GLR_RULES,
                            make_pattern(cfg.recurrent).num_terms != 0)
    return GLRMixer(d_model, num_heads, direct=cfg.direct, recurrent=cfg.recurrent,
                    cache_efficient=cfg.cache_efficient, chunk_size=cfg.chunk_size,
                    backend=cfg.backend, qkv_conv=qkv_conv(cfg, d_model), pos_emb=pos_emb,
                    coefficients=rule)


@register_kind("linear_attention", keys=("chunk_size",), qkv_conv=True)
def _build_linear_attention(cfg: MixerConfig, d_model: int, num_heads: int) -> nn.Module:
    return LinearAttention(d_model, num_heads, chunk_size=cfg.chunk_size,
                           qkv_conv=qkv_conv(cfg, d_model))


def build_mixer(cfg, d_model: int, num_heads: int, pos_emb: str = "none") -> nn.Module:
    """A mixer from a MixerConfig or a mapping with its keys (conf/mixer/*.yaml), through the
    builder registered for its kind, with the short convolution in front when asked for
    (short_conv_on=input; with short_conv_on=qkv the kind's builder places it).

    pos_emb (model.pos_emb, mixers/positions.py): rope and alibi go to the builder of a kind
    registered with positions=True; any other kind refuses them (ValueError naming the kinds
    that take them). The embedding-level schemes leave the mixer as it is."""
    cfg = MixerConfig.from_mapping(cfg)
    kind = get_kind(cfg.kind)
    check_scheme(pos_emb, d_model // num_heads)
    if pos_emb in SCORE_SCHEMES:
        if not kind.positions:
            raise ValueError(f"model.pos_emb={pos_emb}: mixer kind {cfg.kind!r} computes no "
                             f"q . k scores glmix can rotate or bias (the fla kinds carry their "
                             f"own positions); kinds that take it: {position_kinds()}")
        mixer = kind.build(cfg, d_model, num_heads, pos_emb=pos_emb)
    else:
        mixer = kind.build(cfg, d_model, num_heads)
    if cfg.short_conv and cfg.short_conv_on == "input":
        mixer = WithShortConv(mixer, d_model, cfg.short_conv)
    return mixer
