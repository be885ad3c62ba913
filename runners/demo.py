"""The demo (`make demo`): the smoke grid on the CPU in parallel, then the leaderboard.

    python -m runners.demo results_dir=results/smoke [more Hydra overrides]

It runs `python -m runners.train -m grid=smoke hydra/launcher=joblib results_dir=...` (4 mixers
x 2 tasks, 300 steps each; a few minutes on 2 cores), then prints the leaderboard of
`analysis.leaderboard` (or, without it, a plain table of the result files) and says where the
files are. Finished runs are skipped, so a second `make demo` only prints the table.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_RESULTS = "results/smoke"


def load_results(results_dir: str | Path) -> list[dict]:
    out = []
    for path in sorted(Path(results_dir).glob("**/result.json")):
        try:
            with open(path) as f:
                r = json.load(f)
        except (OSError, ValueError):
            continue
        r["_path"] = str(path)
        out.append(r)
    return out


def plain_table(results_dir: str | Path) -> None:
    """One row per result file: task setting, mixer, lr, seed, status, accuracies, time."""
    from rich.console import Console
    from rich.table import Table

    rows = load_results(results_dir)
    table = Table(title=f"glmix results in {results_dir}")
    for col in ("task", "mixer", "lr", "seed", "status", "val_acc", "test_acc", "test_exact",
                "state", "time (s)"):
        table.add_column(col, justify="left" if col in ("task", "mixer", "status") else "right")

    def fmt(x):
        return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4f}"

    rows.sort(key=lambda r: (str(r.get("task_setting")),
                             -((r.get("metrics") or {}).get("test_acc") or 0.0)))
    for r in rows:
        m = r.get("metrics") or {}
        table.add_row(str(r.get("task_setting")), str(r.get("mixer")), f"{r.get('lr', 0):g}",
                      str(r.get("seed")), str(r.get("status")), fmt(m.get("val_acc")),
                      fmt(m.get("test_acc")), fmt(m.get("test_exact")),
                      str((r.get("theory") or {}).get("state_size")),
                      f"{r.get('wall_time_s') or 0:.1f}")
    Console().print(table)


def leaderboard(results_dir: str | Path) -> None:
    try:
        from analysis.leaderboard import main as leaderboard_main
    except ImportError:
        plain_table(results_dir)
        return
    try:
        leaderboard_main([str(results_dir)])
    except Exception as e:  # the leaderboard is a separate package: still show the results
        print(f"analysis.leaderboard failed ({type(e).__name__}: {e}); a plain table instead:")
        plain_table(results_dir)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    results = next((a.split("=", 1)[1] for a in args if a.startswith("results_dir=")),
                   DEFAULT_RESULTS)
    results = str(Path(results).expanduser().resolve())
    args = [a for a in args if not a.startswith("results_dir=")]
    cmd = [sys.executable, "-m", "runners.train", "-m", "grid=smoke", "hydra/launcher=joblib",
           f"results_dir={results}", *args]
    print("glmix demo:", " ".join(cmd[1:]), flush=True)
    t0 = time.time()
    rc = subprocess.call(cmd)
    elapsed = time.time() - t0
    if rc != 0:
        print(f"glmix demo: the grid exited with code {rc}", file=sys.stderr)
    leaderboard(results)
    print(f"\nglmix demo: {elapsed:.0f} s. Result files: {results}/<task>/<mixer>/*/result.json;"
          f" Hydra logs: {results}/_hydra/. Leaderboard again: "
          f"python -m analysis.leaderboard {results}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
