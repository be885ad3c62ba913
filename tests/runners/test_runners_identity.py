"""A run's identity (config + code versions), force, curves, checkpoints, file modes, errors."""

from __future__ import annotations

import json
import os
import stat

import pytest
import torch
from omegaconf import OmegaConf

import mixers.ops
import tasks.mqar
from runners.checkpoint import load_state_dict
from runners.config import ConfigError, build_task
from runners.model import build_model
from runners.schema import Result, config_hash, steps_to
from runners.train import run


def _one(read_results, root):
    (r,) = read_results(root)
    return r


def test_hash_covers_config_and_code_versions():
    cfg = {"seed": 0, "lr": 1e-3, "model": {"d_model": 16, "name": "tiny"}, "results_dir": "a"}
    v = {"task": 1, "generator": 1, "op": 1}
    h = config_hash(cfg, v)
    assert config_hash({**cfg, "results_dir": "b"}, v) == h  # where it runs: not identity
    assert config_hash({**cfg, "model": {"d_model": 16, "name": "x"}}, v) == h
    assert config_hash({**cfg, "model": {"d_model": 64, "name": "tiny"}}, v) != h
    assert config_hash(cfg, {**v, "task": 2}) != h
    assert config_hash(cfg, {**v, "op": 2}) != h


def test_a_field_added_at_its_old_behaviour_keeps_the_identity():
    # mixer.short_conv_on came after results existed: "input" is what those runs computed, so a
    # config without the field and one with it at "input" are one run; "qkv" is another
    v = {"task": 1, "generator": 1, "op": 2}
    old = {"seed": 0, "mixer": {"name": "se_first", "short_conv": 4}}
    new = {"seed": 0, "mixer": {"name": "se_first", "short_conv": 4, "short_conv_on": "input"}}
    qkv = {"seed": 0, "mixer": {"name": "se_first", "short_conv": 4, "short_conv_on": "qkv"}}
    assert config_hash(old, v) == config_hash(new, v) != config_hash(qkv, v)


def test_version_bump_reruns(compose, tiny, tmp_path, read_results, monkeypatch):
    cfg = compose([*tiny, f"results_dir={tmp_path}"])
    first = run(cfg)
    assert first["status"] == "ok" and run(cfg)["status"] == "skipped"
    monkeypatch.setattr(tasks.mqar.MQAR, "version", tasks.mqar.MQAR.version + 1)
    again = run(cfg)
    assert again["status"] == "ok" and again["result_path"] != first["result_path"]
    monkeypatch.setattr(mixers.ops, "OP_VERSION", mixers.ops.OP_VERSION + 1)
    assert run(cfg)["status"] == "ok"
    rs = read_results(tmp_path)
    assert len({r["config_hash"] for r in rs}) == 3
    assert {r["code_versions"]["op"] for r in rs} == {mixers.ops.OP_VERSION - 1,
                                                      mixers.ops.OP_VERSION}


def test_force_reruns_in_place(compose, tiny, tmp_path, read_results):
    run(compose([*tiny, f"results_dir={tmp_path}"]))
    before = _one(read_results, tmp_path)
    assert run(compose([*tiny, f"results_dir={tmp_path}", "force=true"]))["status"] == "ok"
    after = _one(read_results, tmp_path)  # the same folder, rewritten
    assert after["config_hash"] == before["config_hash"] and after["_path"] == before["_path"]
    assert after["config"]["force"] is True


def test_curves_steps_to_logger_and_checkpoint(compose, tiny, tmp_path, read_results):
    ret = run(compose([*tiny, "trainer.max_steps=6", "trainer.log_every=2",
                       "trainer.val_every=3", "save_checkpoint=true", f"results_dir={tmp_path}"]))
    assert ret["status"] == "ok"
    r = _one(read_results, tmp_path)
    curve = r["curve"]
    assert curve["train"]["step"] == [2, 4, 6] and len(curve["train"]["loss"]) == 3
    assert all(isinstance(x, float) for x in curve["train"]["loss"])
    assert curve["val"]["step"] == [3, 6]
    assert curve["val"]["acc"][-1] == r["metrics"]["val_acc"]
    for t in ("0.5", "0.9", "0.99"):
        assert f"steps_to_{t}" in r["metrics"]
    run_dir = r["_path"].parent
    rows = (run_dir / "logs" / "metrics.csv").read_text().splitlines()
    assert "train_loss" in rows[0] and "val_acc" in rows[0] and len(rows) > 3
    assert r["checkpoint"] == "final.ckpt" and (run_dir / "final.ckpt").stat().st_size > 0
    # the runner's checkpoint is a plain state dict that loads with weights_only=True into the
    # model the result's config builds (strict: every parameter, nothing else)
    state = load_state_dict(run_dir / "final.ckpt")
    cfg = OmegaConf.create(r["config"])
    task = build_task(cfg.task)
    model = build_model(cfg, task.vocab_size, task.seq_len)
    model.load_state_dict(state, strict=True)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())


def test_steps_to():
    assert steps_to([50, 100, 150], [0.4, 0.95, 0.999]) == {
        "steps_to_0.5": 100, "steps_to_0.9": 100, "steps_to_0.99": 150}
    assert steps_to([50], [0.2]) == {"steps_to_0.5": None, "steps_to_0.9": None,
                                     "steps_to_0.99": None}


def test_progress_bar_counts_steps(compose, tiny, tmp_path, capsys):
    run(compose([*tiny, "trainer.max_steps=4", "trainer.progress_bar=true",
                 f"results_dir={tmp_path}"]))
    out = capsys.readouterr()
    bar = out.out + out.err  # Lightning's tqdm bars write to stdout
    assert "steps: 100%" in bar and "4/4" in bar and "train_loss=" in bar, bar[-2000:]
    assert "Epoch" not in bar


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o027, 0o640)])
def test_result_file_mode_follows_umask(compose, tiny, tmp_path, read_results, umask, mode):
    old = os.umask(umask)
    try:
        run(compose([*tiny, "trainer.max_steps=1", f"results_dir={tmp_path}"]))
    finally:
        os.umask(old)
    r = _one(read_results, tmp_path)
    assert stat.S_IMODE(r["_path"].stat().st_mode) == mode


def test_results_dir_not_writable(compose, tiny, tmp_path):
    afile = tmp_path / "file"
    afile.write_text("")
    with pytest.raises(ConfigError, match="results_dir"):
        run(compose([*tiny, f"results_dir={afile}"]))
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o555)
        with pytest.raises(ConfigError, match="results_dir: cannot write"):
            run(compose([*tiny, f"results_dir={ro}"]))


def test_schema_refuses_other_layouts():
    with pytest.raises(ValueError, match="schema"):
        Result.from_dict({"status": "ok"})
    good = Result(status="ok", config={}, config_hash="h", task="t", task_setting="s",
                  mixer="m", seed=0, lr=1e-3, code_versions={}).to_dict()
    assert Result.from_dict(json.loads(json.dumps(good))).mixer == "m"
    with pytest.raises(ValueError, match="unknown keys.*dim"):
        Result.from_dict({**good, "dim": 3})
    with pytest.raises(ValueError, match="status"):
        Result.from_dict({**good, "status": "skipped"})


@pytest.mark.parametrize("args,expect", [
    (["lr=-1"], "lr must be a positive number"),
    (["task.params.num_kv_pairs=1000"], "num_kv_pairs"),
    (["trainer.max_step=5"], "trainer.max_step: no such key; did you mean trainer.max_steps?"),
    (["mixer=pow3"], "did you mean mixer=pow2?"),
])
def test_config_errors_exit_2_without_traceback(cli, tmp_path, args, expect):
    p = cli(*args, f"results_dir={tmp_path}", timeout=120)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert "Traceback" not in p.stderr and expect in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert not list(tmp_path.glob("**/result.json"))


def test_logger_choices(compose, tiny, tmp_path, read_results):
    from runners.loggers import installed

    run(compose([*tiny, "trainer.max_steps=1", "trainer.logger=none", f"results_dir={tmp_path}"]))
    r = _one(read_results, tmp_path)
    assert r["log_dir"] is None and not (r["_path"].parent / "logs").exists()
    assert r["curve"]["val"]["step"] == [1]  # the curve is kept without a logger
    if not installed("tensorboard"):
        with pytest.raises(ConfigError, match="trainer.logger: tensorboard needs"):
            run(compose([*tiny, "trainer.logger=tensorboard", f"results_dir={tmp_path}"]))


def test_stop_step_follows_the_schedule_of_max_steps(compose, tiny, tmp_path, read_results):
    # a run stopped at step 4 of an 8-step schedule is the first half of the 8-step run, not a
    # 4-step run (whose cosine decay would end at step 4)
    common = [*tiny, "trainer.warmup_steps=1", "trainer.log_every=1", "trainer.val_every=100",
              "trainer.target_acc=null", "trainer.logger=none"]
    full = run(compose([*common, "trainer.max_steps=8", f"results_dir={tmp_path}/full"]))
    stop = run(compose([*common, "trainer.max_steps=8", "trainer.stop_step=4",
                        f"results_dir={tmp_path}/stop"]))
    short = run(compose([*common, "trainer.max_steps=4", f"results_dir={tmp_path}/short"]))
    assert {full["status"], stop["status"], short["status"]} == {"ok"}
    (f,), (s,), (t,) = (read_results(tmp_path / k) for k in ("full", "stop", "short"))
    assert s["steps"] == 4 and s["curve"]["train"]["step"] == [1, 2, 3, 4]
    assert s["curve"]["train"]["loss"] == f["curve"]["train"]["loss"][:4]
    # the loss at step 4 follows the update of step 3, whose rate the schedules set apart
    assert s["curve"]["train"]["loss"][3] != t["curve"]["train"]["loss"][3]
    assert s["curve"]["val"]["step"] == [4]  # validated where it stopped
    # a run stopped early is another computation: its own identity, its own row
    assert len({f["config_hash"], s["config_hash"], t["config_hash"]}) == 3


@pytest.mark.parametrize("bad", [0, 6, 7])
def test_stop_step_must_be_inside_the_schedule(compose, tiny, tmp_path, bad):
    with pytest.raises(ConfigError, match=r"trainer.stop_step must be in \[1, "):
        run(compose([*tiny, "trainer.max_steps=6", f"trainer.stop_step={bad}",
                     f"results_dir={tmp_path}"]))


def test_wandb_logger_offline_keeps_the_curve(compose, tiny, tmp_path, read_results,
                                              monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    common = [*tiny, "trainer.max_steps=4", "trainer.log_every=1", "trainer.val_every=2"]
    run(compose([*common, "trainer.logger=wandb", f"results_dir={tmp_path}/w"]))
    run(compose([*common, "trainer.logger=csv", f"results_dir={tmp_path}/c"]))
    (w,), (c,) = read_results(tmp_path / "w"), read_results(tmp_path / "c")
    assert w["status"] == "ok", w["error"]
    assert w["curve"] == c["curve"] and w["log_dir"] == "logs"
    # offline: the run's files under logs/wandb/offline-run-*, named after the run
    (folder,) = (w["_path"].parent / "logs" / "wandb").glob("offline-run-*")
    assert list(folder.glob("*.wandb"))
    from runners.loggers import wandb_names

    names = wandb_names(w["task"], w["task_setting"], w["mixer"], w["lr"], w["seed"],
                        w["config_hash"])
    assert names["project"] == "glmix-mqar" and w["config_hash"][:8] in names["name"]
    assert w["mixer"] in names["name"] and w["task_setting"] in names["group"]


def test_a_hostile_result_file_never_counts_as_finished(tmp_path):
    # a shared results folder may hold anything named result.json: JSON that is not an object,
    # or nested too deeply for the parser, is not a finished run (and does not crash the runner)
    from runners.store import find_finished

    h = "ab" * 32
    for name, text in [("list", "[1, 2]"), ("deep", "[" * 100_000 + "]" * 100_000)]:
        folder = tmp_path / f"{name}-{h[:8]}"
        folder.mkdir()
        (folder / "result.json").write_text(text)
    assert find_finished(str(tmp_path), h, tmp_path / "expected") is None
