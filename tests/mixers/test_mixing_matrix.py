"""GLRMixer.mixing_matrix: M = (I - B)^{-1} A reproduces the op, and is attention for attention."""

import math

import pytest
import torch

from mixers import build_mixer
from mixers.layers import _merge_heads, _split_heads
from mixers.ops import glr

GLR_KINDS = [
    {"direct": "full", "recurrent": "none"},
    {"direct": "self", "recurrent": "first"},
    {"direct": "self", "recurrent": "pow2"},
    {"direct": "self", "recurrent": "pow2", "cache_efficient": True},
    {"direct": "window(3)", "recurrent": "sq1"},
]


def _mixer(spec, d_model=12, num_heads=2):
    torch.manual_seed(0)
    return build_mixer({"kind": "glr", **spec}, d_model, num_heads).double()


@pytest.mark.parametrize("spec", GLR_KINDS, ids=lambda s: f"{s['direct']}-{s['recurrent']}")
@pytest.mark.parametrize("n", [1, 2, 13])
def test_mixing_matrix_reproduces_the_op(spec, n):
    mixer = _mixer(spec)
    x = torch.randn(3, n, 12, dtype=torch.float64)
    M, A, B = mixer.mixing_matrix(x)
    assert M.shape == A.shape == B.shape == (3, 2, n, n)
    q, k, v = (_split_heads(t, 2) for t in mixer.qkv(x).chunk(3, dim=-1))
    alpha, a_idx, beta, b_idx = mixer._coefficients(x, q, k)
    y = glr(v, alpha, a_idx, beta, b_idx, backend="recurrent")
    torch.testing.assert_close(M @ v, y)
    torch.testing.assert_close(mixer.out(_merge_heads(M @ v)), mixer(x).detach())
    # causal, B strictly lower, M row-stochastic (joint softmax over [A | B])
    assert torch.all(M.triu(1) == 0) and torch.all(B.triu(0) == 0)
    torch.testing.assert_close(M.sum(-1), torch.ones(3, 2, n, dtype=torch.float64))


@pytest.mark.parametrize("n", [1, 9])
def test_attention_mixing_matrix_is_the_attention_matrix(n):
    mixer = _mixer({"direct": "full", "recurrent": "none"})
    x = torch.randn(2, n, 12, dtype=torch.float64)
    M, A, B = mixer.mixing_matrix(x)
    q, k, _ = (_split_heads(t, 2) for t in mixer.qkv(x).chunk(3, dim=-1))
    s = (q @ k.transpose(-1, -2)) / math.sqrt(6)
    causal = torch.ones(n, n, dtype=torch.bool).tril()
    torch.testing.assert_close(M, torch.softmax(s.masked_fill(~causal, float("-inf")), -1))
    torch.testing.assert_close(A, M)
    assert torch.all(B == 0)
