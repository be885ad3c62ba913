"""The Triton backend of the glr op against the dense reference: output and every gradient.

Without a GPU the kernels run in Triton's CPU interpreter (tests/conftest.py sets
TRITON_INTERPRET=1), on CPU tensors, in float32 and float64 (the interpreter's bfloat16
arithmetic is not faithful). With a GPU the same cases run on CUDA tensors, plus bfloat16.

The interpreter executes every program of a grid in Python, so the cases below are a chosen
cover rather than the full cross product: every recurrent pattern plain and cache-efficient,
every direct pattern, every length (1, 17, 64, 130), chunk size (16, 32) and head size (16, 32,
and the odd 5 and 24) at least once, lengths that are not a multiple of the chunk, and one
chunk exactly filled (64 / 32).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("triton")

from mixers.ops import glr, poisoned_outputs  # noqa: E402
from mixers.ops import triton_glr as tg  # noqa: E402
from mixers.patterns import make_direct, make_pattern  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
BATCH, HEADS = 2, 3

# (recurrent, cache_efficient, direct, n, chunk_size, d)
CASES = [
    ("none", False, "full", 130, 16, 16),  # causal attention; Ka = 130, several K blocks
    ("none", True, "window(4)", 17, 32, 32),
    ("first", False, "self", 64, 16, 32),  # every chunk full
    ("first", True, "window(4)", 130, 32, 5),
    ("kth(8)", False, "window(4)", 17, 16, 24),
    ("kth(8)", True, "self", 64, 32, 16),
    ("pow2", False, "self", 130, 16, 32),
    ("pow2", True, "self", 130, 32, 16),
    ("pow2", False, "full", 1, 16, 16),
    ("sq1", False, "self", 64, 16, 24),
    ("sq1", True, "window(4)", 130, 16, 16),
    ("dense", False, "self", 130, 32, 16),  # Kb = 129, several K blocks, skipped in-chunk blocks
    ("dense", True, "full", 17, 16, 5),
    ("k**3 + 1", True, "self", 64, 32, 32),  # a user-supplied distance function
    ("first", False, "self", 1, 32, 32),
]


def make_inputs(a_idx, b_idx, d, dtype, seed, device=DEVICE):
    """Fresh random inputs. beta rows are scaled so sum_m |beta[i, m]| <= 0.9 (a stable
    recurrence at any length, as the softmax rule guarantees). Padded (-1) entries get random
    coefficients too: every backend must ignore them."""
    g = torch.Generator().manual_seed(seed)
    n = a_idx.shape[0]
    v = torch.randn(BATCH, HEADS, n, d, generator=g, dtype=dtype)
    alpha = torch.randn(BATCH, HEADS, n, a_idx.shape[1], generator=g, dtype=dtype)
    beta = torch.rand(BATCH, HEADS, n, b_idx.shape[1], generator=g, dtype=dtype) * 2 - 1
    beta = 0.9 * beta / beta.abs().sum(-1, keepdim=True).clamp(min=1)
    weight = torch.randn(BATCH, HEADS, n, d, generator=g, dtype=dtype)  # dL/dy
    return [t.to(device).requires_grad_() for t in (v, alpha, beta)], weight.to(device)


def run(backend, inputs, a_idx, b_idx, weight, **kw):
    v, alpha, beta = inputs
    with poisoned_outputs():  # every buffer a backend allocates starts as NaN
        if backend == "triton" and kw.get("block_d"):
            y = tg.glr_triton(v, alpha, a_idx.to(v.device), beta, b_idx.to(v.device), **kw)
        else:
            y = glr(v, alpha, a_idx, beta, b_idx, backend=backend, **kw)
        grads = torch.autograd.grad((y * weight).sum(), (v, alpha, beta))
    return (y, *grads)


def reference(inputs, a_idx, b_idx, weight):
    """The ground truth in float64 on the CPU."""
    inputs64 = [t.detach().cpu().double().requires_grad_() for t in inputs]
    return run("reference", inputs64, a_idx, b_idx, weight.cpu().double())


TOL = {torch.float64: 1e-10, torch.float32: 1e-4, torch.bfloat16: 5e-2}


def assert_matches(got, want, dtype, what):
    """|got - want| <= tol * (1 + max |want|) elementwise, per tensor, and nothing left NaN."""
    tol = TOL[dtype]
    for name, g, w in zip(("y", "dv", "dalpha", "dbeta"), got, want):
        assert g.dtype == dtype, f"{what}: {name} has dtype {g.dtype}, expected {dtype}"
        g = g.detach().cpu().double()
        assert not torch.isnan(g).any(), f"{what}: {name} has unwritten (NaN) elements"
        scale = 1.0 + (w.abs().max().item() if w.numel() else 0.0)
        torch.testing.assert_close(g, w, atol=tol * scale, rtol=tol,
                                   msg=lambda m, name=name: f"{what}: {name}: {m}")


def pattern_case(recurrent, cache_efficient, direct, n):
    return make_direct(direct).index(n), make_pattern(recurrent,
                                                      cache_efficient=cache_efficient).index(n)


@pytest.mark.parametrize("recurrent,cache_efficient,direct,n,chunk,d", CASES,
                         ids=[f"{r}{'-cache' if c else ''}-{a}-n{n}-C{ch}-d{d}"
                              for r, c, a, n, ch, d in CASES])
def test_triton_matches_reference(recurrent, cache_efficient, direct, n, chunk, d):
    a_idx, b_idx = pattern_case(recurrent, cache_efficient, direct, n)
    inputs, weight = make_inputs(a_idx, b_idx, d, torch.float32, seed=n * 1000 + d)
    got = run("triton", inputs, a_idx, b_idx, weight, chunk_size=chunk)
    assert_matches(got, reference(inputs, a_idx, b_idx, weight), torch.float32,
                   f"{direct}+{recurrent}{'(cache)' if cache_efficient else ''} n={n} C={chunk}")


def test_triton_user_index_tensors():
    """Index tensors as a user may pass them: unsorted, duplicated entries (which add up),
    padding interleaved with reads, a chunk size that is no power of two."""
    n, d = 50, 16
    g = torch.Generator().manual_seed(7)
    pos = torch.arange(n).unsqueeze(1)
    a_idx = (torch.rand(n, 6, generator=g) * (pos + 1)).long()
    a_idx[torch.rand(n, 6, generator=g) < 0.3] = -1
    a_idx[:, 0] = torch.arange(n)  # and a duplicate of it on some rows
    a_idx[::3, 5] = torch.arange(n)[::3]
    b_idx = (torch.rand(n, 9, generator=g) * pos).long()
    b_idx[torch.rand(n, 9, generator=g) < 0.3] = -1
    b_idx[0] = -1
    inputs, weight = make_inputs(a_idx, b_idx, d, torch.float32, seed=1)
    got = run("triton", inputs, a_idx, b_idx, weight, chunk_size=20)
    assert_matches(got, reference(inputs, a_idx, b_idx, weight), torch.float32, "user indices")


def test_triton_column_split_odd_head_size():
    """The scans split d over several programs (block_d < d): an odd d = 40 in 16-column
    blocks, the last one mostly masked."""
    a_idx, b_idx = pattern_case("pow2", False, "window(4)", 40)
    inputs, weight = make_inputs(a_idx, b_idx, 40, torch.float32, seed=3)
    got = run("triton", inputs, a_idx, b_idx, weight, chunk_size=16, block_d=16)
    assert_matches(got, reference(inputs, a_idx, b_idx, weight), torch.float32, "block_d=16")


def test_triton_float64_matches_reference():
    a_idx, b_idx = pattern_case("sq1", True, "window(4)", 45)
    inputs, weight = make_inputs(a_idx, b_idx, 8, torch.float64, seed=5)
    got = run("triton", inputs, a_idx, b_idx, weight, chunk_size=16)
    assert_matches(got, reference(inputs, a_idx, b_idx, weight), torch.float64, "float64")


def test_triton_gradcheck_float64():
    a_idx, b_idx = pattern_case("pow2", True, "window(2)", 20)
    (v, alpha, beta), _ = make_inputs(a_idx, b_idx, 5, torch.float64, seed=11)
    v, alpha, beta = (t.detach()[:1, :2].clone().requires_grad_() for t in (v, alpha, beta))
    ai, bi = a_idx.to(v.device), b_idx.to(v.device)

    def f(v, alpha, beta):
        return glr(v, alpha, ai, beta, bi, backend="triton", chunk_size=16)

    assert torch.autograd.gradcheck(f, (v, alpha, beta), eps=1e-6, atol=1e-7, rtol=1e-5,
                                    fast_mode=True)


@pytest.mark.skipif(DEVICE != "cuda", reason="the interpreter's bfloat16 arithmetic is not "
                                             "faithful; bfloat16 is checked on a GPU")
@pytest.mark.parametrize("recurrent", ["pow2", "sq1"])
def test_triton_bfloat16_on_gpu(recurrent):
    a_idx, b_idx = pattern_case(recurrent, False, "self", 300)
    inputs, weight = make_inputs(a_idx, b_idx, 64, torch.bfloat16, seed=2)
    got = run("triton", inputs, a_idx, b_idx, weight, chunk_size=64)
    assert_matches(got, reference(inputs, a_idx, b_idx, weight), torch.bfloat16, "bfloat16")


def test_triton_empty_sequence():
    a_idx, b_idx = pattern_case("pow2", False, "self", 0)
    (v, alpha, beta), _ = make_inputs(a_idx, b_idx, 16, torch.float32, seed=0)
    y = glr(v, alpha, a_idx, beta, b_idx, backend="triton")
    assert y.shape == v.shape
    y.sum().backward()
    assert v.grad is not None and v.grad.shape == v.shape


def test_kernel_config():
    cfg = tg.kernel_config(n=130, d=5, bh=6, chunk_size=20)
    assert (cfg["BLOCK_C"], cfg["LOG_C"], cfg["D_PAD"], cfg["NC"]) == (32, 5, 16, 5)
    assert tg.kernel_config(10, 64, 1, chunk_size=1)["BLOCK_C"] == 16
    assert tg.kernel_config(10, 64, 1, chunk_size=1000)["BLOCK_C"] == tg.MAX_CHUNK
    assert tg.kernel_config(10, 24, 1, 64)["D_PAD"] == 32
    with pytest.raises(ValueError, match="block_d"):
        tg.kernel_config(10, 64, 1, 64, block_d=24)


def test_kernel_config_splits_columns_on_gpu(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    # 4 x 8 (batch, head) pairs on 132 SMs: d = 64 in four 16-column blocks
    assert tg.kernel_config(1024, 64, 32, 64, num_sms=132)["BLOCK_D"] == 16
    # enough pairs to fill the GPU: no split
    assert tg.kernel_config(1024, 64, 256, 64, num_sms=132)["BLOCK_D"] == 64


def test_triton_clear_errors(monkeypatch):
    a_idx, b_idx = pattern_case("first", False, "self", 4)
    (v, alpha, beta), _ = make_inputs(a_idx, b_idx, 16, torch.float32, seed=0, device="cpu")
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(RuntimeError, match="CUDA"):
        glr(v, alpha, a_idx, beta, b_idx, backend="triton")
    monkeypatch.setattr(tg, "_IMPORT_ERROR", ImportError("no module named triton"))
    with pytest.raises(RuntimeError, match="needs the triton package"):
        glr(v, alpha, a_idx, beta, b_idx, backend="triton")


def _has_ptxas() -> bool:
    import triton

    return (Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "ptxas").exists()


@pytest.mark.slow
@pytest.mark.skipif(DEVICE == "cuda", reason="with a GPU the kernels are compiled and run above")
def test_kernels_compile_for_hopper():
    """The interpreter does not compile anything: build the four kernels for sm_90 with Triton's
    own ptxas, with the launch parameters of a bfloat16 and a float32 call (batch 4 x 8 heads,
    d 64, a pow2 pattern), in a process without TRITON_INTERPRET."""
    if not _has_ptxas():
        pytest.skip("this Triton has no NVIDIA backend with ptxas")
    code = ("import torch\n"
            "from mixers.ops.triton_glr import compile_ahead\n"
            "for dt in (torch.bfloat16, torch.float32):\n"
            "    ks = compile_ahead(dt, n=4096, d=64, bh=32, ka=1, kb=13)\n"
            "    assert sorted(ks) == ['_glr_bwd_grads', '_glr_bwd_scan', '_glr_fwd_prep',\n"
            "                          '_glr_fwd_scan'], sorted(ks)\n"
            "print('compiled')\n")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-W", "ignore", "-c", code], cwd=root, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and "compiled" in proc.stdout, proc.stderr[-3000:]


def test_triton_size_limit():
    with pytest.raises(ValueError, match="32-bit"):
        tg._check_sizes(65536, 65536, 1)
    tg._check_sizes(32768, 32768, 16)  # dense at n = 32768 still fits
