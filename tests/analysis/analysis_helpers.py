"""Hand-written result.json files (runners.schema.Result) for the analysis tests."""

import json
import math
from functools import cache

import numpy as np

from mixers import build_mixer
from runners.paths import catalogue
from runners.schema import Result


@cache
def _state_size(mixer: str, d_model: int, num_heads: int, n: int) -> int:
    return build_mixer(catalogue()[mixer], d_model, num_heads).state_size(n)


def make_result(task_setting, mixer, seed, lr, val_acc, test_acc, *, status="ok", task="mqar",
                seq_len=64, test_exact=None, num_params=1000, d_model=32, num_heads=2,
                num_layers=2, error=None, task_params=None, info_bits=None, model=None,
                mixer_config=None, curve=None):
    """A result as runners.train writes it (a catalogue mixer's config, the layer's state)."""
    task_cfg = {"name": task, "setting": task_setting,
                "params": {"seq_len": seq_len, **(task_params or {})}, "num_train": 100}
    mixer_cfg = dict(mixer_config or catalogue()[mixer])
    model_cfg = {"d_model": d_model, "num_heads": num_heads, "n_layers": num_layers,
                 **(model or {})}
    config = {"task": task_cfg, "mixer": mixer_cfg, "model": model_cfg,
              "trainer": {"max_steps": 10}, "seed": seed, "lr": lr}
    metrics = {} if status != "ok" else {
        "val_acc": val_acc, "test_acc": test_acc,
        "test_exact": test_exact if test_exact is not None else test_acc ** 4,
        "train_loss": 1.0 - val_acc,
    }
    theory = {"seq_len": seq_len}
    if mixer_config is None:
        theory["state_size"] = _state_size(mixer, d_model, num_heads, seq_len)
    return Result(
        status=status, error=error, config=config,
        config_hash=f"{task_setting}-{mixer}-{seed}-{lr}-{json.dumps([model_cfg, mixer_cfg])}",
        task=task, task_setting=task_setting, mixer=mixer, seed=seed, lr=lr,
        code_versions={"task": 1, "generator": 1, "op": 1}, metrics=metrics,
        num_params=num_params, theory=theory, wall_time_s=1.0, steps=10,
        versions={"python": "3"}, info_bits=info_bits,
        **({"curve": curve} if curve is not None else {}),
    ).to_dict()


def _curve(final_acc: float, seed: int) -> dict:
    steps = [50, 100, 150, 200]
    accs = [final_acc * k / 4 for k in range(1, 5)]
    return {"train": {"step": steps, "loss": [3.0 / k + 0.01 * seed for k in range(1, 5)]},
            "val": {"step": steps, "acc": accs, "exact": [a ** 4 for a in accs],
                    "loss": [2.0 / k for k in range(1, 5)]}}


def write(root, record, name=None):
    name = name or record["config_hash"]
    path = root / name / "result.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, allow_nan=False))
    return path


def synthetic_results(root, seeds=(0, 1, 2), lengths=(64, 128, 256), failed=2, big=True):
    """A plausible grid: MQAR at several lengths, flip-flop, every catalogue mixer, two rates."""
    rng = np.random.default_rng(0)
    skill = {"attention": 0.97, "linear_attention": 0.85, "local_attention": 0.35,
             "first_order": 0.4, "kth_order": 0.5, "dense_recurrence": 0.9, "pow2": 0.8,
             "pow2_cache": 0.75, "sq1": 0.85, "sq1_cache": 0.8}
    count = 0
    for mixer, base in skill.items():
        for n in lengths:
            decay = base * math.exp(-(n / 64 - 1) * (1 - base) * 0.5)
            for lr in (1e-3, 3e-3):
                for seed in seeds:
                    v = float(np.clip(decay + rng.normal(0, 0.02) - (0.05 if lr > 2e-3 else 0),
                                      0, 1))
                    t = float(np.clip(v + rng.normal(0, 0.01), 0, 1))
                    write(root, make_result(f"mqar-{n}", mixer, seed, lr, v, t, seq_len=n,
                                            num_params=50000 + 1000 * len(mixer),
                                            task_params={"vocab_size": 64, "num_kv_pairs": 8},
                                            curve=_curve(v, seed)))
                    count += 1
        for seed in seeds:
            v = float(np.clip(base + 0.1 + rng.normal(0, 0.02), 0, 1))
            write(root, make_result("flipflop-256", mixer, seed, 1e-3, v, v, task="flipflop",
                                    seq_len=256, num_params=40000, info_bits=1.0))
    if big:  # a setting whose information exceeds the small states: the bound bites
        for mixer, base in skill.items():
            for seed in seeds:
                v = float(np.clip(base - 0.2 + rng.normal(0, 0.02), 0, 1))
                write(root, make_result("mqar-kv64", mixer, seed, 1e-3, v, v, seq_len=256,
                                        d_model=8, num_params=9000,
                                        task_params={"vocab_size": 8192, "num_kv_pairs": 64}))
    for k in range(failed):
        write(root, make_result("mqar-64", "sq1", 100 + k, 1e-3, 0, 0, status="failed",
                                error="RuntimeError: out of memory\ntraceback..."))
    return root
