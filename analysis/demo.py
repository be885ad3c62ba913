"""The demo (`make demo`): the smoke grid on the CPU in parallel, then the leaderboard.

    python -m analysis.demo results_dir=results/smoke [more Hydra overrides]

It runs `python -m runners.train -m grid=smoke hydra/launcher=joblib results_dir=...` (4 mixers
x 2 tasks, at most 600 steps each; 1 min 36 s on 2 idle cores, conf/grid/smoke.yaml), then prints
the leaderboard of `analysis.leaderboard` and says where the files are. Finished runs are
skipped, so a second `make demo` only prints the table. It lives in `analysis`, the top layer:
it drives the runner (as a subprocess) and reads what it wrote (docs/architecture.md).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from analysis.leaderboard import main as leaderboard

DEFAULT_RESULTS = "results/smoke"


def _shown(path) -> str:
    """A path as the user can type it here: relative to the working folder when inside it."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return str(path)


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
    board = leaderboard([results])  # shown even when some runs failed
    rc = rc or board
    print(f"\nglmix demo: {elapsed:.0f} s. Result files: {results}/<task>/<mixer>/*/result.json;"
          f" Hydra logs: {results}/_hydra/. Leaderboard again: "
          f"{_shown(sys.executable)} -m analysis.leaderboard {_shown(results)}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
