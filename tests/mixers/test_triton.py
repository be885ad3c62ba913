"""The Triton backend of the glr op against the dense reference: output and every gradient.

Without a GPU the kernels run in Triton's CPU interpreter (tests/conftest.py sets
TRITON_INTERPRET=1), on CPU tensors, in float32 and float64 (the interpreter's bfloat16
arithmetic is not faithful). With a GPU the same cases run on CUDA tensors, plus bfloat16.

The interpreter executes every program of a grid in Python, so the cases below are a chosen
cover rather than the full cross product: every recurrent pattern plain and cache-efficient,
every direct pattern, every length (1, 17, 64, 130), chunk size (16, 32) and head size (16, 32,
and the odd 5 and 24) at least once, lengths that are not a multiple of the chunk, and one
chunk exactly filled (64 / 32). "Review item N" refers to the static review of the kernels
in docs/triton.md.
"""

from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch
from torch.overrides import TorchFunctionMode

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


# bfloat16: the outputs and gradients are rounded to bf16 (half an ulp: 3.9e-3 relative) and
# later positions read the rounded outputs back; with 3xTF32 dots the rest is float32 rounding.
# Measured in the interpreter (float32 dots, bf16 stores): at most 1.1e-2 (dbeta), 4.5e-3 (y)
# over pow2, sq1, first and dense at n 130-300 (docs/triton.md); 2e-2 leaves twice that.
TOL = {torch.float64: 1e-10, torch.float32: 1e-4, torch.bfloat16: 2e-2}


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


@pytest.mark.parametrize("recurrent", ["pow2", "sq1"])
def test_triton_bfloat16(recurrent):
    """bfloat16 in, float32 accumulation and 3xTF32 dots, bf16 out. In the interpreter the
    kernels convert every bf16 load to float32 and round only at the stores, the arithmetic
    the GPU does (the interpreter's own bf16 arithmetic is never used); smaller there."""
    n, d, chunk = (300, 64, 64) if DEVICE == "cuda" else (130, 24, 32)
    a_idx, b_idx = pattern_case(recurrent, False, "self", n)
    inputs, weight = make_inputs(a_idx, b_idx, d, torch.bfloat16, seed=2)
    got = run("triton", inputs, a_idx, b_idx, weight, chunk_size=chunk)
    assert_matches(got, reference(inputs, a_idx, b_idx, weight), torch.bfloat16, "bfloat16")


def test_bf16_dots_use_3xtf32():
    """Review item 2: TF32 would truncate the float32 operands of the inverse products to
    10 mantissa bits, an error as large as bf16's rounding; every non-float64 call uses 3xTF32."""
    assert tg._precision(torch.bfloat16) == tg._precision(torch.float16) == "tf32x3"
    assert tg._precision(torch.float32) == "tf32x3" and tg._precision(torch.float64) == "ieee"
    cfg = tg.kernel_config(100, 64, 4, 64)
    for name, (_, kw) in tg.launch_params(cfg, torch.bfloat16, 1, 8).items():
        assert kw.get("PREC", "tf32x3") == "tf32x3", name


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
    # 4 x 8 (batch, head) pairs on 132 SMs: d = 64 in four 16-column blocks, 128 programs
    assert tg.kernel_config(1024, 64, 32, 64, num_sms=132)["BLOCK_D"] == 16
    # enough pairs to fill the GPU: no split
    assert tg.kernel_config(1024, 64, 256, 64, num_sms=132)["BLOCK_D"] == 64
    # d = 256: never more than MAX_SCAN_BLOCK_D columns per program
    assert tg.kernel_config(1024, 256, 1024, 64, num_sms=132)["BLOCK_D"] == tg.MAX_SCAN_BLOCK_D


def _waves(cfg, dtype, num_sms):
    programs = cfg["BH"] * (cfg["D_PAD"] // cfg["BLOCK_D"])
    per_sm = tg.scan_programs_per_sm(dtype, cfg["BLOCK_C"], cfg["BLOCK_D"], cfg["SCAN_WARPS"])
    return -(-programs // (num_sms * per_sm))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_kernel_config_one_wave_where_one_suffices(monkeypatch, dtype):
    """Review item 4: from about 133 to 264 batch-heads (d 64, C 64, 132 SMs) the old
    split ran the scans in two waves (one 8-warp program per SM). Whenever some (BLOCK_D,
    num_warps) fits every program in one wave, the choice does."""
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    for bh in (1, 8, 32, 100, 132, 133, 160, 200, 264, 300, 1024):
        cfg = tg.kernel_config(8192, 64, bh, 64, num_sms=132, dtype=dtype)
        best = min(_waves(tg.kernel_config(8192, 64, bh, 64, block_d=bd, num_sms=132,
                                           dtype=dtype, num_warps=w), dtype, 132)
                   for bd in (16, 32, 64) for w in tg.SCAN_WARPS)
        assert _waves(cfg, dtype, 132) == best, (bh, cfg)
        assert cfg["SCAN_WARPS"] in tg.SCAN_WARPS
    # the case of the issue: 200 batch-heads in one wave, where 8 warps fit one program per SM
    if tg.scan_programs_per_sm(dtype, 64, 64, 8) == 1:
        assert _waves(tg.kernel_config(8192, 64, 200, 64, num_sms=132, dtype=dtype), dtype,
                      132) == 1


def test_scan_regs_table_is_consistent():
    """The register table behind the occupancy model covers every (dtype, C, BLOCK_D, warps)
    a GPU call can choose, with values ptxas can give (<= 255)."""
    for kind in ("fp32", "fp16"):  # float64 is not in the table: it counts as 255
        for c in (16, 32, 64):
            for bd in (16, 32, 64, 128):
                for w in tg.SCAN_WARPS:
                    regs = tg.SCAN_REGS.get((kind, c, bd, w))
                    assert regs is not None and 16 <= regs <= 255, (kind, c, bd, w, regs)


def test_scan_regs_module_is_as_generated():
    """The table's module is the generator's output for its own contents: a hand edit that
    changes the layout, or a table that lost its version, shows here (regenerate it with
    `python -m bench.triton_aot --usage --write`)."""
    from bench import triton_aot
    from mixers.ops import triton_scan_regs

    text = Path(triton_scan_regs.__file__).read_text()
    assert text == triton_aot.render_table(triton_scan_regs.SCAN_REGS,
                                           triton_scan_regs.SCAN_REGS_TRITON)
    assert tg.SCAN_REGS is triton_scan_regs.SCAN_REGS


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


def _without_interpreter(code: str, timeout: int = 1200) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    root = Path(__file__).resolve().parents[2]
    return subprocess.run([sys.executable, "-W", "ignore", "-c", code], cwd=root, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
@pytest.mark.skipif(DEVICE == "cuda", reason="with a GPU the kernels are compiled and run above")
def test_kernels_compile_for_hopper():
    """Review item 7. The interpreter compiles nothing: build every specialisation a GPU
    launch can get (kernel_variants: float32 and bfloat16; chunks 16, 32, 64; head sizes
    16-128; scan column blocks 16-128 and 4 or 8 warps; the four kernels: 144 kernels) for
    sm_90 with Triton's own ptxas, specialised as the JIT specialises a launch (alignment
    attributes included), and check each fits a block's shared memory. float64 (a test-only
    dtype on a GPU, and the slowest to compile) at the default launch only, every variant with
    GLMIX_COMPILE_ALL=1. Also: the register table of the occupancy model is what ptxas gives
    now, and every tensor offset is 64-bit (item 6)."""
    if not _has_ptxas():
        pytest.skip("this Triton has no NVIDIA backend with ptxas")
    code = """
import os, torch
from bench import triton_aot as aot
from mixers.ops import triton_glr as tg
dtypes = aot.COMPILE_DTYPES if os.environ.get('GLMIX_COMPILE_ALL') else (torch.float32,
                                                                          torch.bfloat16)
rows = aot.compile_variants(aot.kernel_variants(dtypes))
bad = [(v[0], v[1], v[2], err) for v, usage, err in rows if err]
assert not bad, bad[:3]
names = {v[1] for v, _, _ in rows}
assert names == {'_glr_fwd_prep', '_glr_fwd_scan', '_glr_bwd_scan', '_glr_bwd_grads'}, names
import triton
if triton.__version__ == tg.SCAN_REGS_TRITON:  # another Triton allocates other registers
    measured = aot._scan_regs_table(rows)
    stale = {k: (tg.SCAN_REGS.get(k), r) for k, r in measured.items()
             if k[0] != 'fp64' and tg.SCAN_REGS.get(k) != r}
    # regenerate with: python -m bench.triton_aot --usage --write
    assert not stale, f"SCAN_REGS is stale (table, ptxas now): {stale}"
aot.compile_ahead(torch.float64, n=4096, d=64, bh=32, ka=4, kb=13)
# 64-bit offsets: no pointer in any kernel is advanced by a 32-bit offset
for dt in (torch.bfloat16, torch.float32):
    for name, k in aot.compile_ahead(dt, n=4096, d=64, bh=32, ka=4, kb=13).items():
        narrow = [l.strip() for l in k.asm['ttir'].splitlines()
                  if 'tt.addptr' in l and l.split(' loc(')[0].rstrip().endswith(('i32', 'xi32>'))]
        assert not narrow, (name, narrow[:2])
print('compiled', len(rows))
"""
    proc = _without_interpreter(code)
    assert proc.returncode == 0 and "compiled" in proc.stdout, proc.stderr[-3000:]


def test_triton_size_limit():
    with pytest.raises(ValueError, match="2\\^31"):
        tg._check_sizes(2**31, 16, 16)  # 2^27 chunks x 16 batch-heads
    tg._check_sizes(2**20, 1024, 64)  # n = 1M with 1024 batch-heads still fits


# ---------------------------------------------------------------------------------------------
# review item 3 (docs/triton.md): no device-to-host synchronisation in a call of the op


class SyncDetector(TorchFunctionMode):
    """Records every call that makes a CUDA tensor's value known to the host (and so waits for
    the device): bool(), int(), float(), .item(), .tolist(), .cpu(), .numpy(), nonzero()."""

    SYNCS = {torch.Tensor.__bool__, torch.Tensor.__int__, torch.Tensor.__float__,
             torch.Tensor.__index__, torch.Tensor.item, torch.Tensor.tolist, torch.Tensor.cpu,
             torch.Tensor.numpy, torch.Tensor.nonzero, torch.nonzero}

    def __init__(self):
        super().__init__()
        self.calls: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in self.SYNCS:
            self.calls.append(getattr(func, "__name__", str(func)))
        return func(*args, **(kwargs or {}))


class _Unwatched:
    """A kernel launched outside the detector: Triton's interpreter itself turns tensors into
    numpy arrays, which on a GPU is no part of the launch."""

    def __init__(self, kernel):
        self.kernel = kernel

    def __getitem__(self, grid):
        launch = self.kernel[grid]

        def run(*args, **kwargs):
            with torch._C.DisableTorchFunction():
                return launch(*args, **kwargs)

        return run


def _watched_call(monkeypatch, a_idx, b_idx, n, d=8):
    names = ("_glr_fwd_prep", "_glr_fwd_scan", "_glr_bwd_scan", "_glr_bwd_grads")
    kernels = types.SimpleNamespace(tl=tg._k.tl,
                                    **{k: _Unwatched(getattr(tg._k, k)) for k in names})
    monkeypatch.setattr(tg, "_k", kernels)
    inputs, weight = make_inputs(a_idx.cpu(), b_idx.cpu(), d, torch.float32, seed=n)
    v, alpha, beta = inputs
    with SyncDetector() as detector:
        y = glr(v, alpha, a_idx, beta, b_idx, backend="triton", chunk_size=16)
        grads = torch.autograd.grad((y * weight).sum(), (v, alpha, beta))
    return detector.calls, (y, *grads), (inputs, weight)


def test_triton_call_makes_no_host_sync(monkeypatch):
    """The index tensors a layer uses (pattern.index_on: checked once where built) go through
    glr, forward and backward, with no call that would wait for a GPU; and the result is still
    right (so the kernels did run)."""
    n = 40
    a_idx = make_direct("window(3)").index_on(n, DEVICE)
    b_idx = make_pattern("pow2", cache_efficient=True).index_on(n, DEVICE)
    calls, got, (inputs, weight) = _watched_call(monkeypatch, a_idx, b_idx, n)
    assert calls == [], f"host syncs in a call of the op: {calls}"
    assert_matches(got, reference(inputs, a_idx.cpu(), b_idx.cpu(), weight), torch.float32,
                   "no-sync call")


def test_unchecked_index_is_checked_once(monkeypatch):
    """The control of the test above (the detector does see the check), and the check happens
    on the first call only: a tensor that passed it is marked and trusted until it changes."""
    n = 40
    a_idx = make_direct("self").index(n).clone().to(DEVICE)
    b_idx = make_pattern("first").index(n).clone().to(DEVICE)
    calls, _, _ = _watched_call(monkeypatch, a_idx, b_idx, n)
    assert calls.count("__bool__") == 2, calls  # one check per index tensor
    calls, _, _ = _watched_call(monkeypatch, a_idx, b_idx, n)
    assert calls == [], calls
    b_idx[5, 0] = 5  # in place: reads itself, not the past; the version counter moves
    with pytest.raises(ValueError, match="b_idx"):
        _watched_call(monkeypatch, a_idx, b_idx, n)


def test_index_on_is_cached_checked_and_right():
    for pattern in (make_direct("window(4)"), make_pattern("sq1", cache_efficient=True)):
        idx = pattern.index_on(33, DEVICE)
        assert idx is pattern.index_on(33, torch.device(DEVICE))  # one entry per (n, device)
        assert idx.device.type == DEVICE
        assert torch.equal(idx.cpu(), pattern.index(33))
        assert pattern.index_on(34, DEVICE).shape[0] == 34
    # a broken pattern tensor is refused where it is built, with the constraint in the message
    from mixers.ops import validate_index

    bad = make_pattern("first").index(6).clone()
    bad[3, 0] = 3
    with pytest.raises(ValueError, match=r"b_idx\[i\] must lie in"):
        validate_index(bad, strict=True)
    validate_index(bad, strict=False)  # as a direct index, reading position i is allowed


def test_check_inputs_compiles_without_graph_break():
    """torch.compile traces check_inputs with checked index tensors in one graph (no
    data-dependent branch left); with unchecked ones it cannot, which shows the test bites."""
    from mixers.ops import check_inputs

    n = 12
    a_idx, b_idx = make_direct("window(2)").index_on(n, "cpu"), make_pattern("pow2").index_on(
        n, "cpu")
    v = torch.randn(1, 2, n, 4)
    alpha, beta = torch.randn(1, 2, n, a_idx.shape[1]), torch.randn(1, 2, n, b_idx.shape[1])
    torch._dynamo.reset()
    compiled = torch.compile(check_inputs, fullgraph=True, backend="eager")
    compiled(v, alpha, a_idx, beta, b_idx)
    with pytest.raises(Exception, match="data-dependent|Data-dependent|guard"):
        compiled(v, alpha, a_idx.clone(), beta, b_idx.clone())
    torch._dynamo.reset()


@pytest.mark.skipif(DEVICE != "cuda", reason="CUDA's own sync detector needs a GPU")
def test_triton_no_sync_on_cuda():
    """On a GPU: torch's sync debug mode raises on any synchronising call inside glr."""
    n = 300
    a_idx = make_direct("self").index_on(n, DEVICE)
    b_idx = make_pattern("pow2").index_on(n, DEVICE)
    (v, alpha, beta), weight = make_inputs(a_idx.cpu(), b_idx.cpu(), 64, torch.float32, seed=4)
    glr(v, alpha, a_idx, beta, b_idx, backend="triton")  # compile first (compiling syncs)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        y = glr(v, alpha, a_idx, beta, b_idx, backend="triton")
        torch.autograd.grad((y * weight).sum(), (v, alpha, beta))
    finally:
        torch.cuda.set_sync_debug_mode("default")
