"""A kind refuses the config keys it ignores, and those keys never split a run's identity."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mixers import MixerConfig
from mixers.config import canonical
from runners.config import ConfigError, validate
from runners.schema import config_hash
from runners.train import run

# result files written by the runner before the kinds declared their keys, with these settings:
# a run of today must find each one (the same config hash, so the same leaderboard row)
BEFORE = Path(__file__).parent / "data" / "before_kind_keys"
BEFORE_SETTINGS = [
    "task.params.vocab_size=16", "task.params.seq_len=16", "task.params.num_kv_pairs=2",
    "task.num_train=64", "task.num_val=32", "task.num_test=32",
    "trainer.max_steps=3", "trainer.batch_size=16", "trainer.eval_batch_size=32",
    "trainer.val_every=2", "trainer.warmup_steps=1", "trainer.threads=1", "trainer.logger=none",
]


@pytest.mark.parametrize("mixer,overrides,keys", [
    ("linear_attention", ["mixer.direct='window(3)'", "mixer.recurrent=pow2",
                          "mixer.backend=reference"], ["direct", "recurrent", "backend"]),
    ("gla", ["mixer.direct=self", "mixer.recurrent=pow2", "mixer.chunk_size=32"],
     ["direct", "recurrent", "chunk_size"]),
    ("attention", ["mixer.backend=reference"], ["backend"]),
    ("attention", ["mixer.chunk_size=16"], ["chunk_size"]),
    # (glr reads params since signed coefficients: its refusal of expand is tested below)
    ("linear_attention", ["+mixer.params.expand=2"], ["params"]),
])
def test_an_ignored_key_is_one_line_naming_the_kind_and_its_keys(compose, tiny, mixer,
                                                                overrides, keys):
    with pytest.raises(ConfigError) as e:
        validate(compose([*tiny, f"mixer={mixer}", *overrides]))
    msg = str(e.value)
    assert "\n" not in msg
    for key in keys:
        assert f"mixer.{key}=" in msg
    kind = compose([f"mixer={mixer}"]).mixer.kind
    assert f"kind {kind!r}" in msg and "it reads name, kind, short_conv" in msg


def test_keys_a_kind_reads_are_accepted(compose, tiny):
    # the glr op reads chunk_size and backend as soon as a pattern is not full attention
    validate(compose([*tiny, "mixer=local_attention", "mixer.backend=reference",
                      "mixer.chunk_size=8"]))
    validate(compose([*tiny, "mixer=linear_attention", "mixer.chunk_size=8"]))
    assert MixerConfig(kind="fla", params={"layer": "gla"}).used_keys()[-1] == "params"


def test_old_results_keep_their_identity(compose, tmp_path):
    shutil.copytree(BEFORE, tmp_path, dirs_exist_ok=True)
    for mixer in ("attention", "linear_attention", "pow2", "gla"):
        summary = run(compose([*BEFORE_SETTINGS, f"mixer={mixer}", f"results_dir={tmp_path}"]))
        assert summary["status"] == "skipped", (mixer, summary)
        assert Path(summary["skipped_because"]).parent.parent.name == mixer


def test_canonical_maps_an_ignored_value_to_the_default_computation():
    v = {"task": 1, "generator": 1, "op": 2}
    plain = {"name": "linear_attention", "kind": "linear_attention", "direct": "full",
             "recurrent": "none", "cache_efficient": False, "chunk_size": 64}
    odd = {**plain, "direct": "window(3)", "recurrent": "pow2"}
    assert canonical(odd) == plain
    assert config_hash({"mixer": canonical(odd)}, v) == config_hash({"mixer": plain}, v)
    wide = {**plain, "chunk_size": 32}  # a key the kind reads stays as it is
    assert canonical(wide) == wide
    attention = {"name": "attention", "kind": "glr", "direct": "full", "recurrent": "none",
                 "chunk_size": 8}
    assert canonical(attention)["chunk_size"] == 64
    local = {**attention, "direct": "window(4)"}
    assert canonical(local)["chunk_size"] == 8


def test_glr_params_take_only_the_coefficient_rule(compose, tiny):
    validate(compose([*tiny, "mixer=pow2", "+mixer.params.coefficients=signed"]))
    with pytest.raises(ConfigError, match="kind 'glr' takes only 'coefficients'") as e:
        validate(compose([*tiny, "mixer=pow2", "+mixer.params.expand=2"]))
    assert "\n" not in str(e.value)
