"""The length-generalization protocol through the runner: conf/task/lengthgen/ and the position
schemes (model.pos_emb)."""

from __future__ import annotations

import pytest

from runners.train import run

SMALL = ["task.num_train=32", "task.num_val=16", "task.num_test=4", "trainer.max_steps=2",
         "trainer.batch_size=8", "trainer.eval_batch_size=8", "trainer.val_every=2",
         "trainer.warmup_steps=1", "trainer.threads=1", "trainer.logger=none",
         "model.d_model=16", "model.n_layers=1"]


@pytest.mark.parametrize("mixer, pos_emb", [("attention", "rope"), ("attention", "alibi"),
                                            ("pow2_cache", "none"), ("se_first", "rope"),
                                            ("first_order", "alibi")])
def test_train_short_test_long(compose, tmp_path, read_results, mixer, pos_emb):
    ret = run(compose(["task=lengthgen/copy", f"mixer={mixer}", f"model.pos_emb={pos_emb}",
                       *SMALL, f"results_dir={tmp_path}"]))
    assert ret["status"] == "ok", ret
    (r,) = read_results(tmp_path)
    assert r["status"] == "ok", r["error"]
    for n in (32, 64, 128, 256):
        for key in ("test_acc", "test_exact"):
            assert 0.0 <= r["metrics"][f"{key}@n{n}"] <= 1.0
    assert r["config"]["model"]["pos_emb"] == pos_emb


@pytest.mark.parametrize("args, expect", [
    (["mixer=deltanet", "model.pos_emb=rope"],
     "model.pos_emb=rope: mixer kind 'fla' computes no q . k scores"),
    (["model.pos_emb=rotary"], "model.pos_emb must be one of learned | sinusoidal | rope"),
])
def test_a_scheme_a_kind_cannot_take_exits_2(cli, tmp_path, args, expect):
    p = cli("task=lengthgen/copy", *args, f"results_dir={tmp_path}", timeout=120)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert "Traceback" not in p.stderr and expect in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert not list(tmp_path.glob("**/result.json"))
