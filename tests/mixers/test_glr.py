"""The glr op: every backend against the dense reference, outputs and every gradient."""

import itertools

import pytest
import torch

from mixers import glr, make_direct, make_pattern, poisoned_outputs

RECURRENT = ["none", "first", "kth(8)", "pow2", "sq1", "dense", "k**2 + 3"]
DIRECT = ["self", "window(5)", "full"]
LENGTHS = [1, 7, 64, 100, 257]


def random_inputs(n, direct, recurrent, cache_efficient, dtype, batch=2, heads=3, d=5, seed=0):
    """Fresh random inputs. Recurrent coefficients are scaled so every row of |beta| sums to
    at most 0.9: the solve stays well conditioned at any length, as the softmax rule ensures."""
    g = torch.Generator().manual_seed(seed)
    a_idx = make_direct(direct).index(n)
    b_idx = make_pattern(recurrent, cache_efficient=cache_efficient).index(n)
    v = torch.randn(batch, heads, n, d, generator=g, dtype=dtype)
    alpha = torch.randn(batch, heads, n, a_idx.shape[1], generator=g, dtype=dtype)
    beta = torch.rand(batch, heads, n, b_idx.shape[1], generator=g, dtype=dtype) * 2 - 1
    beta = 0.9 * beta / beta.abs().sum(-1, keepdim=True).clamp(min=1)
    return [t.requires_grad_() for t in (v, alpha, beta)], a_idx, b_idx


def run(backend, inputs, a_idx, b_idx, **kw):
    (v, alpha, beta) = inputs
    with poisoned_outputs():
        y = glr(v, alpha, a_idx, beta, b_idx, backend=backend, **kw)
        # a loss with a non-uniform gradient, so that every dY element matters
        weight = torch.linspace(-1, 2, y.numel(), dtype=y.dtype).view_as(y)
        grads = torch.autograd.grad((y * weight).sum(), (v, alpha, beta),
                                    allow_unused=True, materialize_grads=True)
    return (y, *grads)


def assert_close(got, want, dtype, what):
    tol = dict(atol=1e-10, rtol=1e-8) if dtype == torch.float64 else dict(atol=2e-4, rtol=2e-4)
    for name, g, w in zip(("y", "dv", "dalpha", "dbeta"), got, want):
        assert not torch.isnan(g).any(), f"{what}: {name} has unwritten (NaN) elements"
        torch.testing.assert_close(g, w, **tol, msg=lambda m, name=name: f"{what}: {name}: {m}")


CASES = [
    (rec, ce, DIRECT[i % len(DIRECT)], n)
    for i, (rec, ce) in enumerate(itertools.product(RECURRENT, [False, True]))
    for n in LENGTHS
]


@pytest.mark.parametrize("recurrent,cache_efficient,direct,n", CASES)
def test_backends_match_reference_float64(recurrent, cache_efficient, direct, n):
    inputs, a_idx, b_idx = random_inputs(n, direct, recurrent, cache_efficient, torch.float64,
                                         seed=n)
    want = run("reference", inputs, a_idx, b_idx)
    what = f"{direct}+{recurrent}{'(cache)' if cache_efficient else ''} n={n}"
    # chunk sizes that divide n and that do not (16 never divides 7, 100 or 257)
    for chunk in (16, 32, 7):
        assert_close(run("chunked", inputs, a_idx, b_idx, chunk_size=chunk), want,
                     torch.float64, f"chunked(C={chunk}) {what}")
    assert_close(run("recurrent", inputs, a_idx, b_idx), want, torch.float64,
                 f"recurrent {what}")


@pytest.mark.parametrize("recurrent", RECURRENT)
@pytest.mark.parametrize("cache_efficient", [False, True])
def test_backends_match_reference_float32(recurrent, cache_efficient):
    n = 100
    inputs, a_idx, b_idx = random_inputs(n, "window(3)", recurrent, cache_efficient,
                                         torch.float32, seed=1)
    want = run("reference", inputs, a_idx, b_idx)
    assert_close(run("chunked", inputs, a_idx, b_idx, chunk_size=32), want, torch.float32,
                 f"chunked float32 {recurrent}")
    assert_close(run("recurrent", inputs, a_idx, b_idx), want, torch.float32,
                 f"recurrent float32 {recurrent}")


def test_chunked_gradcheck():
    inputs, a_idx, b_idx = random_inputs(13, "window(3)", "pow2", False, torch.float64,
                                         batch=1, heads=2, d=3)
    assert torch.autograd.gradcheck(
        lambda v, a, b: glr(v, a, a_idx, b, b_idx, backend="chunked", chunk_size=4),
        inputs)


def test_chunked_solves_the_recurrence_exactly():
    # a hand-checkable case: y_i = v_i + 0.5 y_{i-1} is a geometric sum
    n = 9
    v = torch.ones(1, 1, n, 1, dtype=torch.float64)
    alpha = torch.ones(1, 1, n, 1, dtype=torch.float64)
    beta = torch.full((1, 1, n, 1), 0.5, dtype=torch.float64)
    y = glr(v, alpha, make_direct("self").index(n), beta, make_pattern("first").index(n),
            backend="chunked", chunk_size=4)
    expected = torch.tensor([2 - 0.5**i for i in range(n)], dtype=torch.float64)
    torch.testing.assert_close(y.flatten(), expected)


def test_duplicate_indices_add_up():
    n = 4
    v = torch.randn(1, 1, n, 2, dtype=torch.float64)
    alpha = torch.rand(1, 1, n, 2, dtype=torch.float64)
    a_idx = torch.arange(n).unsqueeze(1).repeat(1, 2)  # token i reads v_i twice
    beta = torch.zeros(1, 1, n, 0, dtype=torch.float64)
    b_idx = torch.zeros(n, 0, dtype=torch.long)
    for backend in ("reference", "chunked", "recurrent"):
        y = glr(v, alpha, a_idx, beta, b_idx, backend=backend)
        torch.testing.assert_close(y, alpha.sum(-1, keepdim=True) * v)


def _valid_args(n=5):
    a_idx, b_idx = make_direct("self").index(n), make_pattern("first").index(n)
    return (torch.randn(1, 2, n, 3), torch.rand(1, 2, n, 1), a_idx, torch.rand(1, 2, n, 1), b_idx)


@pytest.mark.parametrize("mutate,message", [
    (lambda a: (a[0][0],) + a[1:], r"v must be \[batch, heads, n, d\]"),
    (lambda a: a[:4] + (torch.zeros(5, 1, dtype=torch.long),), r"b_idx\[i\] must lie in"),
    (lambda a: a[:2] + (torch.full((5, 1), 4),) + a[3:], r"a_idx\[i\] must lie in"),
    (lambda a: a[:1] + (torch.rand(1, 2, 5, 2),) + a[2:], "alpha must be"),
    (lambda a: a[:3] + (a[3].double(),) + a[4:], "beta has dtype"),
    (lambda a: a[:2] + (a[2].float(),) + a[3:], "a_idx must be an integer tensor"),
])
def test_bad_inputs_are_named(mutate, message):
    with pytest.raises(ValueError, match=message):
        glr(*mutate(_valid_args()), backend="chunked")


def test_bad_backend_and_chunk_size():
    with pytest.raises(ValueError, match="backend must be one of"):
        glr(*_valid_args(), backend="cuda")
    with pytest.raises(ValueError, match="chunk_size must be an integer >= 1"):
        glr(*_valid_args(), chunk_size=0)
