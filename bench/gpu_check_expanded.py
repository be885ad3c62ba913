"""Stage `expanded` of the GPU check (bench/gpu_check.py): the state-expanded op's `triton`
backend (the glr Triton kernels over the flattened states, mixers/ops/expanded_flat.py).

1. errors     the backend against the float64 `reference` on the device, outputs and the
              gradients of q, k, v, alpha and beta, float32 and bfloat16, every recurrent pattern
              (plain and cache-efficient), n not a multiple of the chunk;
2. simple_gla se_first with the decay rule is fla's simple GLA (docs/mixers.md): both on the same
              inputs, the difference of the outputs and both times;
3. sanitizer  compute-sanitizer memcheck on one small odd case, forward and backward;
4. speed      forward + backward of triton against the chunked PyTorch form (and fla's kernel for
              se_first), bfloat16, batch 4, 8 heads, dk = dv = 64, n 1K to 16K; a backend whose
              time passed CHUNKED_LIMIT_S at a smaller n, or whose n * dk * dv states would not
              fit half the GPU's memory, is skipped and marked so.

--smoke runs small shapes in Triton's interpreter on the CPU: a check that the stage works
(tests/bench/test_gpu_check_expanded.py), not a measurement.
"""

from __future__ import annotations

import time

import torch

# name -> (recurrent, cache_efficient); direct self for all, as every se_* config
MIXERS = {
    "se_first": ("first", False),
    "se_pow2": ("pow2", False),
    "se_pow2_cache": ("pow2", True),
    "se_sq1_cache": ("sq1", True),
}
# (recurrent, cache_efficient, direct, n, d): the error cases (reference is O(n^2): short n)
CHECKS = [
    ("first", False, "self", 300, 32),
    ("kth(3)", True, "window(3)", 257, 32),
    ("pow2", False, "self", 300, 32),
    ("pow2", True, "self", 300, 32),
    ("sq1", False, "window(3)", 199, 32),
    ("sq1", True, "self", 300, 32),
    ("dense", False, "self", 130, 16),
    ("none", False, "full", 130, 16),
    ("pow2", True, "self", 1, 24),
]
SMOKE_CHECKS = [("pow2", True, "self", 33, 4), ("first", False, "self", 20, 4)]
NS = (1024, 2048, 4096, 8192, 16384)
BATCH, HEADS, HEAD_DIM = 4, 8, 64
CHUNK_SIZE = 64
CHUNKED_LIMIT_S = 1.5
TOL = {torch.float32: 1e-4, torch.bfloat16: 3e-2}


def make_inputs(recurrent, cache_efficient, direct, n, d, batch, heads, dtype, device, seed=0,
                coefficients="softmax"):
    """q, k, v, alpha, a_idx, beta, b_idx as the layers pass them: unit-scale q, k, v (q scaled
    by 1/sqrt(d)) and convex rows [alpha | beta] (softmax), or for coefficients="decay" rows
    (1 - g_i, g_i) with a gate g_i in (0, 1) (recurrent first, direct self only)."""
    from mixers.patterns import make_direct, make_pattern

    gen = torch.Generator().manual_seed(seed)
    a_idx = make_direct(direct).index_on(n, device)
    b_idx = make_pattern(recurrent, cache_efficient=cache_efficient).index_on(n, device)
    q, k, v = (torch.randn(batch, heads, n, d, generator=gen) for _ in range(3))
    q = q * d ** -0.5
    ka, kb = a_idx.shape[1], b_idx.shape[1]
    if coefficients == "decay":
        gate = torch.sigmoid(torch.randn(batch, heads, n, 1, generator=gen) + 2)
        alpha, beta = 1 - gate, gate * (b_idx.cpu() >= 0)
    else:
        scores = torch.randn(batch, heads, n, ka + kb, generator=gen)
        valid = torch.cat([a_idx.cpu() >= 0, b_idx.cpu() >= 0], dim=1)
        probs = scores.masked_fill(~valid, float("-inf")).softmax(-1).nan_to_num(0.0)
        alpha, beta = probs[..., :ka], probs[..., ka:]
    q, k, v, alpha, beta = (t.to(device, dtype) for t in (q, k, v, alpha, beta))
    return q, k, v, alpha, a_idx, beta, b_idx


def as_simple_gla(q, k, v, alpha, beta):
    """se_first with the decay rule, S_i = alpha_i k_i v_i^T + beta_i S_{i-1}, o_i = S_i^T q_i,
    as fla's simple GLA (S_t = exp(g_t) S_{t-1} + k_t v_t^T, o_t = scale q_t S_t): keys
    alpha_i k_i, log-decays log beta_i (beta_0 multiplies nothing: any finite value), scale 1,
    in fla's [B, T, H, d] layout. Returns (q, k, v, g, scale)."""
    log_decay = beta[..., 0].clamp(min=torch.finfo(beta.dtype).tiny).log()
    k = alpha[..., :1] * k
    return (*(t.transpose(1, 2).contiguous() for t in (q, k, v)),
            log_decay.transpose(1, 2).contiguous(), 1.0)


def _fns(backend, inputs, chunk):
    from mixers.ops import glr_expanded

    q, k, v, alpha, a_idx, beta, b_idx = inputs
    leaves = [t.detach().clone().requires_grad_() for t in (q, k, v, alpha, beta)]
    g = torch.randn_like(v)

    def fwd():
        q, k, v, alpha, beta = leaves
        return glr_expanded(q, k, v, alpha, a_idx, beta, b_idx, backend=backend,
                            chunk_size=chunk)

    def fwdbwd():
        torch.autograd.backward(fwd(), g, inputs=leaves)

    return fwd, fwdbwd, leaves


def _simple_gla_fns(inputs):
    from fla.ops.simple_gla import chunk_simple_gla

    q, k, v, alpha, _, beta, _ = inputs
    q, k, v, g, scale = as_simple_gla(q, k, v, alpha, beta)
    leaves = [t.detach().clone().requires_grad_() for t in (q, k, v, g)]
    grad = torch.randn_like(v)

    def fwd():
        return chunk_simple_gla(*leaves, scale=scale)[0]

    def fwdbwd():
        torch.autograd.backward(fwd(), grad, inputs=leaves)

    return fwd, fwdbwd, leaves


def _errors(inputs, dtype, chunk):
    """Max |fast - reference| / (1 + max |reference|) of o and each gradient."""
    from mixers.ops import glr_expanded, poisoned_outputs

    q, k, v, alpha, a_idx, beta, b_idx = inputs
    out = {}
    results = []
    for backend, cast in (("reference", torch.float64), ("triton", dtype)):
        leaves = [t.detach().to(cast).requires_grad_() for t in (q, k, v, alpha, beta)]
        with poisoned_outputs():
            o = glr_expanded(*leaves[:4], a_idx, leaves[4], b_idx, backend=backend,
                             chunk_size=chunk)
            weight = torch.linspace(-1, 2, o.numel(), device=o.device).view_as(o).to(cast)
            grads = torch.autograd.grad((o * weight).sum(), leaves)
        results.append([t.detach().double() for t in (o, *grads)])
    for name, w, g in zip(("o", "dq", "dk", "dv", "dalpha", "dbeta"), *results):
        scale = 1.0 + (w.abs().max().item() if w.numel() else 0.0)
        out[name] = float("nan") if torch.isnan(g).any() else \
            ((g - w).abs().max().item() / scale if w.numel() else 0.0)
    return out


def sanitize_case() -> int:
    """What runs under compute-sanitizer: one small odd case, forward and backward, float32."""
    device = torch.device("cuda")
    inputs = make_inputs("sq1", True, "window(3)", 45, 6, 1, 3, torch.float32, device, seed=1)
    fwd, fwdbwd, _ = _fns("triton", inputs, 16)
    fwdbwd()
    torch.cuda.synchronize()
    print("sanitize case done")
    return 0


def stage_expanded(device, smoke, log, deadline, dtype, timer, sanitizer=None, ns=NS):
    """The stage's result dict (see the module docstring). `timer(fn) -> ms`; `sanitizer()`
    runs the sanitize case under compute-sanitizer (None: skipped)."""
    chunk = 16 if smoke else CHUNK_SIZE
    dtypes = [torch.float32] + ([torch.bfloat16] if device.type == "cuda" else [])
    res = {"errors": [], "simple_gla": [], "speed": []}
    for case in (SMOKE_CHECKS if smoke else CHECKS):
        for dt in dtypes:
            rec, ce, direct, n, d = case
            inputs = make_inputs(rec, ce, direct, n, d, 2, 2, dt, device, seed=n)
            errs = _errors(inputs, dt, chunk)
            worst = max(errs.values())
            row = {"recurrent": rec, "cache_efficient": ce, "direct": direct, "n": n, "d": d,
                   "dtype": str(dt)[6:], "errors": errs, "ok": bool(worst <= TOL[dt])}
            res["errors"].append(row)
            log(f"  {rec}{'(cache)' if ce else ''}+{direct} n={n} {row['dtype']}: worst "
                f"{worst:.2e} {'ok' if row['ok'] else 'FAIL'}")
    res["ok"] = all(r["ok"] for r in res["errors"])

    if device.type == "cuda":  # fla's kernels need a GPU (its CPU forms are another check)
        for n in ((64,) if smoke else (1024, 8192)):
            inputs = make_inputs("first", False, "self", n, 64, 2, 4, dtype, device, seed=n,
                                 coefficients="decay")
            ours = _fns("triton", inputs, chunk)[0]().float()
            theirs = _simple_gla_fns(inputs)[0]().transpose(1, 2).float()
            diff = ((ours - theirs).abs().max() / (1 + theirs.abs().max())).item()
            row = {"n": n, "dtype": str(dtype)[6:], "max_rel_diff": diff}
            res["simple_gla"].append(row)
            log(f"  se_first(decay) against fla chunk_simple_gla n={n}: {diff:.2e}")

    if sanitizer is not None:
        res["sanitizer"] = sanitizer()
        res["ok"] = res["ok"] and res["sanitizer"].get("ok") is not False

    batch, heads, d = (1, 2, 4) if smoke else (BATCH, HEADS, HEAD_DIM)
    free = torch.cuda.get_device_properties(device).total_memory / 2 if \
        device.type == "cuda" else float("inf")
    too_slow: set[tuple[str, str]] = set()
    for n in ((32, 64) if smoke else ns):
        for name, (rec, ce) in MIXERS.items():
            backends = ["triton", "chunked"] + (["fla_simple_gla"] if name == "se_first" and
                                                device.type == "cuda" else [])
            for backend in backends:
                row = {"mixer": name, "backend": backend, "n": n, "bh": batch * heads, "d": d}
                res["speed"].append(row)
                states = 4 * batch * heads * n * d * d * torch.finfo(dtype).bits / 8
                if (name, backend) in too_slow:
                    row["skipped"] = f"forward + backward over {CHUNKED_LIMIT_S}s at a smaller n"
                elif backend == "triton" and states > free:
                    row["skipped"] = "the flat states would not fit half the GPU's memory"
                elif time.perf_counter() > deadline:
                    row["skipped"] = "time budget spent"
                if "skipped" in row:
                    log(f"  {name}/{backend} n={n}: {row['skipped']}")
                    continue
                coefficients = "decay" if backend == "fla_simple_gla" else "softmax"
                try:
                    inputs = make_inputs(rec, ce, "self", n, d, batch, heads, dtype, device,
                                         seed=n, coefficients=coefficients)
                    fwd, fwdbwd, _ = (_simple_gla_fns(inputs) if backend == "fla_simple_gla"
                                      else _fns(backend, inputs, chunk))
                    row["fwdbwd_ms"] = timer(fwdbwd)
                    if row["fwdbwd_ms"] > CHUNKED_LIMIT_S * 1e3:
                        too_slow.add((name, backend))
                    log(f"  {name}/{backend} n={n}: fwd+bwd {row['fwdbwd_ms']:.3f} ms")
                except Exception as e:  # an out-of-memory row is a figure, not a failure
                    row["error"] = f"{type(e).__name__}: {str(e)[:300]}"
                    log(f"  {name}/{backend} n={n}: {row['error']}")
                if device.type == "cuda":
                    torch.cuda.empty_cache()
    return res
