"""analysis.routing: hop terms sum to M, the product's hop split, min hops, the CLI on a run."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from analysis import routing
from mixers import build_mixer

CONF = Path(__file__).resolve().parents[2] / "conf"


def _mixer(recurrent, direct="self", **kw):
    torch.manual_seed(0)
    return build_mixer({"kind": "glr", "direct": direct, "recurrent": recurrent, **kw},
                       8, 1).double()


@pytest.mark.parametrize("recurrent", ["first", "pow2", "sq1"])
def test_hop_terms_sum_to_M_and_stats_are_shares(recurrent):
    n, c = 11, 4
    M, A, B = _mixer(recurrent).mixing_matrix(torch.randn(2, n, 8, dtype=torch.float64))
    terms = routing.hop_terms(B, A)
    torch.testing.assert_close(sum(terms), M)
    rows = np.arange(c, n)
    s = routing.routing_stats([W[:, 0] for W in terms], rows, rows - c)
    assert s["source_mass"] == pytest.approx(float(M[:, 0, rows, rows - c].mean()))
    assert sum(s["hop_share"]) == pytest.approx(1.0)
    assert sum(s["hop_share_all"]) == pytest.approx(1.0)
    # a source c tokens back is reached through at least min_hops recurrent hops
    need = routing.min_hops(B, A, rows, rows - c)
    assert all(v == 0 for v in s["hop_share"][:need]) and s["hop_share"][need] > 0


@pytest.mark.parametrize("recurrent, direct, expected", [
    ("first", "self", 40), ("pow2", "self", 2), ("sq1", "self", 3), ("none", "full", 0),
    ("pow2", "window(8)", 2), ("pow2", "window(9)", 1)])
def test_min_hops_of_the_patterns(recurrent, direct, expected):
    n, c = 80, 40
    _, A, B = _mixer(recurrent, direct).mixing_matrix(torch.randn(1, n, 8, dtype=torch.float64))
    rows = np.arange(c, n)
    assert routing.min_hops(B, A, rows, rows - c) == expected


def test_product_stats_is_the_product_split_by_total_hops():
    n, c = 9, 3
    x = torch.randn(2, n, 8, dtype=torch.float64)
    (M1, A1, B1), (M2, A2, B2) = _mixer("pow2").mixing_matrix(x), _mixer("first").mixing_matrix(x)
    t1, t2 = routing.hop_terms(B1, A1), routing.hop_terms(B2, A2)
    rows = np.arange(c, n)
    stats, P = routing.product_stats([t1, t2], rows, rows - c)
    torch.testing.assert_close(P, (M2 @ M1)[:, 0])
    by_h = np.zeros(len(t1) + len(t2) - 1)
    for h1, W1 in enumerate(t1):
        for h2, W2 in enumerate(t2):
            by_h[h1 + h2] += float((W2 @ W1)[:, 0, rows, rows - c].mean())
    np.testing.assert_allclose(stats["hop_share"], by_h / by_h.sum(), atol=1e-12)
    assert stats["source_mass"] == pytest.approx(by_h.sum())


def _fake_run(root: Path, mixer: str) -> Path:
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    import runners.config  # noqa: F401  (registers the schema)
    from runners.checkpoint import save_state_dict
    from runners.config import build_task
    from runners.model import build_model

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=[
            "task=copy", "task.params.copy_len=5", "task.params.vocab_size=6",
            f"mixer={mixer}", "model.d_model=16", "model.num_heads=1", "model.mlp_ratio=0"])
    task = build_task(cfg.task)
    torch.manual_seed(0)
    model = build_model(cfg, task.vocab_size, task.seq_len)
    run = root / mixer
    run.mkdir(parents=True)
    save_state_dict(model, run / "final.ckpt")
    record = {"status": "ok", "config": OmegaConf.to_container(cfg, resolve=True), "seed": 0,
              "lr": 1e-3, "steps": 0, "task_setting": "copy-len5", "mixer": mixer,
              "checkpoint": "final.ckpt", "metrics": {"test_acc": 0.2}}
    (run / "result.json").write_text(json.dumps(record))
    return run


def test_cli_writes_json_and_figures(tmp_path):
    for mixer in ("attention", "pow2"):
        _fake_run(tmp_path / "runs", mixer)
    assert routing.main([str(tmp_path / "runs"), "--out", str(tmp_path / "out"),
                         "--num-seqs", "6"]) == 0
    stats = json.loads((tmp_path / "out" / "copy-len5-pow2-seed0.json").read_text())
    assert stats["num_sequences"] == 6 and stats["copy_distance"] == 5
    assert [L["min_hops"] for L in stats["layers"]] == [2, 2]  # 5 = 4 + 1
    for block in [L["heads"][0] for L in stats["layers"]] + [stats["end_to_end"]]:
        assert 0 <= block["source_mass"] <= 1 and sum(block["hop_share"]) == pytest.approx(1)
    att = json.loads((tmp_path / "out" / "copy-len5-attention-seed0.json").read_text())
    assert att["layers"][0]["heads"][0]["hop_share"] == [1.0]
    assert att["at_init"]["layers"][0]["min_hops"] == 0
    for name in ("pow2", "attention"):
        for kind in ("heatmap", "hops"):
            assert (tmp_path / "out" / f"copy-len5-{name}-seed0-{kind}.png").stat().st_size > 0


def test_only_copy_has_sources():
    with pytest.raises(ValueError, match="copy"):
        routing.copy_sources(type("T", (), {"name": "mqar"})(), torch.zeros(1, 4))


def test_find_runs_skips_files_that_are_not_results(tmp_path):
    run = _fake_run(tmp_path / "runs", "pow2")
    for name, text in [("list", "[1, 2]"), ("deep", "[" * 100_000 + "]" * 100_000)]:
        (tmp_path / "runs" / name).mkdir()
        (tmp_path / "runs" / name / "result.json").write_text(text)
    assert routing.find_runs(tmp_path / "runs") == [run]
