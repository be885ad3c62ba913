"""Position schemes (mixers/positions.py): RoPE's relative scores, ALiBi's bias written by hand,
the kinds that take them, and decoding = the parallel form for every scheme and kind."""

from __future__ import annotations

import math
import re

import pytest
import torch
import torch.nn.functional as F

from mixers import build_mixer
from mixers.positions import POS_EMB, alibi_bias, alibi_slopes, rope, sinusoidal
from runners.model import LanguageModel


def _scores(q, k, qpos, kpos):
    return rope(q, qpos) @ rope(k, kpos).transpose(-1, -2)


def test_rope_scores_depend_only_on_the_offset():
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, 9, 8, generator=g, dtype=torch.double), \
        torch.randn(2, 9, 8, generator=g, dtype=torch.double)
    pos = torch.arange(9)
    base = _scores(q, k, pos, pos)
    for shift in (1, 5, 1000):  # shifting every position leaves every score as it was
        torch.testing.assert_close(_scores(q, k, pos + shift, pos + shift), base)
    # one query and one key vector at every position: the score matrix is Toeplitz in i - j
    s = _scores(q[0, :1].expand(9, 8), k[0, :1].expand(9, 8), pos, pos)
    for d in range(-8, 9):
        diag = torch.diagonal(s, offset=d)
        torch.testing.assert_close(diag, diag[:1].expand_as(diag))
    assert not torch.allclose(s[1, 0], s[2, 0])  # and it does depend on the offset


def test_rope_is_a_rotation_and_the_identity_at_zero():
    x = torch.randn(3, 6, 10, dtype=torch.double)
    y = rope(x, torch.arange(6) * 7)
    torch.testing.assert_close(y.norm(dim=-1), x.norm(dim=-1))
    torch.testing.assert_close(rope(x, torch.zeros(6, dtype=torch.long)), x)


def test_alibi_slopes_of_press_et_al():
    assert alibi_slopes(8).tolist() == [2.0 ** -(h + 1) for h in range(8)]
    assert alibi_slopes(2).tolist() == [2.0 ** -4, 2.0 ** -8]
    # 6 heads: the 4-head slopes, then every other one of the 8-head slopes
    assert alibi_slopes(6).tolist() == [2.0 ** -2, 2.0 ** -4, 2.0 ** -6, 2.0 ** -8,
                                        2.0 ** -1, 2.0 ** -3]


def test_alibi_bias_matrix_by_hand():
    pos = torch.arange(3)
    bias = alibi_bias(alibi_slopes(2), pos, pos.expand(3, 3), torch.double)
    m0, m1 = 1 / 16, 1 / 256
    expect = torch.tensor([
        [[0, m0, 2 * m0], [-m0, 0, m0], [-2 * m0, -m0, 0]],
        [[0, m1, 2 * m1], [-m1, 0, m1], [-2 * m1, -m1, 0]],
    ], dtype=torch.double)  # -m (i - j): the upper triangle is masked by the caller
    torch.testing.assert_close(bias, expect)


def _attention_reference(layer, x, scheme):
    """Causal softmax attention written out: (q k^T / sqrt d + bias) masked, softmax, @ v."""
    b, n, _ = x.shape
    q, k, v = (t.view(b, n, layer.num_heads, -1).transpose(1, 2)
               for t in layer.qkv(x).chunk(3, dim=-1))
    pos = torch.arange(n)
    if scheme == "rope":
        q, k = rope(q, pos), rope(k, pos)
    s = q @ k.transpose(-1, -2) / math.sqrt(layer.head_dim)
    if scheme == "alibi":
        s = s + alibi_bias(alibi_slopes(layer.num_heads), pos, pos.expand(n, n), s.dtype)
    s = s.masked_fill(pos.unsqueeze(0) > pos.unsqueeze(1), float("-inf"))
    y = torch.softmax(s, -1) @ v
    return layer.out(y.transpose(1, 2).reshape(b, n, -1))


@pytest.mark.parametrize("scheme", ["rope", "alibi", "none"])
def test_attention_and_its_glr_form_match_the_written_out_reference(scheme):
    torch.manual_seed(1)
    full = build_mixer({"name": "a", "direct": "full"}, 16, 4, pos_emb=scheme).double()
    # the same layer through the gather path of the op (a window longer than the input)
    windowed = build_mixer({"name": "w", "direct": "window(64)", "backend": "reference"}, 16, 4,
                           pos_emb=scheme).double()
    windowed.load_state_dict(full.state_dict())
    x = torch.randn(2, 13, 16, dtype=torch.double)
    ref = _attention_reference(full, x, scheme)
    torch.testing.assert_close(full(x), ref)
    torch.testing.assert_close(windowed(x), ref)


MIXERS = {
    "attention": {"direct": "full"},
    "local_attention": {"direct": "window(4)"},
    "first_order": {"direct": "self", "recurrent": "first"},
    "pow2_cache": {"direct": "self", "recurrent": "pow2", "cache_efficient": True},
    "sq1": {"direct": "window(2)", "recurrent": "sq1"},
    "se_first": {"kind": "expanded", "direct": "self", "recurrent": "first"},
    "se_pow2_cache": {"kind": "expanded", "direct": "self", "recurrent": "pow2",
                      "cache_efficient": True},
    "se_decay": {"kind": "expanded", "direct": "self", "recurrent": "first",
                 "params": {"coefficients": "decay"}},
    "se_window": {"kind": "expanded", "direct": "window(3)"},
}


def _decode(mixer, x):
    """mixer.step over x[:, t] (vectors, or a model's tokens), stacked along dim 1."""
    cache, ys = None, []
    for t in range(x.shape[1]):
        y, cache = mixer.step(x[:, t], cache)
        ys.append(y)
    return torch.stack(ys, 1)


@pytest.mark.parametrize("scheme", ["rope", "alibi", "none"])
@pytest.mark.parametrize("name", sorted(MIXERS))
def test_step_decodes_like_the_forward(name, scheme):
    torch.manual_seed(2)
    mixer = build_mixer({"name": name, **MIXERS[name]}, 16, 2, pos_emb=scheme).double()
    x = torch.randn(2, 19, 16, dtype=torch.double)
    y = mixer(x)
    torch.testing.assert_close(_decode(mixer, x), y, atol=1e-10, rtol=1e-8)


@pytest.mark.parametrize("name", ["pow2_cache", "se_first", "attention"])
def test_rope_and_alibi_change_the_output(name):
    torch.manual_seed(3)
    x = torch.randn(1, 11, 16, dtype=torch.double)
    outs = {}
    for scheme in ("rope", "alibi", "none"):
        torch.manual_seed(4)
        outs[scheme] = build_mixer({"name": name, **MIXERS[name]}, 16, 2, pos_emb=scheme
                                   ).double()(x)
    assert not torch.allclose(outs["rope"], outs["none"])
    assert not torch.allclose(outs["alibi"], outs["none"])


@pytest.mark.parametrize("scheme", POS_EMB)
def test_the_model_decodes_like_its_forward(scheme):
    torch.manual_seed(5)
    lm = LanguageModel(12, 16, {"name": "p", "direct": "self", "recurrent": "pow2"},
                       d_model=16, n_layers=2, num_heads=2, pos_emb=scheme).double()
    tokens = torch.randint(0, 12, (2, 15))
    torch.testing.assert_close(_decode(lm, tokens), lm(tokens), atol=1e-10, rtol=1e-8)


@pytest.mark.parametrize("scheme", ["sinusoidal", "rope", "alibi", "none"])
def test_only_learned_positions_tie_a_model_to_its_length(scheme):
    lm = LanguageModel(12, 8, {"name": "a"}, d_model=16, n_layers=1, num_heads=2, pos_emb=scheme)
    assert lm.pos is None and lm(torch.randint(0, 12, (1, 40))).shape == (1, 40, 12)
    learned = LanguageModel(12, 8, {"name": "a"}, d_model=16, n_layers=1, num_heads=2)
    with pytest.raises(ValueError, match="pos_emb=learned.*8 positions"):
        learned(torch.randint(0, 12, (1, 9)))


def test_sinusoidal_code():
    code = sinusoidal(torch.arange(4), 6, torch.double)
    assert code.shape == (4, 6)
    torch.testing.assert_close(code[:, 0], torch.arange(4, dtype=torch.double).sin())
    torch.testing.assert_close(code[:, 1], torch.arange(4, dtype=torch.double).cos())
    torch.testing.assert_close(code[0], torch.tensor([0, 1, 0, 1, 0, 1], dtype=torch.double))


@pytest.mark.parametrize("kind", ["fla", "linear_attention"])
@pytest.mark.parametrize("scheme", ["rope", "alibi"])
def test_kinds_without_scores_refuse_rope_and_alibi(kind, scheme):
    from mixers.registry import position_kinds

    cfg = {"name": "x", "kind": kind, "params": {"layer": "deltanet"} if kind == "fla" else {}}
    assert {"glr", "expanded", "chacal"} <= set(position_kinds()) and kind not in position_kinds()
    with pytest.raises(ValueError, match=f"model.pos_emb={scheme}: mixer kind '{kind}'.*"
                                         "kinds that take it: "
                                         + re.escape(str(position_kinds()))):
        build_mixer(cfg, 16, 2, pos_emb=scheme)


def test_bad_schemes_are_named():
    with pytest.raises(ValueError, match="model.pos_emb must be one of"):
        build_mixer({"name": "a"}, 16, 2, pos_emb="rotary")
    with pytest.raises(ValueError, match="pos_emb=rope.*even"):
        build_mixer({"name": "a"}, 18, 2, pos_emb="rope")


def test_a_new_length_first_seen_in_inference_mode_then_trains():
    # a test length never trained builds the pattern's index under torch.inference_mode; the
    # cached index must still serve a training call at that length
    mixer = build_mixer({"name": "p", "kind": "expanded", "direct": "self",
                         "recurrent": "pow2", "cache_efficient": True}, 16, 2)
    x = torch.randn(1, 41, 16)
    with torch.inference_mode():
        mixer(x)
    mixer(x).sum().backward()
    assert F.mse_loss(mixer(x), mixer(x)).item() == 0.0
