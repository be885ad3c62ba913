"""Fuzz every mixer, model and trainer field (and seed, lr) as the runner receives them: the
typed schema (runners.config.Config, what Hydra composes), then runners.config.validate. Each
draw either is refused in one line (the schema's error as glmix-train prints it before exit 2,
or a ConfigError), with nothing written to results_dir, or builds a model whose forward and
backward pass on two sequences of the task are finite; all within the bound of fuzz_helpers."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import torch
from fuzz_helpers import (
    bounded,
    direct_specs,
    floats,
    ints,
    json_values,
    one_line,
    recurrent_specs,
    scalars,
    text,
    typed,
)
from hypothesis import event, example, given
from hypothesis import strategies as st
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from mixers.config import SHORT_CONV_PLACES
from mixers.ops import BACKENDS
from mixers.registry import kind_names
from runners.config import Config, ConfigError, ModelConfig, TrainerConfig, validate
from runners.errors import describe_config_error
from runners.model import build_model
from runners.paths import catalogue
from runners.train import run

CATALOGUE = catalogue()
FORWARD_MAX_LEN = 64  # the forward check runs on draws up to this length (activations unguarded)


def _fields(cls, **overrides) -> dict:
    import dataclasses

    out = {f.name: typed(f.type, f.default) for f in dataclasses.fields(cls)}
    out.update(overrides)
    return out


mixer_fields = st.fixed_dictionaries({}, optional={
    "name": text,
    "kind": st.one_of(st.sampled_from(kind_names()), text),
    "direct": direct_specs,
    "recurrent": recurrent_specs,
    "cache_efficient": st.one_of(st.booleans(), scalars),
    "chunk_size": ints,
    "backend": st.one_of(st.sampled_from(BACKENDS), text),
    "short_conv": st.one_of(ints, scalars),
    "short_conv_on": st.one_of(st.sampled_from(SHORT_CONV_PLACES), text),
    "params": st.one_of(st.dictionaries(st.sampled_from(
        ["layer", "coefficients", "expand_k", "expand_v", "num_heads", "rho", "gate"]),
        json_values, max_size=3), json_values),
})
# a catalogue mixer (every kind, fla's params included) with some fields replaced
mixers = st.tuples(st.sampled_from(sorted(CATALOGUE)), st.one_of(st.just({}), mixer_fields)).map(
    lambda t: {**CATALOGUE[t[0]], **t[1]})
model_fields = st.fixed_dictionaries({}, optional=_fields(
    ModelConfig, d_model=st.one_of(st.sampled_from([4, 8, 16]), ints),
    num_heads=st.one_of(st.sampled_from([1, 2]), ints), n_layers=st.one_of(st.just(1), ints)))
trainer_fields = st.fixed_dictionaries({}, optional=_fields(TrainerConfig))
small_task = st.fixed_dictionaries({"name": st.just("mqar"), "params": st.fixed_dictionaries(
    {"seq_len": st.sampled_from([9, 16, 33]), "vocab_size": st.just(32),
     "num_kv_pairs": st.sampled_from([1, 2])})})
configs = st.fixed_dictionaries({"task": small_task, "mixer": mixers,
                                 "model": st.one_of(st.just({}), model_fields),
                                 "trainer": st.one_of(st.just({}), trainer_fields)},
                                optional={"seed": ints, "lr": floats,
                                          "save_checkpoint": st.booleans()})


def _refused_in_one_line(tree: dict) -> bool:
    """Compose as the runner does; True when the draw is refused (checked to be one line and
    to leave results_dir empty), False when it is a valid config."""
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(Config), tree)
    except OmegaConfBaseException as e:  # Hydra's composition: glmix-train's one line, exit 2
        message = describe_config_error(e)
        assert message is not None and "\n" not in message, message
        return True
    with tempfile.TemporaryDirectory() as tmp:
        cfg.results_dir = str(Path(tmp) / "results")
        try:
            task = validate(cfg)
        except ConfigError as e:
            one_line(e)
            try:
                run(cfg)
                raise AssertionError("run() accepted a config that validate() refused")
            except ConfigError:
                pass
            assert not any(Path(tmp).rglob("*")), "a refused config wrote into results_dir"
            return True
    if task.seq_len <= FORWARD_MAX_LEN:
        model = build_model(cfg, task.vocab_size, task.seq_len)
        data = task.generate(2, 0)
        logits = model(data.inputs)
        assert logits.shape == (*data.inputs.shape, task.vocab_size)
        assert bool(torch.isfinite(logits).all())
        logits.float().logsumexp(-1).mean().backward()
        model.theory(task.seq_len)
    return False


@pytest.fixture(scope="module", autouse=True)
def _warm_up():
    """One valid draw and one refused one outside the bound: first imports (meta kernels,
    Lightning) are slow on a loaded machine and must not be interrupted by the hang guard."""
    task = {"name": "mqar", "params": {"seq_len": 16, "vocab_size": 32, "num_kv_pairs": 2}}
    assert not _refused_in_one_line({"task": task, "mixer": CATALOGUE["pow2"]})
    assert _refused_in_one_line({"task": task, "mixer": CATALOGUE["attention"],
                                 "model": {"d_model": 2**20, "num_heads": 1}})


@given(tree=configs)
@example(tree={"task": {"name": "mqar", "params": {"seq_len": 16, "vocab_size": 32,
                                                   "num_kv_pairs": 2}},
               "mixer": {**CATALOGUE["pow2"], "recurrent": "9**9**(9*k)"}, "model": {},
               "trainer": {}})
@example(tree={"task": {"name": "mqar", "params": {"seq_len": 16, "vocab_size": 32,
                                                   "num_kv_pairs": 2}},
               "mixer": CATALOGUE["attention"], "model": {"d_model": 2**20, "num_heads": 1},
               "trainer": {}})
def test_config_fields_work_or_fail_in_one_line(tree):
    with bounded():
        event("refused" if _refused_in_one_line(tree) else "valid")
