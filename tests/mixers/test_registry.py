"""The mixer-kind registry, the catalogue of YAML files, and the short convolution."""

import pytest
import torch

from mixers import MixerConfig, build_mixer, kind_names
from mixers.conv import ShortConv, WithShortConv
from runners.paths import catalogue


def test_catalogue_is_the_yaml_files_and_every_entry_builds():
    cat = catalogue()
    assert {"attention", "pow2_cache", "sq1", "linear_attention"} <= set(cat)
    for name, cfg in cat.items():
        assert cfg["name"] == name, f"conf/mixer/{name}.yaml names itself {cfg['name']!r}"
        mixer = build_mixer(cfg, d_model=8, num_heads=2)
        for fn in ("state_size", "flops_per_token", "cache_size"):
            assert getattr(mixer, fn)(64) > 0, (name, fn)
        assert isinstance(mixer.state_expanded, bool)


def test_unknown_kind_names_the_registered_kinds():
    with pytest.raises(ValueError, match=r"mixer.kind must be one of .*glr"):
        MixerConfig(kind="nope")
    assert "glr" in kind_names()


@pytest.mark.parametrize("bad", [-1, 1.5, True])
def test_short_conv_must_be_a_non_negative_integer(bad):
    with pytest.raises(ValueError, match="mixer.short_conv"):
        MixerConfig(short_conv=bad)


def test_params_are_refused_by_kinds_without_knobs():
    with pytest.raises(ValueError, match="mixer.params"):
        build_mixer({"kind": "glr", "params": {"expand": 2}}, 8, 2)


def test_short_conv_is_causal_and_its_step_matches_forward():
    torch.manual_seed(0)
    conv = ShortConv(6, 4).double()
    x = torch.randn(2, 11, 6, dtype=torch.float64)
    y = conv(x)
    x2 = x.clone()
    x2[:, 7:] = torch.randn_like(x2[:, 7:])  # the future must not change the past
    torch.testing.assert_close(conv(x2)[:, :7], y[:, :7])
    window, steps = None, []
    for t in range(x.shape[1]):
        out, window = conv.step(x[:, t], window)
        steps.append(out)
    torch.testing.assert_close(torch.stack(steps, 1), y)
    # position 0 sees only itself: w_{K-1} x_0 + b (zero padding before the start)
    w = conv.conv.weight[:, 0, -1]
    torch.testing.assert_close(y[:, 0], torch.nn.functional.silu(x[:, 0] * w + conv.conv.bias))


@pytest.mark.parametrize("name", ["pow2_cache", "attention", "linear_attention"])
@pytest.mark.parametrize("place", ["input", "qkv"])
def test_mixer_with_short_conv_decodes_like_its_forward(name, place):
    torch.manual_seed(1)
    cfg = dict(catalogue()[name], short_conv=3, short_conv_on=place)
    mixer = build_mixer(cfg, d_model=8, num_heads=2).double()
    assert isinstance(mixer, WithShortConv) == (place == "input")
    assert (getattr(mixer, "qkv_conv", None) is not None) == (place == "qkv")
    x = torch.randn(2, 13, 8, dtype=torch.float64)
    y = mixer(x)
    cache, outs = None, []
    for t in range(x.shape[1]):
        out, cache = mixer.step(x[:, t], cache)
        outs.append(out)
    torch.testing.assert_close(torch.stack(outs, 1), y, atol=1e-9, rtol=1e-7)
    x2 = x.clone()
    x2[:, 9:] = torch.randn_like(x2[:, 9:])  # causal: the future does not change the past
    torch.testing.assert_close(mixer(x2)[:, :9], y[:, :9])
    plain = build_mixer(catalogue()[name], d_model=8, num_heads=2)
    # the conv keeps its last K - 1 inputs: d_model channels on the input, 3 d_model on q, k, v
    width = 8 if place == "input" else 3 * 8
    assert mixer.state_size(64) == plain.state_size(64) + 2 * width


def test_qkv_placement_convolves_the_projections_not_the_input():
    # with the conv at identity (centre tap 1, no bias) the qkv layer equals the plain layer
    # after SiLU on q, k, v; the input placement would apply SiLU to x instead
    torch.manual_seed(2)
    plain = build_mixer(catalogue()["attention"], d_model=8, num_heads=2).double()
    conv = build_mixer(dict(catalogue()["attention"], short_conv=2, short_conv_on="qkv"),
                       d_model=8, num_heads=2).double()
    conv.load_state_dict(plain.state_dict(), strict=False)
    with torch.no_grad():
        w = conv.qkv_conv.short_conv.conv
        w.weight.zero_()
        w.weight[:, 0, -1] = 1.0
        w.bias.zero_()
    x = torch.randn(3, 7, 8, dtype=torch.float64)
    q, k, v = (t.view(3, 7, 2, 4).transpose(1, 2)
               for t in torch.nn.functional.silu(plain.qkv(x)).chunk(3, dim=-1))
    att = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(conv(x), plain.out(att.transpose(1, 2).reshape(3, 7, 8)))


def test_short_conv_placement_is_checked():
    with pytest.raises(ValueError, match="mixer.short_conv_on must be one of"):
        MixerConfig(short_conv_on="keys")
    with pytest.raises(ValueError, match="short_conv_on=qkv: kind 'fla'"):
        MixerConfig(kind="fla", short_conv=4, short_conv_on="qkv", params={"layer": "gla"})
    MixerConfig(kind="fla", short_conv=0, short_conv_on="qkv", params={"layer": "gla"})
