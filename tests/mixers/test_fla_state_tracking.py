"""The fla baselines that can track state (negative eigenvalues): DeltaNet and Gated DeltaNet with
`allow_neg_eigval`, Gated DeltaProduct, KDA and RWKV-7 (mixers/fla_adapter.py, docs/mixers.md).

Their CPU stand-ins are checked here against a second form of the same math that fla ships (as
tests/mixers/test_fla.py does for the others), outputs and gradients; decoding, causality,
training and the GPU comparison run in tests/mixers/test_fla.py, whose BASELINES list them.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mixers import build_mixer
from mixers import fla_adapter as fa
from runners.paths import catalogue

TOL = {"atol": 1e-4, "rtol": 1e-4}


def _inputs(*shapes, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*s, generator=g).requires_grad_() for s in shapes]


def _agree(f1, f2, inputs):
    """f1(*inputs) == f2(*inputs), and so are their gradients for a random cotangent."""
    y1, y2 = f1(*inputs), f2(*inputs)
    torch.testing.assert_close(y1, y2, **TOL)
    w = torch.randn_like(y1)
    g1 = torch.autograd.grad((y1 * w).sum(), inputs)
    g2 = torch.autograd.grad((y2 * w).sum(), inputs)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, **TOL)


@pytest.mark.parametrize("householder,gated", [(2, True), (3, False), (1, True)])
def test_gated_delta_product_matches_fla_recurrent_reference(householder, gated):
    from fla.ops.gated_delta_product.naive import naive_recurrent_gated_delta_product
    b, n, h, d = 2, 23, 2, 8
    q, k, v, g, beta = _inputs((b, n, h, d), (b, n * householder, h, d),
                               (b, n * householder, h, d), (b, n, h), (b, n * householder, h))

    def split(rest):  # (decay or None, beta)
        return (-F.softplus(rest[0]), rest[1]) if gated else (None, rest[0])

    def ours(q, k, v, *rest):
        g, beta = split(rest)
        return fa._gated_delta_product(F.normalize(q, dim=-1), F.normalize(k, dim=-1), v, g,
                                       beta.sigmoid() * 2, num_householder=householder)[0]

    def fla_ref(q, k, v, *rest):
        g, beta = split(rest)
        return naive_recurrent_gated_delta_product(
            F.normalize(q, dim=-1), F.normalize(k, dim=-1), v, g, beta.sigmoid() * 2,
            scale=d ** -0.5, num_householder=householder)[0]

    _agree(ours, fla_ref, [q, k, v, g, beta] if gated else [q, k, v, beta])


def test_kda_matches_fla_chunked_reference_where_it_is_finite():
    # mild decays, where fla's chunked reference does not overflow; n a multiple of its chunk
    from fla.ops.kda.naive import naive_chunk_kda
    b, n, h, d = 2, 64, 2, 8
    q, k, v, g, beta = _inputs((b, n, h, d), (b, n, h, d), (b, n, h, d), (b, n, h, d), (b, n, h))

    def ours(q, k, v, g, beta):
        return fa._kda(F.normalize(q, dim=-1), F.normalize(k, dim=-1), v,
                       -0.1 * F.softplus(g), beta.sigmoid())[0]

    def fla_ref(q, k, v, g, beta):
        return naive_chunk_kda(F.normalize(q, dim=-1), F.normalize(k, dim=-1), v,
                               -0.1 * F.softplus(g), beta.sigmoid())[0]

    _agree(ours, fla_ref, [q, k, v, g, beta])


@pytest.mark.parametrize("op", ["kda", "gated_delta_rule"])
def test_negative_eigenvalue_prologue_doubles_the_sigmoid(op):
    # allow_neg_eigval: beta = 2 sigmoid(b), in (0, 2), so I - beta k k^T can flip a direction
    b, n, h, d = 1, 9, 2, 4
    q, k, v, beta = _inputs((b, n, h, d), (b, n, h, d), (b, n, h, d), (b, n, h))
    g = -torch.rand(b, n, h, d) if op == "kda" else -torch.rand(b, n, h)
    fn = fa._kda if op == "kda" else fa._gated_delta_rule
    fused = fn(q, k, v, g, beta, use_beta_sigmoid_in_kernel=True, allow_neg_eigval=True)[0]
    explicit = fn(q, k, v, g, 2 * beta.sigmoid())[0]
    positive = fn(q, k, v, g, beta, use_beta_sigmoid_in_kernel=True)[0]
    torch.testing.assert_close(fused, explicit)
    assert not torch.allclose(fused, positive)


@pytest.mark.parametrize("n", [1, 45])
def test_dplr_chunkwise_matches_its_recurrence(n):
    b, h, d = 2, 2, 8
    r, w, k, v, a = _inputs(*[(b, n, h, d)] * 5)

    def chunked(r, w, k, v, a):
        kk = F.normalize(k, dim=-1)
        return fa._rwkv7_chunk(r, -0.6 * w.sigmoid(), k, v, -kk, kk * a.sigmoid())[0]

    def recurrent(r, w, k, v, a):  # RWKV-7's decoding form, with a state out
        kk = F.normalize(k, dim=-1)
        return fa._rwkv7_recurrent(r, -0.6 * w.sigmoid(), k, v, kk, a.sigmoid(),
                                   output_final_state=True)[0]

    _agree(chunked, recurrent, [r, w, k, v, a])


def test_token_shift_carries_the_last_token():
    x = torch.randn(2, 7, 5)
    whole = fa._token_shift(x)
    first, cache = fa._token_shift(x[:, :4], output_cache=True)
    second = fa._token_shift(x[:, 4:], cache=cache)
    torch.testing.assert_close(torch.cat([first, second], 1), whole)
    torch.testing.assert_close(whole[:, 1:], x[:, :-1] - x[:, 1:])


def test_configs_and_theory():
    cat = catalogue()
    assert cat["deltanet_neg"]["params"]["allow_neg_eigval"] is True
    assert cat["gated_deltanet_neg"]["params"]["allow_neg_eigval"] is True
    for name in ("deltanet_neg", "gated_deltanet_neg", "gated_deltaproduct", "kda", "rwkv7"):
        m = build_mixer(cat[name], d_model=32, num_heads=2)
        assert m.state_size(10) == m.state_size(5000) > 0
        # KDA as Kimi Linear ships it: beta in (0, 1) (allow_neg_eigval=true is one override away)
        assert getattr(m.layer, "allow_neg_eigval", True) is (name != "kda"), name
    product = build_mixer(cat["gated_deltaproduct"], d_model=32, num_heads=2)
    assert product.state_size(10) == 2 * 16 * 32  # head_dim 16, value dim 2 x 16
    assert product.flops_per_token(10) == (3 + 4 * 2) * product.state_size(10)
    rwkv = build_mixer(cat["rwkv7"], d_model=32, num_heads=2)
    assert rwkv.state_size(10) == 2 * 16 * 16
