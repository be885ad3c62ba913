"""The command line: grids (Hydra multirun), resume, failures, launchers. Subprocesses."""

from __future__ import annotations

import re


def test_grid_resume_and_progress(cli, tiny, tmp_path, read_results):
    args = ["-m", "mixer=attention,first_order", "seed=0,1", *tiny, f"results_dir={tmp_path}"]
    p = cli(*args)
    assert p.returncode == 0, p.stderr[-3000:]
    rs = read_results(tmp_path)
    assert len(rs) == 4 and {r["status"] for r in rs} == {"ok"}
    assert {(r["mixer"], r["seed"]) for r in rs} == {
        ("attention", 0), ("attention", 1), ("first_order", 0), ("first_order", 1)}
    assert len({r["config_hash"] for r in rs}) == 4
    lines = [line for line in p.stdout.splitlines() if re.match(r"\[\d/4\]", line)]
    assert len(lines) == 4 and all("test_acc=" in line for line in lines), p.stdout
    assert "glmix: 4 runs" in p.stdout
    before = {r["_path"]: r["_path"].read_bytes() for r in rs}

    again = cli(*args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("skipped") == 4, again.stdout
    after = read_results(tmp_path)
    assert len(after) == 4
    assert {r["_path"]: r["_path"].read_bytes() for r in after} == before  # never clobbered


def test_joblib_with_a_failing_sibling(cli, tiny, tmp_path, read_results):
    p = cli("-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "debug.fail=false,true",
            *tiny, f"results_dir={tmp_path}")
    assert p.returncode == 0, p.stderr[-3000:]  # the grid goes on
    rs = {r["config"]["debug"]["fail"]: r for r in read_results(tmp_path)}
    assert rs[False]["status"] == "ok" and rs[False]["metrics"]["test_acc"] is not None
    assert rs[True]["status"] == "failed" and "debug.fail=true" in rs[True]["error"]
    assert "FAILED" in p.stdout and "ok  test_acc=" in p.stdout, p.stdout
    # joblib with 2 jobs: one torch thread each on this machine's cores
    assert rs[False]["hardware"]["threads"] >= 1


def test_submitit_local(cli, tiny, tmp_path, read_results):
    p = cli("-m", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=5",
            "mixer=first_order", *tiny, f"results_dir={tmp_path}")
    assert p.returncode == 0, p.stderr[-3000:]
    (r,) = read_results(tmp_path)
    assert r["status"] == "ok" and r["mixer"] == "first_order"
    assert "[1/1]" in p.stdout, p.stdout  # the job's line, echoed from the sweep's progress.txt


def test_misspelled_key_fails_before_training(cli, tmp_path):
    p = cli("trainer.max_stepz=3", f"results_dir={tmp_path}", timeout=120)
    assert p.returncode != 0
    assert "max_stepz" in p.stderr
    assert not list(tmp_path.glob("**/result.json"))


def test_single_run_failure_exit_code(cli, tiny, tmp_path, read_results):
    p = cli(*tiny, "debug.fail=true", f"results_dir={tmp_path}")
    assert p.returncode == 1
    (r,) = read_results(tmp_path)
    assert r["status"] == "failed"


def test_sweep_size_counts_without_hydra_internals():
    import inspect

    from omegaconf import OmegaConf

    import runners.progress
    from runners.progress import sweep_size

    cfg = OmegaConf.create({"hydra": {
        "sweeper": {"params": {"task": "mqar,flipflop", "mixer": "a,b,c,d", "seed": "0"}},
        "overrides": {"task": ["seed=0,1", "lr=range(1,4)", "model.d_model=16"]}}})
    assert sweep_size(cfg) == 2 * 4 * 2 * 3  # the command line's seed=0,1 wins over seed: 0
    assert "hydra._internal" not in inspect.getsource(runners.progress)


def test_progress_lines_name_the_swept_keys(cli, tiny, tmp_path):
    p = cli("-m", "model.d_model=16,32", *tiny, f"results_dir={tmp_path}")
    assert p.returncode == 0, p.stderr[-3000:]
    lines = [line for line in p.stdout.splitlines() if re.match(r"\[\d/2\]", line)]
    assert len(lines) == 2 and len(set(lines)) == 2, p.stdout
    assert " d_model=16 " in lines[0] and " d_model=32 " in lines[1], lines


def test_swept_values_use_the_leaf_unless_two_keys_share_it(monkeypatch):
    from runners.progress import ENV_SWEPT, swept_values

    monkeypatch.setenv(ENV_SWEPT, "model.d_model,mixer,seed,mixer.short_conv")
    job = ["mixer=pow2", "model.d_model=32", "mixer.short_conv=4", "seed=1", "results_dir=x"]
    assert swept_values(job) == {"d_model": "32", "short_conv": "4"}
    monkeypatch.setenv(ENV_SWEPT, "model.dropout,trainer.dropout")
    assert swept_values(["model.dropout=0.1", "trainer.dropout=0"]) == {
        "model.dropout": "0.1", "trainer.dropout": "0"}


def test_a_results_dir_that_is_a_file_is_one_line(cli, tiny, tmp_path):
    afile = tmp_path / "results"
    afile.write_text("")
    for args in ([], ["-m"]):
        p = cli(*args, *tiny, f"results_dir={afile}", timeout=120)
        assert p.returncode == 2, (p.stdout, p.stderr)
        assert p.stderr.strip() == (f"glmix-train: error: results_dir: {afile} exists and is not "
                                    "a folder"), p.stderr


def test_own_configs_from_a_folder_on_hydras_search_path(cli, tiny, tmp_path, read_results):
    # a wheel user's own mixer (or task, grid) YAML: a folder of config groups on the search path
    own = tmp_path / "my_conf"
    (own / "mixer").mkdir(parents=True)
    (own / "mixer" / "my_window.yaml").write_text(
        "name: my_window\nkind: glr\ndirect: window(4)\nrecurrent: pow2\n")
    results = tmp_path / "results"
    p = cli(f"hydra.searchpath=[file://{own}]", "mixer=my_window", *tiny,
            f"results_dir={results}")
    assert p.returncode == 0, p.stderr[-3000:]
    (r,) = read_results(results)
    assert r["mixer"] == "my_window" and r["config"]["mixer"]["direct"] == "window(4)"
