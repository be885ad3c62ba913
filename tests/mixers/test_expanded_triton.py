"""The state-expanded op's `triton` backend (the glr Triton kernels over the flattened states,
mixers/ops/expanded_flat.py) against the dense reference: the output and the gradients of q, k,
v, alpha and beta, every buffer poisoned (NaN) before the run.

Without a GPU the kernels run in Triton's CPU interpreter (tests/conftest.py), in float32; with a
GPU the same cases run on CUDA tensors, plus bfloat16. The interpreter runs every program in
Python, so the cases are a cover, not a cross product: every recurrent pattern plain and
cache-efficient, every direct pattern, n = 1, odd n, n not a multiple of the chunk.
"""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("triton")

from mixers import build_mixer  # noqa: E402
from tests.mixers.test_expanded import random_inputs, run  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"

# (recurrent, cache_efficient, direct, n, chunk_size, dk, dv)
CASES = [
    ("first", False, "self", 1, 16, 3, 4),
    ("first", True, "window(3)", 37, 16, 3, 5),
    ("kth(3)", False, "self", 33, 16, 4, 4),
    ("kth(3)", True, "full", 20, 16, 2, 3),
    ("pow2", False, "self", 70, 16, 3, 4),
    ("pow2", True, "window(3)", 70, 32, 4, 4),
    ("sq1", False, "self", 33, 16, 3, 4),
    ("sq1", True, "self", 70, 16, 4, 3),
    ("dense", False, "full", 33, 16, 3, 4),
    ("dense", True, "self", 17, 16, 2, 2),
    ("none", False, "full", 17, 16, 3, 4),
]
TOL = {torch.float32: 1e-4, torch.bfloat16: 3e-2}
DTYPES = [torch.float32] + ([torch.bfloat16] if DEVICE == "cuda" else [])


def assert_matches(got, want, dtype, what):
    """|got - want| <= tol * (1 + max |want|) per tensor, and nothing left NaN."""
    tol = TOL[dtype]
    for name, g, w in zip(("o", "dq", "dk", "dv", "dalpha", "dbeta"), got, want):
        assert g.dtype == dtype, f"{what}: {name} has dtype {g.dtype}, expected {dtype}"
        g = g.detach().cpu().double()
        assert not torch.isnan(g).any(), f"{what}: {name} has unwritten (NaN) elements"
        scale = 1.0 + (w.abs().max().item() if w.numel() else 0.0)
        torch.testing.assert_close(g, w, atol=tol * scale, rtol=tol,
                                   msg=lambda m, name=name: f"{what}: {name}: {m}")


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("recurrent,cache_efficient,direct,n,chunk,dk,dv", CASES,
                         ids=[f"{r}{'-cache' if c else ''}-{a}-n{n}-C{ch}"
                              for r, c, a, n, ch, *_ in CASES])
def test_triton_matches_reference(recurrent, cache_efficient, direct, n, chunk, dk, dv, dtype):
    inputs, a_idx, b_idx = random_inputs(n, direct, recurrent, cache_efficient, seed=n + dk,
                                         dk=dk, dv=dv)
    want = run("reference", inputs, a_idx, b_idx)
    fast = [t.detach().to(DEVICE, dtype).requires_grad_() for t in inputs]
    got = run("triton", fast, a_idx.to(DEVICE), b_idx.to(DEVICE), chunk_size=chunk)
    assert_matches(got, want, dtype,
                   f"{direct}+{recurrent}{'(cache)' if cache_efficient else ''} n={n} C={chunk}")


def test_the_layer_runs_on_the_triton_backend():
    """An se_pow2_cache layer with backend=triton: its output and every parameter's gradient
    equal the reference backend's on the same weights."""
    torch.manual_seed(0)
    cfg = {"kind": "expanded", "direct": "self", "recurrent": "pow2", "cache_efficient": True,
           "chunk_size": 16}
    want_layer = build_mixer({**cfg, "backend": "reference"}, 8, 2).double()
    layer = build_mixer({**cfg, "backend": "triton"}, 8, 2).to(DEVICE)
    layer.load_state_dict({k: v.float() for k, v in want_layer.state_dict().items()})
    x = torch.randn(2, 21, 8, dtype=torch.float64)
    want = want_layer(x)
    want.square().sum().backward()
    got = layer(x.float().to(DEVICE))
    got.square().sum().backward()
    torch.testing.assert_close(got.double().cpu(), want, atol=1e-4, rtol=1e-4)
    for (name, p), (_, q) in zip(layer.named_parameters(), want_layer.named_parameters()):
        torch.testing.assert_close(p.grad.double().cpu(), q.grad, atol=1e-4, rtol=1e-4,
                                   msg=lambda m, name=name: f"grad of {name}: {m}")


@pytest.mark.skipif(DEVICE != "cuda", reason="auto picks triton for CUDA tensors only")
def test_auto_picks_triton_on_cuda(monkeypatch):
    from mixers.ops import expanded_flat

    seen = []
    real = expanded_flat._GLR["triton"]
    monkeypatch.setitem(expanded_flat._GLR, "triton", lambda *a: seen.append(1) or real(*a))
    inputs, a_idx, b_idx = random_inputs(40, "self", "pow2", True, torch.float32)
    run("auto", [t.detach().cuda().requires_grad_() for t in inputs], a_idx.cuda(),
        b_idx.cuda())
    assert seen
