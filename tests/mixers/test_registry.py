"""The mixer-kind registry, the catalogue of YAML files, and the short convolution."""

import pytest
import torch

from mixers import MixerConfig, build_mixer, catalogue, kind_names
from mixers.conv import ShortConv, WithShortConv


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
def test_mixer_with_short_conv_decodes_like_its_forward(name):
    torch.manual_seed(1)
    cfg = dict(catalogue()[name], short_conv=3)
    mixer = build_mixer(cfg, d_model=8, num_heads=2).double()
    assert isinstance(mixer, WithShortConv)
    x = torch.randn(2, 13, 8, dtype=torch.float64)
    y = mixer(x)
    cache, outs = None, []
    for t in range(x.shape[1]):
        out, cache = mixer.step(x[:, t], cache)
        outs.append(out)
    torch.testing.assert_close(torch.stack(outs, 1), y, atol=1e-9, rtol=1e-7)
    plain = build_mixer(catalogue()[name], d_model=8, num_heads=2)
    assert mixer.state_size(64) == plain.state_size(64) + 2 * 8
