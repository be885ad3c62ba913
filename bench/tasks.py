"""Generation speed of every task at its default size: `python -m bench.tasks` (or `make bench`).

Prints examples per second per task (and the settings of VARIANTS), with its Chomsky level, on
one thread (torch.set_num_threads(1); the generators are numpy, single-threaded) and writes JSON
to `--out` (default bench_out/tasks.json; an empty string writes nothing). Times are wall clock
and CPU (process) time, each the best of --repeats; on a shared machine the CPU time is the
steadier figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
import torch

from tasks.registry import TASKS, make_task

# settings timed beside each task's defaults: label -> (task, params)
VARIANTS = {
    "state_tracking[A5]": ("state_tracking", {"group": "alternating", "degree": 5}),
    "state_tracking[A4xZ5]": ("state_tracking", {"group": "alternating_x_cyclic", "degree": 4,
                                                 "order": 5}),
    "state_tracking[Z60]": ("state_tracking", {"group": "cyclic", "order": 60}),
}


def bench_task(name: str, num_examples: int, repeats: int, seed: int = 0,
               params: dict | None = None) -> dict:
    task = make_task(name, **(params or {}))
    walls, cpus = [], []
    for r in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        task.generate(num_examples, seed + r)
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    wall, cpu = min(walls), min(cpus)
    return {
        "task": name,
        "level": task.level,
        "config": task.config(),
        "num_examples": num_examples,
        "seq_len": task.seq_len,
        "wall_s": wall,
        "cpu_s": cpu,
        "examples_per_s": num_examples / wall,
        "examples_per_cpu_s": num_examples / cpu,
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench_out/tasks.json")
    parser.add_argument("--num-examples", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--tasks", nargs="*", default=sorted(TASKS), choices=sorted(TASKS))
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    results = []
    print(
        f"{'task':<28} {'level':<7} {'N':>8} {'seq_len':>7} {'wall s':>8} {'cpu s':>8} "
        f"{'examples/s':>12} {'per cpu s':>12}"
    )
    runs = [(name, name, {}) for name in args.tasks]
    runs += [(label, name, params) for label, (name, params) in VARIANTS.items()
             if name in args.tasks]
    for label, name, params in runs:
        row = bench_task(name, args.num_examples, args.repeats, params=params)
        row["label"] = label
        results.append(row)
        print(
            f"{label:<28} {row['level'] or '-':<7} {row['num_examples']:>8} {row['seq_len']:>7} "
            f"{row['wall_s']:>8.3f} {row['cpu_s']:>8.3f} {row['examples_per_s']:>12,.0f} "
            f"{row['examples_per_cpu_s']:>12,.0f}"
        )
    report = {
        "threads": torch.get_num_threads(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "results": results,
    }
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        tmp = args.out + ".tmp"
        with open(tmp, "w") as f:
            json.dump(report, f, indent=2)
        os.replace(tmp, args.out)
        print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
