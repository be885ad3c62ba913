"""The Chomsky-hierarchy tasks and the order-60 groups through the runner: a protocol trains and
reports per-length accuracy and exact match; a task it cannot generate exits 2 in one line."""

from __future__ import annotations

import pytest

from runners.train import run

SMALL = ["task.num_train=32", "task.num_val=16", "task.num_test=4", "trainer.max_steps=2",
         "trainer.batch_size=8", "trainer.eval_batch_size=8", "trainer.val_every=2",
         "trainer.warmup_steps=1", "trainer.threads=1", "trainer.logger=none",
         "model.d_model=16", "model.n_layers=1", "mixer=first_order", "model.pos_emb=none"]


@pytest.mark.parametrize("task", ["lengthgen/stack_manipulation", "lengthgen/alternating"])
def test_a_protocol_trains_and_reports_every_length(compose, tmp_path, read_results, task):
    ret = run(compose([f"task={task}", *SMALL, f"results_dir={tmp_path}"]))
    assert ret["status"] == "ok", ret
    (r,) = read_results(tmp_path)
    for n in (32, 64, 128, 256):
        for key in ("test_acc", "test_exact"):
            assert 0.0 <= r["metrics"][f"{key}@n{n}"] <= 1.0


@pytest.mark.parametrize("args, expect", [
    (["task=bucket_sort", "task.params.num_symbols=9", "+task.params.vocab_size=8"],
     "vocab_size=8 must be >= 10"),
    (["task=binary_addition", "task.params.length=2"], "length must be >= 3"),
    (["task=state_tracking", "task.params.group=alternating", "+task.params.degree=3"],
     "degree must be one of [4, 5]"),
])
def test_a_task_that_cannot_be_generated_exits_2(cli, tmp_path, args, expect):
    p = cli(*args, f"results_dir={tmp_path}", timeout=120)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert "Traceback" not in p.stderr and expect in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert not list(tmp_path.glob("**/result.json"))
