"""Signed recurrent coefficients (docs/design.md 1.10, mixers/signed.py) for the glr and expanded
kinds: the bound that keeps the solve stable, every backend against the reference (outputs and
every gradient, through the layer), decoding, theory, configs and identity."""

import pytest
import torch

import mixers.expanded
from mixers import build_mixer, poisoned_outputs
from mixers.ops.reference import dense_matrix
from runners.paths import catalogue
from runners.schema import config_hash

SIGNED = ["first_order_signed", "pow2_cache_signed", "se_first_signed", "se_pow2_cache_signed"]
LENGTHS = [1, 7, 37]  # 1, odd, not a multiple of the chunk sizes below


def signed_cfg(kind, direct, recurrent, cache_efficient=False, **kw):
    return {"name": "t", "kind": kind, "direct": direct, "recurrent": recurrent,
            "cache_efficient": cache_efficient, "params": {"coefficients": "signed"}, **kw}


def fresh_inputs(n, d_model, seed):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(2, n, d_model, generator=g, dtype=torch.float64) * 2).requires_grad_()


def layer_run(mixer, x):
    """Output and the gradient of every input and parameter, with poisoned op buffers."""
    with poisoned_outputs():
        y = mixer(x)
        weight = torch.linspace(-1, 2, y.numel(), dtype=y.dtype).view_as(y)  # every dY matters
        grads = torch.autograd.grad((y * weight).sum(), [x, *mixer.parameters()],
                                    allow_unused=True, materialize_grads=True)
    return y, grads


def assert_same(got, want, what, tol):
    (y, grads), (y_ref, grads_ref) = got, want
    assert not torch.isnan(y).any(), f"{what}: unwritten (NaN) output"
    torch.testing.assert_close(y, y_ref, atol=tol, rtol=tol, msg=lambda m: f"{what}: y: {m}")
    for i, (g, g_ref) in enumerate(zip(grads, grads_ref)):
        assert not torch.isnan(g).any(), f"{what}: gradient {i} has NaN elements"
        torch.testing.assert_close(g, g_ref, atol=tol, rtol=tol,
                                   msg=lambda m, i=i: f"{what}: gradient {i}: {m}")


def decode(mixer, x):
    cache, ys = None, []
    with torch.no_grad():
        for t in range(x.shape[1]):
            y_t, cache = mixer.step(x[:, t], cache)
            ys.append(y_t)
    return torch.stack(ys, 1)


def glr_rows(mixer, x):
    """(A, B) dense [B, H, n, n] of a glr layer on x."""
    _, A, B = mixer.mixing_matrix(x)
    return A, B


def expanded_rows(mixer, x, monkeypatch):
    """(A, B) dense of an expanded layer on x, caught on their way into glr_expanded."""
    seen = {}
    real = mixers.expanded.glr_expanded

    def spy(q, k, v, alpha, a_idx, beta, b_idx, **kw):
        seen.update(A=dense_matrix(alpha, a_idx, x.shape[1]), B=dense_matrix(beta, b_idx,
                                                                            x.shape[1]))
        return real(q, k, v, alpha, a_idx, beta, b_idx, **kw)

    monkeypatch.setattr(mixers.expanded, "glr_expanded", spy)
    with torch.no_grad():
        mixer(x)
    return seen["A"], seen["B"]


# -- the bound -----------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["glr", "expanded"])
@pytest.mark.parametrize("recurrent,cache_efficient", [("first", False), ("pow2", True),
                                                       ("dense", False)])
def test_rows_keep_absolute_sum_at_most_one(kind, recurrent, cache_efficient, monkeypatch):
    """sum_j alpha[i,j] + sum_j |beta[i,j]| <= 1 on every row, beta in (-1, 1) and of both signs:
    the recurrence is a contraction in the inf-norm, so ||(I - B)^{-1} A||_inf <= 1."""
    torch.manual_seed(0)
    mixer = build_mixer(signed_cfg(kind, "window(2)", recurrent, cache_efficient), 16, 2)
    x = torch.randn(3, 300, 16) * 3
    A, B = glr_rows(mixer, x) if kind == "glr" else expanded_rows(mixer, x, monkeypatch)
    assert (A >= 0).all()
    rows = A.sum(-1) + B.abs().sum(-1)
    assert rows.max() <= 1 + 1e-5
    assert (B.abs() < 1).all()
    assert (B < -1e-3).any() and (B > 1e-3).any(), "the rule must actually produce both signs"
    eye = torch.eye(A.shape[-1], dtype=A.dtype)
    M = torch.linalg.solve_triangular(eye - B, A, upper=False, unitriangular=True)
    assert M.abs().sum(-1).max() <= 1 + 1e-4
    assert (M < -1e-3).any(), "signed rows must reach negative mixing weights"


@pytest.mark.parametrize("recurrent,cache_efficient", [("first", False), ("pow2", True)])
def test_outputs_stay_bounded_at_any_length(recurrent, cache_efficient):
    # |y_i| <= max_j |v_j| elementwise, the softmax rule's bound, at n = 3000
    torch.manual_seed(0)
    mixer = build_mixer(signed_cfg("glr", "self", recurrent, cache_efficient), 8, 1)
    with torch.no_grad():
        mixer.out.weight.copy_(torch.eye(8))
        mixer.sign.proj.bias.fill_(-3.0)  # sigma near -1: the hardest case for the bound
        x = torch.randn(1, 3000, 8) * 5
        _, _, v = mixer.qkv(x).chunk(3, dim=-1)
        y = mixer(x)
    assert torch.isfinite(y).all()
    assert y.abs().max() <= v.abs().max() + 1e-4


# -- backends, decoding ----------------------------------------------------------------------

GLR_CASES = [("self", "first", False), ("window(3)", "pow2", True), ("self", "sq1", False),
             ("full", "kth(3)", False)]


@pytest.mark.parametrize("direct,recurrent,cache_efficient", GLR_CASES)
@pytest.mark.parametrize("n", LENGTHS)
def test_glr_backends_match_reference(direct, recurrent, cache_efficient, n):
    torch.manual_seed(n)
    mixer = build_mixer(signed_cfg("glr", direct, recurrent, cache_efficient, chunk_size=16,
                                   backend="reference"), 12, 2).double()
    x = fresh_inputs(n, 12, seed=n)
    want = layer_run(mixer, x)
    for backend, chunk in (("chunked", 16), ("chunked", 5), ("recurrent", 16)):
        mixer.backend, mixer.chunk_size = backend, chunk
        assert_same(layer_run(mixer, x), want, f"{backend}(C={chunk}) {direct}+{recurrent} "
                    f"n={n}", 1e-9)
    torch.testing.assert_close(decode(mixer, x), want[0].detach(), atol=1e-10, rtol=1e-8)


@pytest.mark.parametrize("n", [1, 37])
def test_glr_triton_matches_reference(n):
    pytest.importorskip("triton")
    device = "cuda" if torch.cuda.is_available() else "cpu"  # CPU: TRITON_INTERPRET=1
    torch.manual_seed(n)
    mixer = build_mixer(signed_cfg("glr", "window(3)", "pow2", True, chunk_size=16,
                                   backend="reference"), 32, 2).to(device)
    x = (torch.randn(2, n, 32, device=device) * 2).requires_grad_()
    want = layer_run(mixer, x)
    mixer.backend = "triton"
    assert_same(layer_run(mixer, x), want, f"triton n={n}", 2e-4)


EXPANDED_CASES = [("self", "first", False), ("window(3)", "pow2", True), ("self", "kth(3)", False)]


@pytest.mark.parametrize("direct,recurrent,cache_efficient", EXPANDED_CASES)
@pytest.mark.parametrize("n", LENGTHS)
def test_expanded_backends_match_reference(direct, recurrent, cache_efficient, n):
    torch.manual_seed(n)
    mixer = build_mixer(signed_cfg("expanded", direct, recurrent, cache_efficient,
                                   chunk_size=16, backend="reference"), 12, 2).double()
    x = fresh_inputs(n, 12, seed=n)
    want = layer_run(mixer, x)
    for backend, chunk in (("chunked", 16), ("chunked", 5), ("recurrent", 16), ("flat", 5)):
        mixer.backend, mixer.chunk_size = backend, chunk
        assert_same(layer_run(mixer, x), want, f"{backend}(C={chunk}) {direct}+{recurrent} "
                    f"n={n}", 1e-9)
    torch.testing.assert_close(decode(mixer, x), want[0].detach(), atol=1e-10, rtol=1e-8)


@pytest.mark.parametrize("name", SIGNED)
def test_catalogue_signed_mixers_decode_with_a_qkv_conv(name):
    torch.manual_seed(0)
    cfg = dict(catalogue()[name], short_conv=3, short_conv_on="qkv", chunk_size=8,
               backend="chunked")
    mixer = build_mixer(cfg, d_model=12, num_heads=2).double()
    x = fresh_inputs(21, 12, seed=1)
    y = mixer(x)
    torch.testing.assert_close(decode(mixer, x), y.detach(), atol=1e-10, rtol=1e-8)


# -- theory, configs, identity ---------------------------------------------------------------

@pytest.mark.parametrize("signed,plain", [("first_order_signed", "first_order"),
                                          ("pow2_cache_signed", "pow2_cache"),
                                          ("se_first_signed", "se_first"),
                                          ("se_pow2_cache_signed", "se_pow2_cache")])
def test_theory_columns_are_those_of_the_softmax_mixer(signed, plain):
    # the sign comes from the token being decoded: no state; its projection is not mixing work
    cat = catalogue()
    a, b = build_mixer(cat[signed], 32, 4), build_mixer(cat[plain], 32, 4)
    for n in (1, 100, 3000):
        assert a.state_size(n) == b.state_size(n)
        assert a.flops_per_token(n) == b.flops_per_token(n)
        assert a.cache_size(n) == b.cache_size(n)
    extra = sum(p.numel() for p in a.parameters()) - sum(p.numel() for p in b.parameters())
    assert extra == 32 * 4 + 4  # the sign gate: one weight row and bias per head


@pytest.mark.parametrize("cfg,message", [
    (signed_cfg("glr", "full", "none"), "recurrent=none has none"),
    (signed_cfg("expanded", "self", "none"), "recurrent=none has none"),
    ({"kind": "glr", "direct": "self", "recurrent": "first", "params": {"coefficients": "neg"}},
     "coefficients must be one of"),
    ({"kind": "glr", "direct": "self", "recurrent": "first", "params": {"rho": 0.5}},
     "kind 'glr' takes only 'coefficients'"),
])
def test_bad_configs(cfg, message):
    with pytest.raises(ValueError, match=message):
        build_mixer(cfg, 8, 2)


def test_softmax_default_keeps_the_identity():
    # older results have no coefficients key: softmax spelled out is the same run, signed not
    v = {"task": 1, "generator": 1, "op": 2}
    mixer = {"name": "first_order", "kind": "glr", "direct": "self", "recurrent": "first",
             "params": {}}
    old = {"seed": 0, "mixer": mixer}
    softmax = {"seed": 0, "mixer": {**mixer, "params": {"coefficients": "softmax"}}}
    signed = {"seed": 0, "mixer": {**mixer, "params": {"coefficients": "signed"}}}
    assert config_hash(old, v) == config_hash(softmax, v) != config_hash(signed, v)
