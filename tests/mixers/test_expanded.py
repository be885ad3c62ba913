"""The state-expanded family (docs/design.md 1.4): the op glr_expanded against its reference,
outputs and every gradient, and the `expanded` mixers (decoding with live matrix states)."""

import itertools
import math

import pytest
import torch

from mixers import build_mixer, make_direct, make_pattern, poisoned_outputs
from mixers.ops import glr_expanded
from mixers.ops.expanded import crossing_reads, expanded_recurrent, last_reads
from runners.paths import catalogue

RECURRENT = ["none", "first", "kth(3)", "pow2", "sq1", "dense"]
DIRECT = ["self", "window(3)", "full"]
LENGTHS = [1, 7, 33, 70]  # 1, odd lengths, lengths that no chunk size below divides
SE_MIXERS = ["se_first", "se_kth", "se_pow2", "se_pow2_cache", "se_sq1", "se_sq1_cache",
             "se_dense"]


def random_inputs(n, direct, recurrent, cache_efficient, dtype=torch.float64, seed=0,
                  batch=2, heads=2, dk=3, dv=4):
    """Fresh inputs; |beta| rows sum to at most 0.9 so the solve stays well conditioned (the
    softmax rule of the layers makes rows convex)."""
    g = torch.Generator().manual_seed(seed)
    a_idx = make_direct(direct).index(n)
    b_idx = make_pattern(recurrent, cache_efficient=cache_efficient).index(n)
    q = torch.randn(batch, heads, n, dk, generator=g, dtype=dtype)
    k = torch.randn(batch, heads, n, dk, generator=g, dtype=dtype)
    v = torch.randn(batch, heads, n, dv, generator=g, dtype=dtype)
    alpha = torch.randn(batch, heads, n, a_idx.shape[1], generator=g, dtype=dtype)
    beta = torch.rand(batch, heads, n, b_idx.shape[1], generator=g, dtype=dtype) * 2 - 1
    beta = 0.9 * beta / beta.abs().sum(-1, keepdim=True).clamp(min=1)
    return [t.requires_grad_() for t in (q, k, v, alpha, beta)], a_idx, b_idx


def run(backend, inputs, a_idx, b_idx, **kw):
    q, k, v, alpha, beta = inputs
    with poisoned_outputs():
        o = glr_expanded(q, k, v, alpha, a_idx, beta, b_idx, backend=backend, **kw)
        weight = torch.linspace(-1, 2, o.numel(), dtype=o.dtype).view_as(o)  # every dO matters
        grads = torch.autograd.grad((o * weight).sum(), inputs, allow_unused=True,
                                    materialize_grads=True)
    return (o, *grads)


def assert_close(got, want, what, dtype=torch.float64):
    tol = dict(atol=1e-10, rtol=1e-8) if dtype == torch.float64 else dict(atol=2e-4, rtol=2e-4)
    for name, g, w in zip(("o", "dq", "dk", "dv", "dalpha", "dbeta"), got, want):
        assert not torch.isnan(g).any(), f"{what}: {name} has unwritten (NaN) elements"
        torch.testing.assert_close(g, w, **tol, msg=lambda m, name=name: f"{what}: {name}: {m}")


CASES = list(itertools.product(RECURRENT, [False, True], DIRECT))


@pytest.mark.parametrize("recurrent,cache_efficient,direct", CASES)
def test_backends_match_reference_float64(recurrent, cache_efficient, direct):
    for n in LENGTHS:
        inputs, a_idx, b_idx = random_inputs(n, direct, recurrent, cache_efficient, seed=n)
        want = run("reference", inputs, a_idx, b_idx)
        what = f"{direct}+{recurrent}{'(cache)' if cache_efficient else ''} n={n}"
        for chunk in (16, 7):
            assert_close(run("chunked", inputs, a_idx, b_idx, chunk_size=chunk), want,
                         f"chunked(C={chunk}) {what}")
        assert_close(run("flat", inputs, a_idx, b_idx, chunk_size=16), want, f"flat {what}")
        assert_close(run("recurrent", inputs, a_idx, b_idx), want, f"recurrent {what}")


@pytest.mark.parametrize("recurrent", ["first", "pow2"])
def test_float32_and_auto(recurrent):
    inputs, a_idx, b_idx = random_inputs(50, "window(2)", recurrent, True, torch.float32,
                                         dk=5, dv=6)
    want = run("reference", inputs, a_idx, b_idx)
    assert_close(run("auto", inputs, a_idx, b_idx, chunk_size=16), want, "auto", torch.float32)


def test_chunked_gradcheck():
    inputs, a_idx, b_idx = random_inputs(11, "window(2)", "sq1", True, batch=1, heads=1, dk=2,
                                         dv=2)
    assert torch.autograd.gradcheck(
        lambda q, k, v, a, b: glr_expanded(q, k, v, a, a_idx, b, b_idx, backend="chunked",
                                           chunk_size=4), inputs)


def test_it_is_masked_linear_attention():
    # B = 0 and A = full of ones: plain (unnormalised) causal linear attention
    n = 9
    inputs, a_idx, b_idx = random_inputs(n, "full", "none", False)
    q, k, v, _, _ = inputs
    alpha = torch.ones(2, 2, n, n, dtype=torch.float64)
    beta = torch.zeros(2, 2, n, 0, dtype=torch.float64)
    want = ((q @ k.transpose(-1, -2)).tril()) @ v
    for backend in ("chunked", "recurrent", "flat"):
        torch.testing.assert_close(
            glr_expanded(q, k, v, alpha, a_idx, beta, b_idx, backend=backend, chunk_size=4), want)


def test_chunked_keeps_states_only_where_later_chunks_read():
    # first: one state per chunk boundary; the pow2 lattice: a few per chunk; plain pow2: most
    n, c = 256, 32
    first = crossing_reads(make_pattern("first").index(n), c).tolist()
    assert first == [s - 1 for s in range(c, n, c)]
    lattice = crossing_reads(make_pattern("pow2", cache_efficient=True).index(n), c).numel()
    plain = crossing_reads(make_pattern("pow2").index(n), c).numel()
    assert lattice < n // 4 < plain


# ----------------------------------------------------------------------------------------------
# decoding: live matrix states


def max_live_states(b_idx: torch.Tensor) -> torch.Tensor:
    """Per step t, the states the recurrent backend holds after step t: positions p <= t with a
    reader after t (states are dropped after their last reader, `last_reads`)."""
    n = b_idx.shape[0]
    last = torch.tensor(last_reads(b_idx))
    born = torch.zeros(n + 1, dtype=torch.long)
    keep = last >= 0
    born.index_add_(0, torch.arange(n)[keep], torch.ones(int(keep.sum()), dtype=torch.long))
    born.index_add_(0, last[keep], -torch.ones(int(keep.sum()), dtype=torch.long))
    return born.cumsum(0)[:n]


def test_se_pow2_cache_keeps_log_n_states_up_to_8192():
    n = 8192
    pattern = make_pattern("pow2", cache_efficient=True)
    # the layer's cache after step t is live(t); decoding t + 1 tokens
    for t in range(n):
        assert len(pattern.live(t)) <= math.floor(math.log2(t + 1)) + 2, t
    # the op's recurrent backend drops each state after its last reader: same bound
    held = max_live_states(pattern.index(n))
    bound = torch.floor(torch.log2(torch.arange(1, n + 1, dtype=torch.float64))) + 2
    assert bool((held <= bound).all())
    assert int(held.max()) <= 15
    # plain pow2 must keep every state (the point of the lattice)
    assert int(max_live_states(make_pattern("pow2").index(300)).max()) > 100


def test_recurrent_backend_reports_its_largest_live_set():
    n = 100
    inputs, a_idx, b_idx = random_inputs(n, "self", "pow2", True, batch=1, heads=1)
    largest = []
    with torch.no_grad():
        expanded_recurrent(*inputs[:3], inputs[3], a_idx, inputs[4], b_idx, max_live=largest)
    assert largest[0] == int(max_live_states(b_idx).max()) <= math.floor(math.log2(n)) + 2


def decode(mixer, x):
    cache, ys, sizes = None, [], []
    with torch.no_grad():
        for t in range(x.shape[1]):
            y_t, cache = mixer.step(x[:, t], cache)
            ys.append(y_t)
            inner = cache["mixer"] if "mixer" in cache else cache
            sizes.append(len(inner["recurrent"]))
    return torch.stack(ys, 1), sizes


def test_se_pow2_cache_step_matches_forward_with_log_n_states():
    torch.manual_seed(0)
    n = 300
    mixer = build_mixer(catalogue()["se_pow2_cache"], d_model=16, num_heads=2)
    x = torch.randn(1, n, 16)
    with torch.no_grad():
        y = mixer(x)
    y_steps, sizes = decode(mixer, x)
    torch.testing.assert_close(y_steps, y, atol=1e-5, rtol=1e-5)
    assert all(s <= math.floor(math.log2(t)) + 2 for t, s in enumerate(sizes, start=1))


# ----------------------------------------------------------------------------------------------
# the mixers


@pytest.mark.parametrize("name", SE_MIXERS)
@pytest.mark.parametrize("rule,place", [("softmax", "input"), ("decay", "input"),
                                        ("softmax", "qkv")])
def test_mixers_decode_and_match_reference(name, rule, place):
    torch.manual_seed(0)
    # backend chunked, not auto: at n = 21 auto would take the reference itself
    cfg = dict(catalogue()[name], params={"coefficients": rule}, short_conv=3,
               short_conv_on=place, chunk_size=8, backend="chunked")
    mixer = build_mixer(cfg, d_model=12, num_heads=2).double()
    x = torch.randn(2, 21, 12, dtype=torch.float64, requires_grad=True)
    y = mixer(x)
    torch.testing.assert_close(decode(mixer, x)[0], y, atol=1e-10, rtol=1e-8)
    params = [x, *mixer.parameters()]
    grads = torch.autograd.grad(y.pow(2).sum(), params)
    (mixer.mixer if place == "input" else mixer).backend = "reference"
    y_ref = mixer(x)
    grads_ref = torch.autograd.grad(y_ref.pow(2).sum(), params)
    torch.testing.assert_close(y, y_ref)
    for g, g_ref in zip(grads, grads_ref):
        torch.testing.assert_close(g, g_ref)


def test_catalogue_entries_are_state_expanded():
    cat = catalogue()
    for name in SE_MIXERS:
        assert cat[name]["kind"] == "expanded" and cat[name]["name"] == name
        assert build_mixer(cat[name], 8, 2).state_expanded


def test_state_size_counts_matrix_states():
    cat = catalogue()
    first = build_mixer(cat["se_first"], d_model=32, num_heads=4)  # head_dim 8
    assert first.cache_size(1000) == 1
    assert first.state_size(1000) == 4 * (8 * 8 + 8)  # one state and its coefficient key
    pow2_cache = build_mixer(cat["se_pow2_cache"], d_model=32, num_heads=4)
    assert pow2_cache.state_size(3000) == 12 * 4 * (8 * 8 + 8)
    pow2 = build_mixer(cat["se_pow2"], d_model=32, num_heads=4)
    # self + distances 1..1024: 12 reads of (score 2d + accumulation 2d^2), readout 2d^2
    assert pow2.flops_per_token(1025) == 4 * (12 * (2 * 8 + 2 * 64) + 2 * 64)


def test_joint_softmax_keeps_outputs_bounded():
    # rows of [A | B] are convex: every state is a convex mix of outer products, so the RMS-normed
    # readout stays finite at any length
    torch.manual_seed(0)
    mixer = build_mixer(catalogue()["se_sq1"], d_model=8, num_heads=1)
    with torch.no_grad():
        y = mixer(torch.randn(1, 2000, 8) * 5)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("cfg,message", [
    ({"kind": "expanded", "direct": "self", "params": {"coefficients": "gate"}},
     "coefficients must be one of"),
    ({"kind": "expanded", "direct": "self", "params": {"expand": 2}}, "takes only 'coefficients'"),
    ({"kind": "expanded", "direct": "self", "backend": "cuda"}, "backend must be one of"),
])
def test_bad_configs(cfg, message):
    with pytest.raises(ValueError, match=message):
        build_mixer(cfg, 8, 2)


def test_bad_inputs_are_named():
    inputs, a_idx, b_idx = random_inputs(5, "self", "first", False)
    q, k, v, alpha, beta = inputs
    with pytest.raises(ValueError, match="q and k must have one shape"):
        glr_expanded(q, k[..., :2], v, alpha, a_idx, beta, b_idx)
    with pytest.raises(ValueError, match="v must be"):
        glr_expanded(q, k, v[:, :, :3], alpha, a_idx, beta, b_idx)
    with pytest.raises(ValueError, match="backend must be one of"):
        glr_expanded(q, k, v, alpha, a_idx, beta, b_idx, backend="fused")
    with pytest.raises(ValueError, match="b_idx"):
        glr_expanded(q, k, v, alpha, a_idx, beta, torch.zeros(5, 1, dtype=torch.long))


def test_auto_keeps_the_measured_faster_backend():
    # docs/mixers.md: reference up to n = 256 (whatever the chunk size), then chunked where
    # chunks read few past states (first, kth, the lattices), flat for plain pow2, sq1 and dense
    # (their chunks read many chunk sizes of past states)
    from mixers.ops.expanded import auto_backend

    def pick(name, ce, n):
        return auto_backend(make_pattern(name, cache_efficient=ce).index(n), 64)

    assert {pick(p, ce, n) for p, ce in [("first", False), ("kth", False), ("pow2", True),
                                         ("sq1", True)] for n in (512, 8192)} == {"chunked"}
    assert pick("sq1", False, 4096) == pick("dense", False, 4096) == "flat"
    # plain pow2 and sq1 read 2 to 44 chunk sizes of past states: flat from 5 C (sq1 from
    # n = 1024, pow2 from 4096)
    assert pick("sq1", False, 512) == pick("pow2", False, 2048) == "chunked"
    assert pick("sq1", False, 1024) == pick("pow2", False, 4096) == "flat"
    assert {pick(p, ce, n) for p, ce in [("first", False), ("pow2", True), ("dense", False)]
            for n in (1, 65, 256)} == {"reference"}
    assert pick("first", False, 257) == "chunked"
    assert auto_backend(make_pattern("first").index(257), 1024) == "chunked"


# ----------------------------------------------------------------------------------------------
# the blocked form of `chunked` (mixers/ops/expanded_blocked.py)


def test_blocked_form_runs_where_direct_reads_stay_in_their_chunk():
    from mixers.ops.expanded_blocked import blocked_plan

    n = 70
    b_idx = make_pattern("pow2", cache_efficient=True).index(n)
    assert blocked_plan(make_direct("self").index(n), b_idx, 16) is not None
    assert blocked_plan(make_direct("window(3)").index(n), b_idx, 16) is None  # chunk loop
    assert blocked_plan(make_direct("full").index(n), b_idx, 16) is None


@pytest.mark.parametrize("recurrent,cache_efficient", [("first", False), ("pow2", True),
                                                       ("sq1", True), ("pow2", False)])
def test_blocked_matches_the_chunk_loop(recurrent, cache_efficient):
    # the blocked form replaced the chunk loop for direct = self: same numbers up to rounding
    from mixers.ops.expanded import expanded_chunked
    from mixers.ops.expanded_blocked import blocked_plan, expanded_blocked

    n = 203
    inputs, a_idx, b_idx = random_inputs(n, "self", recurrent, cache_efficient, seed=3, dk=5,
                                         dv=6)
    q, k, v, alpha, beta = inputs
    with poisoned_outputs():
        got = expanded_blocked(q, k, v, alpha, beta, blocked_plan(a_idx, b_idx, 32))
        want = expanded_chunked(q, k, v, alpha, a_idx, beta, b_idx, 32)
    torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-10)
    # the stored states' loop has a backward of its own (_StateReads): every gradient as well
    weight = torch.randn(got.shape, generator=torch.Generator().manual_seed(5), dtype=got.dtype)
    g_got = torch.autograd.grad((got * weight).sum(), inputs)
    g_want = torch.autograd.grad((want * weight).sum(), inputs)
    for name, a, b in zip("q k v alpha beta".split(), g_got, g_want):
        torch.testing.assert_close(a, b, atol=1e-11, rtol=1e-9, msg=name)


@pytest.mark.parametrize("recurrent,cache_efficient", [("pow2", False), ("sq1", True)])
def test_blocked_gradcheck_across_many_chunks(recurrent, cache_efficient):
    # 37 rows in chunks of 4: states stored by many owner chunks, read by many later ones
    inputs, a_idx, b_idx = random_inputs(37, "self", recurrent, cache_efficient, batch=1,
                                         heads=2, dk=2, dv=3, seed=7)
    assert torch.autograd.gradcheck(
        lambda q, k, v, a, b: glr_expanded(q, k, v, a, a_idx, b, b_idx, backend="chunked",
                                           chunk_size=4), inputs)


def test_blocked_gradcheck():
    inputs, a_idx, b_idx = random_inputs(11, "self", "sq1", True, batch=1, heads=1, dk=2, dv=2)
    assert torch.autograd.gradcheck(
        lambda q, k, v, a, b: glr_expanded(q, k, v, a, a_idx, b, b_idx, backend="chunked",
                                           chunk_size=4), inputs)


def test_auto_takes_the_blocked_form_for_one_state_per_chunk_below_the_cut_off():
    from mixers.ops.expanded import auto_backend

    a_idx = make_direct("self").index(256)
    first = make_pattern("first").index(256)
    lattice = make_pattern("pow2", cache_efficient=True).index(256)
    assert auto_backend(first, 64, a_idx) == "chunked"
    assert auto_backend(lattice, 64, a_idx) == "reference"
    assert auto_backend(first[:128], 64, a_idx[:128]) == "reference"
    assert auto_backend(first, 64, make_direct("window(3)").index(256)) == "reference"
