"""`kind: fla`: the field's baselines through flash-linear-attention (docs/design.md 1.5).

GLA, DeltaNet, Gated DeltaNet, Mamba-2, RetNet, HGRN-2, log-linear attention (on Mamba-2), and
the state trackers (DeltaNet and Gated DeltaNet with negative eigenvalues, Gated DeltaProduct,
KDA, RWKV-7) are fla's own layer classes (`fla.layers.*`), built with glmix's `d_model` /
`num_heads` and the layer's knobs from `mixer.params` (conf/mixer/<name>.yaml). glmix never
copies fla's code. What runs where, and how it is tested: docs/mixers.md.

    GPU  the layer's forward as fla ships it: its Triton kernels (Mamba-2: mamba-ssm's kernels
         when installed, else the layer's own PyTorch path).
    CPU  the same forward, with every Triton-backed callable it reaches swapped, for the duration
         of the call, for fla's pure-PyTorch reference of the same math: `fla.ops.<op>.naive`
         for the token mixing, `rms_norm_ref` / `rotary_embedding_ref` for the norms and rotary
         embeddings, a depthwise `F.conv1d` for fla's short convolution. The parameters are the
         layer's own, so a checkpoint trained on one device loads on the other.

Swapping names in the modules the layer's forward reads them from (`unittest.mock.patch`) keeps
the layer's structure (projections, gates, output norm, its mode switches) fla's, instead of a
second copy of each forward that could drift from it. fla's Triton kernels do not run on a CPU,
not even under TRITON_INTERPRET=1 (the autotuner asks for a GPU), hence the references. The swap
is process-wide while a CPU forward runs: one such forward at a time per process (as in
training; GPU forwards never swap anything).

Decoding: `step(x_t, cache)` runs the layer on one token with fla's own cache object
(`fla.models.utils.Cache`), i.e. fla's recurrent mode; on CPU the recurrent reference functions
carry the state. Every baseline has one, except log-linear attention on CPU (fla ships no
recurrent reference for it). KDA trains on its recurrent reference too (fla's chunked one
overflows under strong per-channel decays).

`import fla` (which pulls `transformers` and takes seconds) happens in the builder, so glmix pays
for it only when a `kind: fla` mixer is built.
"""

from __future__ import annotations

import contextlib
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from unittest import mock

import torch
import torch.nn.functional as F
from torch import nn

from .config import MixerConfig
from .registry import register_kind

__all__ = ["FLAMixer", "BASELINES"]


# -- CPU stand-ins for fla's Triton-backed callables ------------------------------------------
# Each takes the arguments the fla function it replaces takes (as fla's layers call it) and
# forwards to fla's reference implementation. Anything those layers never pass (variable-length
# batches, reversed scans) is refused rather than silently computed differently.

def _refuse(name: str, **unsupported) -> None:
    bad = sorted(k for k, v in unsupported.items() if v not in (None, False))
    if bad:
        raise NotImplementedError(f"fla adapter: the CPU path of {name} does not support {bad}")


def _l2norm(x: torch.Tensor) -> torch.Tensor:
    # what fla's `use_qk_l2norm_in_kernel` does (fla.modules.norm.l2norm, eps 1e-6)
    return x * torch.rsqrt(x.float().square().sum(-1, keepdim=True) + 1e-6).to(x)


def _rescale_q(q: torch.Tensor, scale: float | None) -> torch.Tensor:
    # fla's reference functions hard-code scale = head_dim ** -0.5; a layer asking for another
    # scale gets it by rescaling q (the outputs are linear in q)
    if scale is None:
        return q
    return q * (scale * math.sqrt(q.shape[-1]))


def _state_in(state, state_v_first: bool):
    # fla's kernels may keep the state as [B, H, V, K]; its references as [B, H, K, V]
    return state.transpose(-1, -2) if state is not None and state_v_first else state


def _state_out(state, state_v_first: bool):
    return state.transpose(-1, -2).contiguous() if state is not None and state_v_first else state


def _gla(q, k, v, gk=None, g=None, gv=None, scale=None, initial_state=None,
         output_final_state=False, reverse=False, state_v_first=False, cu_seqlens=None, **kw):
    """chunk_gla / fused_chunk_gla / fused_recurrent_gla -> fla.ops.gla.naive (recurrent form;
    fla ships no chunked reference for per-channel gates)."""
    from fla.ops.gla.naive import naive_recurrent_gla
    _refuse("gla", gv=gv, reverse=reverse, cu_seqlens=cu_seqlens)
    gk = gk if gk is not None else g
    o, state = naive_recurrent_gla(_rescale_q(q, scale), k, v, gk,
                                   _state_in(initial_state, state_v_first), output_final_state)
    return o, _state_out(state, state_v_first)


def _delta_rule(q, k, v, beta, scale=None, initial_state=None, output_final_state=False,
                use_qk_l2norm_in_kernel=False, cu_seqlens=None, **kw):
    """chunk_delta_rule / fused_recurrent_delta_rule -> fla.ops.delta_rule.naive: the chunkwise
    (WY) form for training, the recurrence when a state goes in or out (decoding)."""
    from fla.ops.delta_rule.naive import delta_rule_chunkwise, delta_rule_recurrence
    _refuse("delta_rule", cu_seqlens=cu_seqlens)
    if use_qk_l2norm_in_kernel:
        q, k = _l2norm(q), _l2norm(k)
    dtype = v.dtype
    # fla's references for this op are [B, H, T, D]; the layer gives [B, T, H, D]
    q, k, v, beta = (t.transpose(1, 2).float() for t in (q, k, v, beta))
    q = _rescale_q(q, scale)
    if initial_state is None and not output_final_state:
        n, chunk = q.shape[2], 32
        pad = (-n) % chunk
        if pad:  # zero keys / beta on the padding: it never reaches a real position
            q, k, v = (F.pad(t, (0, 0, 0, pad)) for t in (q, k, v))
            beta = F.pad(beta, (0, pad))
        o, state = delta_rule_chunkwise(q, k, v, beta, chunk_size=chunk)
        o, state = o[:, :, :n], None
    else:
        o, state = delta_rule_recurrence(q, k, v, beta, initial_state, output_final_state)
    return o.transpose(1, 2).to(dtype), state


def _gated_delta_rule(q, k, v, g, beta, scale=None, initial_state=None, output_final_state=False,
                      use_qk_l2norm_in_kernel=False, use_beta_sigmoid_in_kernel=False,
                      allow_neg_eigval=False, state_v_first=False, cu_seqlens=None,
                      use_gate_in_kernel=False, A_log=None, dt_bias=None, **kw):
    """chunk_gated_delta_rule / fused_recurrent_gated_delta_rule ->
    fla.ops.gated_delta_rule.naive (chunked for training, recurrent with a state), with the
    prologue the kernels fuse (l2norm, beta sigmoid, `naive_gdn_gate`) done first."""
    from fla.ops.gated_delta_rule.gate import naive_gdn_gate
    from fla.ops.gated_delta_rule.naive import (
        naive_chunk_gated_delta_rule,
        naive_recurrent_gated_delta_rule,
    )
    _refuse("gated_delta_rule", cu_seqlens=cu_seqlens)
    if use_qk_l2norm_in_kernel:
        q, k = _l2norm(q), _l2norm(k)
    if use_beta_sigmoid_in_kernel:
        beta = beta.sigmoid() * (2.0 if allow_neg_eigval else 1.0)
    if use_gate_in_kernel:
        g = naive_gdn_gate(g, A_log, dt_bias)
    if g is None:  # no forget gate (Gated DeltaProduct's use_forget_gate=false): no decay
        g = q.new_zeros(q.shape[:3], dtype=torch.float32)
    state = _state_in(initial_state, state_v_first)
    if state is None and not output_final_state:
        o, state = naive_chunk_gated_delta_rule(q, k, v, g, beta, scale=scale)
    else:
        o, state = naive_recurrent_gated_delta_rule(q, k, v, beta, g, scale=scale,
                                                    initial_state=state,
                                                    output_final_state=output_final_state)
    return o.to(v.dtype), _state_out(state, state_v_first)


def _gated_delta_product(q, k, v, g, beta, num_householder, scale=None, initial_state=None,
                         output_final_state=False, cu_seqlens=None,
                         use_qk_l2norm_in_kernel=False, **kw):
    """chunk_gated_delta_product -> the gated delta rule's references (above) on the sequence of
    num_householder steps per token, as fla's own `chunk_gated_delta_product_ref` does: the
    decay on each token's first step, the query read after its last."""
    _refuse("gated_delta_product", cu_seqlens=cu_seqlens)
    b, n, h, dk = q.shape
    steps = q.new_zeros(b, n, num_householder, h, dk)
    steps[:, :, -1] = q
    q = steps.flatten(1, 2)
    decay = q.new_zeros(b, n, num_householder, h, dtype=torch.float32)
    if g is not None:
        decay[:, :, 0] = g
    o, state = _gated_delta_rule(q, k, v, decay.flatten(1, 2), beta, scale=scale,
                                 initial_state=initial_state,
                                 output_final_state=output_final_state,
                                 use_qk_l2norm_in_kernel=use_qk_l2norm_in_kernel)
    return o.unflatten(1, (n, num_householder))[:, :, -1], state


def _kda(q, k, v, g, beta, scale=None, initial_state=None, output_final_state=False,
         use_qk_l2norm_in_kernel=False, use_gate_in_kernel=False,
         use_beta_sigmoid_in_kernel=False, allow_neg_eigval=False, safe_gate=False,
         lower_bound=None, state_v_first=False, cu_seqlens=None, A_log=None, dt_bias=None,
         **kw):
    """chunk_kda / fused_recurrent_kda -> fla.ops.kda.naive.naive_recurrent_kda, with the fused
    prologue done first: l2norm, beta sigmoid (x2 with negative
    eigenvalues), the gate (`naive_kda_gate`, or `naive_kda_lowerbound_gate` with a lower
    bound). `safe_gate` only picks a kernel path in fla; the math is the same."""
    from fla.ops.kda.gate import naive_kda_gate, naive_kda_lowerbound_gate
    from fla.ops.kda.naive import naive_recurrent_kda
    _refuse("kda", cu_seqlens=cu_seqlens)
    if use_qk_l2norm_in_kernel:
        q, k = _l2norm(q), _l2norm(k)
    if use_beta_sigmoid_in_kernel:
        beta = beta.float().sigmoid() * (2.0 if allow_neg_eigval else 1.0)
    if use_gate_in_kernel:
        g = (naive_kda_gate(g, A_log, dt_bias) if lower_bound is None
             else naive_kda_lowerbound_gate(g, A_log, dt_bias, lower_bound))
    # the recurrent form for training too: fla's chunked reference exponentiates g_j - g_i for
    # every pair of a chunk, future ones included, and overflows (NaN gradients) once the
    # per-channel decays grow strong, as they do in training
    o, state = naive_recurrent_kda(q, k, v, g.float(), beta, scale=scale,
                                   initial_state=_state_in(initial_state, state_v_first),
                                   output_final_state=output_final_state)
    return o.to(v.dtype), _state_out(state, state_v_first)


def _dplr(q, k, v, a, b, gk, scale=1.0, initial_state=None, output_final_state=False,
          cu_seqlens=None, **kw):
    """chunk_rwkv7 (chunk_dplr_delta_rule) -> fla.ops.generalized_delta_rule.dplr.naive:
    S_t = S_{t-1} (diag(exp(gk_t)) + a_t b_t^T) + k_t v_t^T, o_t = S_t^T q_t, chunkwise (padded)
    for training, the recurrence when a state goes in or out. `safe_gate` / `lower_bound` only
    license a kernel path in fla; the math is the same."""
    from fla.ops.generalized_delta_rule.dplr.naive import dplr_chunkwise, dplr_recurrence
    _refuse("dplr_delta_rule", cu_seqlens=cu_seqlens)
    dtype = v.dtype
    q = _rescale_q(q, scale)  # the references hard-code head_dim ** -0.5; RWKV-7 asks for 1
    q, k, v, a, b, gk = (t.transpose(1, 2).float() for t in (q, k, v, a, b, gk))
    if initial_state is None and not output_final_state:
        n, chunk = q.shape[2], 32
        pad = (-n) % chunk
        if pad:  # zero keys and no decay on the padding: it comes after every real position
            q, k, v, a, b, gk = (F.pad(t, (0, 0, 0, pad)) for t in (q, k, v, a, b, gk))
        o, state = dplr_chunkwise(q, k, v, a, b, gk, output_final_state=False, chunk_size=chunk)
        o, state = o[:, :, :n], None
    else:
        o, state = dplr_recurrence(q, k, v, a, b, gk, initial_state, output_final_state)
    return o.transpose(1, 2).to(dtype), state


def _rwkv7_recurrent(r, w, k, v, kk, a, scale=1.0, initial_state=None, output_final_state=False,
                     reverse=False, cu_seqlens=None):
    """fused_mul_recurrent_rwkv7 (RWKV-7's decoding): the same recurrence with a = -kk and
    b = kk * a."""
    _refuse("rwkv7", reverse=reverse)
    return _dplr(r, k, v, -kk, kk * a, w, scale=scale, initial_state=initial_state,
                 output_final_state=output_final_state, cu_seqlens=cu_seqlens)


def _rwkv7_chunk(r, w, k, v, a, b, **kw):
    return _dplr(r, k, v, a, b, w, **kw)


def _token_shift(x, cu_seqlens=None, cache=None, output_cache=False, **kw):
    """fla.modules.token_shift -> token_shift_ref (x_{t-1} - x_t, zero before the first
    token), with the previous call's last token in place of that zero when a cache comes in."""
    from fla.modules.token_shift import token_shift_ref
    _refuse("token_shift", cu_seqlens=cu_seqlens)
    delta = token_shift_ref(x)
    if cache is not None:
        delta = torch.cat([delta[:, :1] + cache.reshape(x.shape[0], 1, -1), delta[:, 1:]], 1)
    return (delta, x[:, -1:].clone()) if output_cache else delta


def _simple_gla_gate(q, g, g_gamma):
    # a per-head constant decay (RetNet's g_gamma) is the scalar-gate op with g fixed in time
    if g is None:
        g = g_gamma.to(torch.float32).expand(q.shape[0], q.shape[1], -1)
    return g


def _chunk_simple_gla(q, k, v, g=None, g_gamma=None, scale=None, initial_state=None,
                      output_final_state=False, state_v_first=False, cu_seqlens=None,
                      chunk_size=None, **kw):
    """chunk_simple_gla (RetNet's chunk_retention) -> fla.ops.simple_gla.naive, chunked form."""
    from fla.ops.simple_gla.naive import naive_chunk_simple_gla
    _refuse("simple_gla", cu_seqlens=cu_seqlens)
    o, state = naive_chunk_simple_gla(q, k, v, _simple_gla_gate(q, g, g_gamma),
                                      _state_in(initial_state, state_v_first), output_final_state,
                                      chunk_size=chunk_size or 64, scale=scale)
    return o.to(v.dtype), _state_out(state, state_v_first)


def _recurrent_simple_gla(q, k, v, g=None, g_gamma=None, scale=None, initial_state=None,
                          output_final_state=False, reverse=False, state_v_first=False,
                          cu_seqlens=None, **kw):
    """fused_recurrent_simple_gla (RetNet's decoding) -> fla.ops.simple_gla.naive, recurrent."""
    from fla.ops.simple_gla.naive import naive_recurrent_simple_gla
    _refuse("simple_gla", reverse=reverse, cu_seqlens=cu_seqlens)
    o, state = naive_recurrent_simple_gla(q, k, v, _simple_gla_gate(q, g, g_gamma), scale,
                                          _state_in(initial_state, state_v_first),
                                          output_final_state)
    return o, _state_out(state, state_v_first)


def _log_linear_attn(q, k, v, g, level_scales, initial_state=None, output_final_state=False,
                     cu_seqlens=None, scale=1.0):
    """chunk_log_linear_attn -> fla.ops.log_linear_attn.naive (the materialised form). fla ships
    no recurrent reference, so no state goes in, and none comes out (the layer asks for one even
    when it does not cache; glmix's CPU forward discards it): no decoding on CPU."""
    from fla.ops.log_linear_attn.naive import naive_log_linear_attn
    _refuse("log_linear_attn", cu_seqlens=cu_seqlens)
    if initial_state is not None:
        raise NotImplementedError(
            "fla adapter: log-linear attention has no recurrent reference in fla 0.6.0, so no "
            "step() on CPU (docs/mixers.md); on a GPU fla's kernels decode")
    return naive_log_linear_attn(q, k, v, g, level_scales, scale=scale), None


def _rms_norm(x, weight, bias, residual=None, eps=1e-5, prenorm=False, residual_in_fp32=False):
    from fla.modules.norm.layernorm import rms_norm_ref
    return rms_norm_ref(x, weight, bias, residual=residual, eps=eps, prenorm=prenorm)


def _rms_norm_gated(x, g, weight, bias, activation="swish", residual=None, prenorm=False,
                    residual_in_fp32=False, eps=1e-6):
    """FusedRMSNormGated: rmsnorm(x) * weight * act(g), act swish (silu) or sigmoid."""
    from fla.modules.norm.layernorm_gated import rms_norm_ref
    _refuse("rms_norm_gated", residual=residual, prenorm=prenorm)
    if activation == "sigmoid":  # KDA's output gate
        return (rms_norm_ref(x, weight, bias, eps=eps).float() * g.float().sigmoid()).to(x.dtype)
    if activation not in ("swish", "silu"):
        raise NotImplementedError(f"fla adapter: gate activation {activation!r} on CPU")
    return rms_norm_ref(x, weight, bias, z=g, eps=eps, norm_before_gate=True)


def _rmsnorm_fn(x, weight, bias, z=None, eps=1e-6, group_size=None, norm_before_gate=True):
    """Mamba-2's RMSNormGated (fla.modules.norm.layernorm_gated.rmsnorm_fn)."""
    from fla.modules.norm.layernorm_gated import rms_norm_ref
    return rms_norm_ref(x, weight, bias, z=z, eps=eps, group_size=group_size,
                        norm_before_gate=norm_before_gate)


def _rms_norm_linear(x, norm_weight, norm_bias, linear_weight, linear_bias, residual=None,
                     eps=1e-5, prenorm=False, residual_in_fp32=False):
    """HGRN-2's fused output norm + projection."""
    _refuse("rms_norm_linear", residual=residual, prenorm=prenorm)
    return F.linear(_rms_norm(x, norm_weight, norm_bias, eps=eps), linear_weight, linear_bias)


def _causal_conv1d(x, weight=None, bias=None, residual=None, initial_state=None,
                   output_final_state=False, activation=None, backend=None, cu_seqlens=None,
                   **kw):
    """fla's ShortConvolution kernel: y_t = act(sum_s w[:, s] x_{t-W+1+s} + b) (+ residual),
    with the cache holding the last W inputs ([N, D, W])."""
    _refuse("causal_conv1d", cu_seqlens=cu_seqlens)
    d, w = weight.shape
    n = x.shape[1]
    xt = x.transpose(1, 2)  # [B, D, T]
    past = (initial_state[..., 1:].to(xt) if initial_state is not None
            else xt.new_zeros(xt.shape[0], d, w - 1))
    full = torch.cat([past, xt], dim=-1)
    y = F.conv1d(full, weight.unsqueeze(1), bias, groups=d)[..., -n:].transpose(1, 2)
    if activation in ("swish", "silu"):
        y = F.silu(y)
    elif activation is not None:
        raise NotImplementedError(f"fla adapter: conv activation {activation!r} on CPU")
    if residual is not None:
        y = y + residual
    final = None
    if output_final_state:
        final = F.pad(full, (max(w - full.shape[-1], 0), 0))[..., -w:]
    return y, final


def _causal_conv1d_update(x, cache, residual=None, weight=None, bias=None, activation=None):
    """One decoding token of ShortConvolution: x [N, 1, D] (or [N, D]); the cache updated in
    place, as fla's kernel does."""
    shape = x.shape
    x3 = x.reshape(-1, 1, shape[-1])
    y, final = _causal_conv1d(x3, weight, bias, residual=None, initial_state=cache,
                              output_final_state=True, activation=activation)
    cache.copy_(final)
    y = y.reshape(shape)
    return (y + residual if residual is not None else y), cache


def _rotary_embedding(x, cos, sin, interleaved=False, inplace=False, seqlen_offsets=0,
                      cu_seqlens=None, max_seqlen=None, **kw):
    """fla.modules.rotary.rotary_embedding -> rotary_embedding_ref on the positions of x."""
    from fla.modules.rotary.ops import rotary_embedding_ref
    _refuse("rotary_embedding", cu_seqlens=cu_seqlens)
    if not isinstance(seqlen_offsets, int):
        raise NotImplementedError("fla adapter: per-sequence rotary offsets on CPU")
    n = x.shape[1]
    return rotary_embedding_ref(x, cos[seqlen_offsets:seqlen_offsets + n],
                                sin[seqlen_offsets:seqlen_offsets + n], interleaved)


def _torch_ref(path: str) -> Callable:
    """A stand-in that calls fla's PyTorch reference `module:function`, imported on first use."""
    def call(*args, **kwargs):
        return _import(path)(*args, **kwargs)
    return call


# -- the baselines ----------------------------------------------------------------------------

# the modules fla's layers share (norms, short convolution): swapped for every baseline
_SHARED_CPU_OPS = {
    "fla.modules.norm.fused_norm_gate": {"rms_norm_gated": _rms_norm_gated},
    "fla.modules.norm.layernorm": {"rms_norm": _rms_norm},
    "fla.modules.norm.layernorm_gated": {"rmsnorm_fn": _rmsnorm_fn},
    "fla.modules.causal_conv1d.ops": {"causal_conv1d": _causal_conv1d,
                                      "causal_conv1d_update": _causal_conv1d_update},
}


@dataclass(frozen=True)
class Baseline:
    """One fla layer as a glmix mixer."""

    layer: str  # "module:Class" in fla
    # glmix's (d_model, num_heads, params) as the layer's keyword arguments
    dims: Callable[[int, int, dict], dict]
    # module -> {name: CPU stand-in}, patched while the layer runs on CPU tensors
    cpu_ops: dict
    # (layer) -> (heads, key dim, value dim) of its matrix state
    state: Callable[[nn.Module], tuple[int, int, int]]
    # mixing flops per token and state entry of the recurrent form (multiply-add = 2):
    # readout 2, write 2, plus 1 for a decay, 2 more for the delta rule's read-before-write;
    # or (layer) -> that number, where a layer knob decides it
    flops_per_entry: int | Callable[[nn.Module], int]
    reference: str  # the fla reference functions the CPU path runs (docs)
    # attributes of the layer instance patched on CPU (Triton callables it keeps as attributes)
    cpu_attrs: dict = field(default_factory=dict)
    # (layer, x) -> y on CPU when the layer's forward itself refuses a CPU device
    cpu_forward: Callable | None = None
    # matrix states kept per head to decode token n (1 for a plain recurrence)
    levels: Callable[[int], int] = lambda n: 1
    # longest sequence the CPU path is allowed (memory), None = no limit
    cpu_max_n: int | None = None


BASELINES: dict[str, Baseline] = {
    "gla": Baseline(
        layer="fla.layers.gla:GatedLinearAttention",
        dims=lambda d, h, p: {"hidden_size": d, "num_heads": h},
        cpu_ops={"fla.layers.gla": {"chunk_gla": _gla, "fused_chunk_gla": _gla,
                                    "fused_recurrent_gla": _gla}},
        state=lambda m: (m.num_heads, m.head_k_dim, m.head_v_dim),
        flops_per_entry=5,
        reference="fla.ops.gla.naive.naive_recurrent_gla",
    ),
    "deltanet": Baseline(
        layer="fla.layers.delta_net:DeltaNet",
        dims=lambda d, h, p: {"hidden_size": d, "num_heads": h},
        cpu_ops={"fla.layers.delta_net": {"chunk_delta_rule": _delta_rule,
                                          "fused_recurrent_delta_rule": _delta_rule}},
        state=lambda m: (m.num_heads, m.head_k_dim, m.head_v_dim),
        flops_per_entry=6,
        reference="fla.ops.delta_rule.naive.delta_rule_chunkwise / delta_rule_recurrence",
    ),
    "gated_deltanet": Baseline(
        layer="fla.layers.gated_deltanet:GatedDeltaNet",
        dims=lambda d, h, p: {"hidden_size": d, "num_heads": h, "head_dim": d // h},
        cpu_ops={"fla.layers.gated_deltanet": {
            "chunk_gated_delta_rule": _gated_delta_rule,
            "fused_recurrent_gated_delta_rule": _gated_delta_rule,
            "causal_conv1d": _causal_conv1d}},
        state=lambda m: (m.num_v_heads, m.head_k_dim, m.head_v_dim),
        flops_per_entry=7,
        reference="fla.ops.gated_delta_rule.naive.naive_chunk_gated_delta_rule / "
                  "naive_recurrent_gated_delta_rule (+ gate.naive_gdn_gate)",
    ),
    "mamba2": Baseline(
        layer="fla.layers.mamba2:Mamba2",
        # fla requires num_heads * head_dim = expand * hidden_size
        dims=lambda d, h, p: {"hidden_size": d, "num_heads": h,
                              "head_dim": int(p.get("expand", 2) * d) // h},
        cpu_ops={},  # the layer's own PyTorch path; only its norm and SiLU are swapped
        state=lambda m: (m.num_heads, m.ssm_state_size, m.head_dim),
        flops_per_entry=5,
        reference="fla.layers.mamba2.Mamba2.torch_forward (the layer's own PyTorch SSD path)",
        cpu_attrs={"act": F.silu},  # the layer keeps fla's Triton SiLU as an attribute
        # its PyTorch SSD broadcasts the inter-chunk decay over all chunk pairs, kept for
        # backward: about 0.7 GB at n = 4096 (d_model 128, 4 heads), some 10 GB at 16384
        cpu_max_n=8192,
    ),
    "retnet": Baseline(
        layer="fla.layers.multiscale_retention:MultiScaleRetention",
        dims=lambda d, h, p: {"hidden_size": d, "num_heads": h},
        cpu_ops={"fla.ops.retention.chunk": {"chunk_simple_gla": _chunk_simple_gla},
                 "fla.ops.retention.fused_recurrent": {
                     "fused_recurrent_simple_gla": _recurrent_simple_gla},
                 "fla.modules.rotary.ops": {"rotary_embedding": _rotary_embedding}},
        state=lambda m: (m.num_heads, m.head_k_dim, m.head_v_dim),
        flops_per_entry=5,
        reference="fla.ops.simple_gla.naive.naive_chunk_simple_gla / "
                  "naive_recurrent_simple_gla (fla's retention is simple GLA with a fixed decay)",
    ),
    "hgrn2": Baseline(
        layer="fla.layers.hgrn2:HGRN2Attention",
        # fla derives HGRN-2's heads from expand_ratio; None lets num_heads decide
        dims=lambda d, h, p: {"hidden_size": d, "num_heads": h, "expand_ratio": None},
        cpu_ops={"fla.layers.hgrn2": {"chunk_gla": _gla, "fused_chunk_gla": _gla,
                                      "fused_recurrent_gla": _gla, "swish": F.silu,
                                      "rms_norm_linear": _rms_norm_linear}},
        state=lambda m: (m.num_heads, m.head_f_dim, m.head_i_dim),
        flops_per_entry=5,
        reference="fla.ops.gla.naive.naive_recurrent_gla (HGRN-2 is GLA with k = 1 - f)",
    ),
    "log_linear_attention": Baseline(
        layer="fla.layers.log_linear_mamba2:LogLinearMamba2",
        dims=lambda d, h, p: {"hidden_size": d, "num_heads": h,
                              "head_dim": int(p.get("expand", 2) * d) // h},
        cpu_ops={"fla.layers.log_linear_mamba2": {"chunk_log_linear_attn": _log_linear_attn,
                                                  "rmsnorm_fn": _rmsnorm_fn}},
        state=lambda m: (m.num_heads, m.ssm_state_size, m.head_dim),
        # one Mamba-2 state per Fenwick level, ceil(log2 n) + 1 of them (the levels fla's
        # reference sums over)
        levels=lambda n: math.ceil(math.log2(n)) + 1 if n > 1 else 1,
        # the reference materialises [B, H, n, n] per level, kept for backward: about 4 GB at
        # n = 1024, 4x that at 2048
        cpu_max_n=1024,
        flops_per_entry=5,
        reference="fla.ops.log_linear_attn.naive.naive_log_linear_attn (materialised, O(n^2))",
        # its forward raises on a CPU device; its one forward method is `cuda_kernels_forward`,
        # whose training branch only adds activation checkpointing (the recomputation in
        # backward would run outside the swap), hence training=False
        cpu_attrs={"causal_conv1d_fn": _causal_conv1d, "training": False},
        cpu_forward=lambda m, x: m.cuda_kernels_forward(x, None, False, None)[0],
    ),
    "gated_deltaproduct": Baseline(
        layer="fla.layers.gated_deltaproduct:GatedDeltaProduct",
        dims=lambda d, h, p: {"hidden_size": d, "num_heads": h, "head_dim": d // h},
        cpu_ops={"fla.layers.gated_deltaproduct": {
            "chunk_gated_delta_product": _gated_delta_product,
            "fused_recurrent_gated_delta_rule": _gated_delta_rule}},
        state=lambda m: (m.num_v_heads, m.head_k_dim, m.head_v_dim),
        # readout 2, decay 1, and a delta-rule write (read 2 + write 2) per Householder step
        flops_per_entry=lambda m: 3 + 4 * m.num_householder,
        reference="the gated delta rule's references (naive_chunk_gated_delta_rule / "
                  "naive_recurrent_gated_delta_rule) on num_householder steps per token, as "
                  "fla.ops.gated_delta_product.chunk_ref",
    ),
    "kda": Baseline(
        layer="fla.layers.kda:KimiDeltaAttention",
        dims=lambda d, h, p: {"hidden_size": d, "num_heads": h, "head_dim": d // h},
        cpu_ops={"fla.layers.kda": {"chunk_kda": _kda, "fused_recurrent_kda": _kda}},
        state=lambda m: (m.num_v_heads, m.head_k_dim, m.head_v_dim),
        flops_per_entry=7,  # the gated delta rule's, with a per-channel decay
        reference="fla.ops.kda.naive.naive_recurrent_kda (+ gate.naive_kda_gate)",
    ),    "rwkv7": Baseline(
        layer="fla.layers.rwkv7:RWKV7Attention",
        dims=lambda d, h, p: {"hidden_size": d, "num_heads": h, "head_dim": None},
        cpu_ops={"fla.layers.rwkv7": {
            "chunk_rwkv7": _rwkv7_chunk, "fused_mul_recurrent_rwkv7": _rwkv7_recurrent,
            "token_shift": _token_shift, "fused_addcmul_rwkv7": _torch_ref(
                "fla.ops.rwkv7.fused_addcmul:torch_addcmul_rwkv7"),
            "fused_k_rwkv7": _torch_ref("fla.ops.rwkv7.fused_k_update:k_update_ref"),
            "gate_output_correction": _torch_ref(
                "fla.ops.rwkv7.gate_output_correction:gate_output_correction_ref")}},
        state=lambda m: (m.num_heads, m.head_dim, m.head_v_dim),
        # readout 2, write 2, decay 1, the rank-one transition's read and write 4
        flops_per_entry=9,
        reference="fla.ops.generalized_delta_rule.dplr.naive.dplr_chunkwise / "
                  "dplr_recurrence (+ token_shift_ref, torch_addcmul_rwkv7, k_update_ref, "
                  "gate_output_correction_ref)",
    ),
}

# keyword arguments of the fla layer that glmix sets itself
_OWNED = {"hidden_size", "num_heads", "layer_idx", "d_model"}


def _import(path: str):
    import importlib
    import warnings
    module, _, name = path.partition(":")
    with warnings.catch_warnings():
        # fla warns at import on a machine without a GPU; the CPU path does not use Triton
        warnings.filterwarnings("ignore", message="Triton is not supported on current platform")
        return getattr(importlib.import_module(module), name)


class FLAMixer(nn.Module):
    """An fla layer behind glmix's mixer interface: forward(x) -> y, step, and its theory."""

    state_expanded = True
    patterns = None  # outside the pattern framework: no hop figures

    def __init__(self, name: str, layer: nn.Module, baseline: Baseline):
        super().__init__()
        self.name, self.layer, self.baseline = name, layer, baseline

    @contextlib.contextmanager
    def _cpu(self):
        """fla's layer with its Triton-backed callables swapped for their PyTorch references."""
        import importlib
        with contextlib.ExitStack() as stack:
            for table in (_SHARED_CPU_OPS, self.baseline.cpu_ops):
                for module, names in table.items():
                    mod = importlib.import_module(module)
                    for attr, fn in names.items():
                        stack.enter_context(mock.patch.object(mod, attr, fn))
            for attr, value in self.baseline.cpu_attrs.items():
                stack.enter_context(mock.patch.object(self.layer, attr, value))
            yield

    def _run(self, x, **kwargs):
        if x.is_cuda:
            return self.layer(x, **kwargs)[0]
        cap = self.baseline.cpu_max_n
        if cap is not None and x.shape[1] > cap:
            raise ValueError(f"fla adapter: {self.name}'s CPU path is refused above n = {cap} "
                             f"(memory, docs/mixers.md); got n = {x.shape[1]}. Use a GPU.")
        with self._cpu():
            if self.baseline.cpu_forward is not None:
                if kwargs:
                    raise NotImplementedError(
                        f"fla adapter: {self.name} has no decoding on CPU (docs/mixers.md)")
                return self.baseline.cpu_forward(self.layer, x)
            return self.layer(x, **kwargs)[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x)

    def step(self, x_t: torch.Tensor, cache=None):
        """One token: x_t [B, d_model] -> (y_t, cache); the cache is fla's own (recurrent state
        and short-conv windows of this layer)."""
        if cache is None:
            from fla.models.utils import Cache
            cache = Cache()
        y = self._run(x_t.unsqueeze(1), past_key_values=cache, use_cache=True)
        return y[:, 0], cache

    # -- theory (mixers.registry) ------------------------------------------------------------
    def cache_size(self, n: int) -> int:
        """Matrix states per head: one, whatever n (log-linear attention: O(log n))."""
        return self.baseline.levels(n)

    def state_size(self, n: int) -> int:
        """Floats of the recurrent state: states x heads x key dim x value dim (short-conv
        windows excluded)."""
        h, dk, dv = self.baseline.state(self.layer)
        return self.cache_size(n) * h * dk * dv

    def flops_per_token(self, n: int) -> int:
        per_entry = self.baseline.flops_per_entry
        per_entry = per_entry(self.layer) if callable(per_entry) else per_entry
        return per_entry * self.state_size(n)


@register_kind("fla", keys=("params",))
def _build_fla(cfg: MixerConfig, d_model: int, num_heads: int) -> nn.Module:
    params = dict(cfg.params)
    layer = params.pop("layer", None)
    if layer not in BASELINES:
        raise ValueError(f"mixer.params.layer must be one of {sorted(BASELINES)}, got {layer!r}")
    baseline = BASELINES[layer]
    try:
        cls = _import(baseline.layer)
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(f"kind: fla needs flash-linear-attention (pip install "
                          f"flash-linear-attention==0.6.0): {e}") from e
    known = set(inspect.signature(cls.__init__).parameters) - {"self", "kwargs"} - _OWNED
    for key in params:
        if key not in known:
            raise ValueError(f"mixer.params.{key}: not a knob of {baseline.layer} "
                             f"(known: {sorted(known)})")
    kwargs = {**baseline.dims(d_model, num_heads, params), **params, "layer_idx": 0}
    try:
        module = cls(**kwargs)
    except (AssertionError, ValueError, TypeError, RuntimeError) as e:
        raise ValueError(f"mixer.params: {baseline.layer} rejects {params} at d_model={d_model}, "
                         f"num_heads={num_heads}: {e}") from e
    return FLAMixer(cfg.name, module, baseline)
