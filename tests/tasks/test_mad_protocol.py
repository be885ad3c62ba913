"""MAD's protocol at the CPU's size (tasks/mad.py, conf/task/mad/, conf/grid/mad.yaml)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from runners.config import build_task
from tasks.mad import PROTOCOL, config, file_name, settings, task_of_setting

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "conf" / "task" / "mad"


@pytest.mark.parametrize("label", list(settings()))
def test_committed_configs_are_the_protocol(label):
    text = (CONF / file_name(label)).read_text()
    assert text.startswith("# @package task\n")
    assert yaml.safe_load(text) == config(label)


def test_no_stale_config_files():
    assert sorted(p.name for p in CONF.glob("*.yaml")) == sorted(map(file_name, settings()))


def test_the_grid_runs_every_setting():
    grid = yaml.safe_load((ROOT / "conf" / "grid" / "mad.yaml").read_text())
    tasks = grid["hydra"]["sweeper"]["params"]["task"].split(",")
    assert sorted(tasks) == sorted(f"mad/{file_name(s)[:-5]}" for s in settings())
    assert grid["hydra"]["sweeper"]["params"]["trainer.weight_decay"] == "0.0,0.1"


@pytest.mark.parametrize("label", list(settings()))
def test_every_setting_builds_and_generates(label):
    # the memorization map follows the run's seed (`${seed}`, resolved at the config's root)
    cfg = OmegaConf.create({"train_settings": {}, "test_settings": {}, **config(label),
                            "seed": 3})
    task = build_task(cfg)
    data = task.generate(4, seed=1)
    assert data.inputs.shape[0] == 4
    assert bool((data.targets >= 0).any())  # something is scored


def test_changes_move_one_key_each():
    for key, t in PROTOCOL.items():
        base = config(f"mad-{key}-base")
        for change in t.changes:
            c = config(f"mad-{key}-{change}")
            moved = {k for k in c["params"] if c["params"][k] != base["params"].get(k)}
            moved |= {k for k in ("num_train",) if c[k] != base[k]}
            assert 1 <= len(moved) <= 2, (key, change, moved)  # copy32 moves num_tokens and prefix
    assert task_of_setting("mad-noisy-n256") == "noisy" and task_of_setting("mq") is None
    with pytest.raises(ValueError, match="unknown MAD setting 'mad-x'"):
        config("mad-x")
