"""Kind `chacal` (mixers/chacal.py): Y = (1 - g) A (I - g A)^{-1} V with A causal softmax
attention, computed through the glr op's backends, against a dense triangular solve of the
defining formula (outputs and every gradient), decoded step by step, and its theory."""

import math

import pytest
import torch

from mixers import MixerConfig, build_mixer, poisoned_outputs
from mixers.chacal import ChacalMixer
from runners.paths import catalogue

BACKENDS = ("reference", "recurrent", "chunked")  # the CPU backends of the glr op
LENGTHS = [1, 7, 33, 70]  # 1, odd lengths, lengths the chunk size (16) does not divide


def make(seed=0, d_model=12, heads=2, dtype=torch.float64, **kw):
    torch.manual_seed(seed)
    return ChacalMixer(d_model, heads, chunk_size=16, **kw).to(dtype)


def decode(mixer, x):
    cache, ys = None, []
    for t in range(x.shape[1]):
        y_t, cache = mixer.step(x[:, t], cache)
        ys.append(y_t)
    return torch.stack(ys, 1), cache


def outputs_and_grads(mixer, x, fn):
    with poisoned_outputs():
        y = fn(x)
    weight = torch.linspace(-1, 2, y.numel(), dtype=y.dtype).view_as(y)  # every dY matters
    grads = torch.autograd.grad((y * weight).sum(), [x, *mixer.parameters()])
    return y, grads


def test_the_catalogue_has_the_config():
    assert "chacal_dense" in catalogue()
    cfg = MixerConfig.from_mapping(catalogue()["chacal_dense"])
    assert cfg.kind == "chacal" and cfg.params == {"g": 0.5, "learn_g": True}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("n", LENGTHS)
def test_backends_match_the_dense_solve_outputs_and_gradients(backend, n):
    mixer = make(seed=n)
    with torch.no_grad():  # a gate away from its initial value, different per head
        mixer.g_logit.copy_(torch.tensor([1.3, -0.7]))
    mixer.backend = backend
    x = torch.randn(3, n, 12, dtype=torch.float64, requires_grad=True)
    y, grads = outputs_and_grads(mixer, x, mixer)
    y_ref, grads_ref = outputs_and_grads(mixer, x, mixer.reference)
    assert not torch.isnan(y).any(), f"{backend}: unwritten (NaN) outputs"
    torch.testing.assert_close(y, y_ref, atol=1e-10, rtol=1e-8)
    names = ["x", *(name for name, _ in mixer.named_parameters())]
    assert "g_logit" in names
    for name, g, g_ref in zip(names, grads, grads_ref):
        assert not torch.isnan(g).any(), f"{backend}: d{name} has NaN elements"
        torch.testing.assert_close(g, g_ref, atol=1e-10, rtol=1e-8,
                                   msg=lambda m, name=name: f"{backend}: d{name}: {m}")


def test_reference_is_the_series_of_composed_lookups():
    # (1 - g) A (I - g A)^{-1} = (1 - g) sum_k g^k A^(k+1): an independent check of the solve
    mixer = make(seed=3)
    x = torch.randn(2, 9, 12, dtype=torch.float64)
    q, k, v = mixer._qkv(x)
    a = mixer.attention(x)
    g = mixer.g.view(-1, 1, 1)
    series, power = torch.zeros_like(v), a
    for i in range(200):
        series = series + (1 - g) * g ** i * power @ v
        power = power @ a
    y = mixer.reference(x)
    torch.testing.assert_close(y, mixer.out(series.transpose(1, 2).reshape(2, 9, 12)),
                               atol=1e-10, rtol=1e-8)


def test_mixing_matrix_is_the_formula_and_row_stochastic():
    mixer = make(seed=4)
    with torch.no_grad():
        mixer.g_logit.copy_(torch.tensor([2.0, -1.0]))
    x = torch.randn(2, 15, 12, dtype=torch.float64)
    m, a_direct, b = mixer.mixing_matrix(x)
    a = mixer.attention(x)
    g = mixer.g.view(-1, 1, 1)
    eye = torch.eye(15, dtype=torch.float64)
    torch.testing.assert_close(m, (1 - g) * a @ torch.linalg.inv(eye - g * a))
    torch.testing.assert_close(m.sum(-1), torch.ones_like(m.sum(-1)))
    # the framework's coefficients: convex rows, beta / alpha = g / (1 - g) at every past token
    torch.testing.assert_close((a_direct + b).sum(-1), torch.ones_like(m.sum(-1)))
    past = torch.ones(15, 15, dtype=torch.bool).tril(-1)
    ratio = (b / a_direct)[..., past]
    torch.testing.assert_close(ratio, (g / (1 - g)).view(1, -1, 1).expand_as(ratio))


@pytest.mark.parametrize("n", [1, 37])
@pytest.mark.parametrize("pos_emb", ["none", "rope", "alibi"])
def test_decoding_matches_parallel_with_a_cache_of_k_v_y(n, pos_emb):
    mixer = make(seed=n, pos_emb=pos_emb)
    x = torch.randn(2, n, 12, dtype=torch.float64)
    y = mixer(x)
    torch.testing.assert_close(mixer.reference(x), y, atol=1e-10, rtol=1e-8)
    y_steps, cache = decode(mixer, x)
    torch.testing.assert_close(y_steps, y, atol=1e-10, rtol=1e-8)
    # every past token stays: (k, v) for attention, (k, y) for the recurrence, with the
    # recurrence's key the very tensor the direct cache holds (kept once)
    assert sorted(cache["direct"]) == list(range(n))
    assert sorted(cache["recurrent"]) == list(range(n))
    for t in range(n):
        assert cache["recurrent"][t][0] is cache["direct"][t][0]


def test_gate_learned_from_one_half_or_fixed():
    learned = build_mixer({"name": "c", "kind": "chacal"}, 16, 2)
    assert isinstance(learned.g_logit, torch.nn.Parameter)
    torch.testing.assert_close(learned.g, torch.full((2,), 0.5))
    fixed = build_mixer({"name": "c", "kind": "chacal", "params": {"g": 0.8, "learn_g": False}},
                        16, 2)
    assert "g_logit" not in dict(fixed.named_parameters())
    torch.testing.assert_close(fixed.g, torch.full((2,), 0.8))
    # a fixed gate gets no gradient, a learned one does
    x = torch.randn(1, 6, 16)
    learned(x).pow(2).sum().backward()
    assert learned.g_logit.grad is not None and learned.g_logit.grad.abs().sum() > 0


def test_small_gate_tends_to_attention():
    mixer = make(seed=5, g=1e-9)
    x = torch.randn(2, 11, 12, dtype=torch.float64)
    with torch.no_grad():
        q, k, v = mixer._qkv(x)
        att = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        want = mixer.out(att.transpose(1, 2).reshape(2, 11, 12))
        torch.testing.assert_close(mixer(x), want, atol=1e-7, rtol=1e-6)


@pytest.mark.parametrize("params,field", [
    ({"g": 0.0}, "mixer.params.g"), ({"g": 1.0}, "mixer.params.g"),
    ({"g": "half"}, "mixer.params.g"), ({"g": True}, "mixer.params.g"),
    ({"learn_g": "yes"}, "mixer.params.learn_g"), ({"gate": 0.5}, "mixer.params"),
])
def test_bad_params_name_the_field(params, field):
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        build_mixer({"name": "c", "kind": "chacal", "params": params}, 16, 2)


def test_keys_the_kind_does_not_read_are_refused():
    with pytest.raises(ValueError, match="mixer.recurrent"):
        MixerConfig(name="c", kind="chacal", recurrent="pow2")


def test_theory_counts_k_v_y_once_per_past_token():
    mixer = ChacalMixer(64, 1)
    for n in [1, 41, 256]:
        # full direct cache n entries (k, v), dense recurrent cache n - 1 outputs y
        assert mixer.state_size(n) == (2 * mixer.direct.cache_size(n)
                                       + mixer.recurrent.cache_size(n)) * 64
        assert mixer.state_size(n) <= 3 * n * 64
        # a score per direct read (shared by the recurrence), a weighted sum per read
        assert mixer.flops_per_token(n) == 2 * 64 * (2 * n + (n - 1))
    assert mixer.patterns[0].name == "full" and mixer.patterns[1].name == "dense"
    assert math.isclose(mixer.g.item(), 0.5)
