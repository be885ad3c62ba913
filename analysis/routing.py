"""Routing evidence: where the mass that reaches a copy output comes from, and through how many
recurrent hops (docs/results/routing.md).

    python -m analysis.routing RESULT_DIR [--out DIR] [--num-seqs 128]

RESULT_DIR is one run's folder (result.json and final.ckpt, written with save_checkpoint=true)
or a folder searched for them. For each run, on the first --num-seqs test sequences, every
layer's effective token mixing per head is M = (I - B)^{-1} A (GLRMixer.mixing_matrix; for
attention its attention matrix). M is row-stochastic and non-negative (the joint softmax), so
M[i, j] is the share of output i's mixture that comes from input j (with signed coefficients,
docs/design.md 1.10, M may be negative: rows have absolute sum at most 1 and the shares are
signed). Since (I - B)^{-1} =
sum_{h >= 0} B^h, the part of it that arrives through exactly h recurrent hops is
W_h = B^h A. Measured on the scored rows i of the copy task, whose source is input i - copy_len:

    source_mass   mean M[i, i - C]          (the copy source) ; self_mass: mean M[i, i]
    hop_share     sum_i W_h[i, i - C] / sum_i M[i, i - C]     (the source's weight by hop count)
    hop_share_all mean_i sum_j W_h[i, j]                      (all of the row's mass by hops)
    min_hops      the fewest recurrent hops by which the pattern can reach the source (the
                  worst scored row; min_hops_range: over the scored rows)
    at_init       the same for the run's model as initialised (the control)
    distance_profile[d]  mean M[i, i - d] over the scored rows; top_distances: its top five
    source_mass_by_row   mean M[i, i - C] for each scored row i (rows[0] = C first)

For a model with two or more layers, `end_to_end` is the same for the product M_L ... M_1 of
the layers' mixing (head-averaged), with hops counted over all layers. It ignores the residual
paths, the layer norms and the value/out projections: a linear token-level picture, not the
network's function. Writes <out>/<setting>-<mixer>-seed<s>.json, a heatmap PNG (M averaged over
the sequences, head 0, per layer and for the product; log colour scale) and a hop-share PNG.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from analysis.results import read_result_json

__all__ = ["load_run", "copy_sources", "mixing_matrices", "hop_terms", "min_hops",
           "routing_stats", "product_stats", "analyse_run", "main"]


# ------------------------------------------------------------------------------- loading
def load_run(run_dir: Path, trained: bool = True):
    """(result dict, task, model in float64 eval mode) of a run folder with a checkpoint;
    trained=False: the model as initialised for that run (seeded as runners.train seeds it),
    the control for what training changed."""
    from omegaconf import OmegaConf

    from runners.model import build_model
    from tasks import task_of_config

    run_dir = Path(run_dir)
    result = read_result_json(run_dir / "result.json")
    if not isinstance(result, dict) or not result.get("checkpoint"):
        raise ValueError(f"{run_dir}: no checkpoint (train with save_checkpoint=true)")
    cfg = OmegaConf.create(result["config"])
    tc = result["config"]["task"]  # the recorded (validated) task config
    task = task_of_config(tc["name"], tc.get("params"), tc.get("train_settings"),
                          tc.get("test_settings"))
    import lightning.pytorch as pl

    pl.seed_everything(int(result["seed"]), workers=True, verbose=False)
    model = build_model(cfg, task.vocab_size, task.seq_len)
    if trained:
        from runners.checkpoint import load_state_dict

        model.load_state_dict(load_state_dict(run_dir / result["checkpoint"]))
    return result, task, model.double().eval()


def test_inputs(result: dict, task, num_seqs: int):
    """The first num_seqs test sequences of the run (its own test split)."""
    from tasks.registry import split_seed

    data = task.generate(num_seqs, split_seed(int(result["seed"]), "test"))
    return data.inputs, data.targets


def copy_sources(task, targets: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(rows, sources): the scored positions of the copy task and the input position holding
    each one's target, i - copy_len (tasks/copy.py)."""
    if getattr(task, "name", None) != "copy":
        raise ValueError(f"routing: only the copy task has fixed sources, got {task.name!r}")
    rows = np.nonzero((targets[0] != -100).numpy())[0]
    return rows, rows - task.copy_len


# --------------------------------------------------------------------------- the matrices
@torch.no_grad()
def mixing_matrices(model, inputs: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per layer (M, B, A) [S, H, n, n] on the mixer's own input (norm1 of the stream)."""
    captured = []
    hooks = [blk.mixer.register_forward_pre_hook(lambda m, a: captured.append((m, a[0])))
             for blk in model.blocks]
    try:
        model(inputs)
    finally:
        for h in hooks:
            h.remove()
    out = []
    for mixer, x in captured:
        if not hasattr(mixer, "mixing_matrix"):
            raise ValueError(f"routing: {type(mixer).__name__} has no mixing_matrix")
        M, A, B = mixer.mixing_matrix(x)
        out.append((M, B, A))
    return out


def hop_terms(B: torch.Tensor, A: torch.Tensor, tol: float = 1e-12):
    """W_h = B^h A for h = 0, 1, ... until it vanishes (at most n terms: B is strictly lower
    triangular). Their sum is M."""
    W, terms = A, []
    for _ in range(A.shape[-1]):
        terms.append(W)
        W = B @ W
        if float(W.abs().max()) <= tol:
            break
    return terms


def min_hops(B: torch.Tensor, A: torch.Tensor, rows, sources, per_row: bool = False):
    """The fewest recurrent hops by which the pattern (the support of B and A) reaches each
    row's source; the largest over the rows (None: unreachable). per_row: the array (-1:
    unreachable). A cache-efficient pattern's rows differ (pow2_cache: 1 to 5 at distance 40)."""
    # the support: nonzero coefficients (signed ones, docs/design.md 1.10, may be negative)
    sb, sa = (B[0, 0] != 0).double(), (A[0, 0] != 0).double()
    need = np.full(len(rows), -1)
    W = sa
    for h in range(A.shape[-1]):
        hit = (W[rows, sources] > 0).numpy() & (need < 0)
        need[hit] = h
        if (need >= 0).all():
            break
        W = ((sb @ W) > 0).double()
    if per_row:
        return need
    return int(need.max()) if (need >= 0).all() else None


def _shares(values: np.ndarray) -> list[float]:
    total = values.sum()
    return [float(v / total) if total > 0 else 0.0 for v in values]


def routing_stats(terms: list[torch.Tensor], rows, sources) -> dict:
    """The measures of the module docstring from the hop terms W_h [S, n, n] of one head (or
    of the end-to-end product)."""
    src_by_h = np.array([float(W[:, rows, sources].mean()) for W in terms])
    all_by_h = np.array([float(W[:, rows].sum(-1).mean()) for W in terms])
    return _stats(sum(terms), rows, sources, src_by_h, all_by_h)


def _stats(M, rows, sources, src_by_h, all_by_h) -> dict:
    src, own = M[:, rows, sources], M[:, rows, rows]  # [S, rows]
    hs = np.arange(len(src_by_h))
    d = rows[:, None] - np.arange(M.shape[-1])[None, :]  # [rows, distance]
    by_dist = (M[:, rows[:, None], d.clip(0)] * torch.as_tensor(d >= 0)).mean((0, 1))
    return {
        "distance_profile": [float(v) for v in by_dist],
        "source_mass": float(src.mean()),
        "source_mass_min": float(src.min()),
        "source_mass_by_row": [float(v) for v in src.mean(0)],
        "self_mass": float(own.mean()),
        "other_mass": float(1.0 - src.mean() - own.mean()),
        "hop_share": _shares(src_by_h),
        "hop_share_all": _shares(all_by_h),
        "mean_source_hops": float((hs * src_by_h).sum() / max(src_by_h.sum(), 1e-300)),
    }


def product_stats(per_layer: list[list[torch.Tensor]], rows, sources) -> tuple[dict, torch.Tensor]:
    """routing_stats of the product P = M_L ... M_1 of the layers' head-averaged mixing, hops
    counted over all layers (a convolution of the layers' hop terms), and P itself [S, n, n].
    Only the columns of the sources (and the row sums) are carried through the layers, and
    the last layer only for the scored rows."""
    sources_t, rows_t = torch.as_tensor(sources), torch.as_tensor(rows)
    cols = [W.mean(1)[:, :, sources_t] for W in per_layer[0]]  # [S, n, R] by hops
    sums = [W.mean(1).sum(-1) for W in per_layer[0]]  # [S, n] by hops
    P = sum(per_layer[0]).mean(1)
    for terms in per_layer[1:-1]:
        layer = [W.mean(1) for W in terms]
        P = sum(layer) @ P
        width = len(cols) + len(layer) - 1
        new_cols, new_sums = [0.0] * width, [0.0] * width
        for h2, W2 in enumerate(layer):
            for h1, (C1, s1) in enumerate(zip(cols, sums)):
                new_cols[h1 + h2] = new_cols[h1 + h2] + W2 @ C1
                new_sums[h1 + h2] = new_sums[h1 + h2] + (W2 @ s1.unsqueeze(-1)).squeeze(-1)
        cols, sums = new_cols, new_sums
    last = torch.stack([W.mean(1)[:, rows_t] for W in per_layer[-1]])  # [H2, S, R, n]
    P = sum(W.mean(1) for W in per_layer[-1]) @ P
    src = torch.einsum("bsrk,askr->ba", last, torch.stack(cols)) / (last.shape[1] * len(rows))
    tot = torch.einsum("bsrk,ask->ba", last, torch.stack(sums)) / (last.shape[1] * len(rows))
    src_by_h, all_by_h = np.zeros(sum(src.shape) - 1), np.zeros(sum(src.shape) - 1)
    for h2 in range(src.shape[0]):  # total hops h1 + h2: the anti-diagonals
        src_by_h[h2:h2 + src.shape[1]] += src[h2].numpy()
        all_by_h[h2:h2 + src.shape[1]] += tot[h2].numpy()
    return _stats(P, rows, sources, src_by_h, all_by_h), P


# ---------------------------------------------------------------------------- one run
def analyse_run(run_dir: Path, num_seqs: int = 128, batch: int = 32,
                trained: bool = True) -> tuple[dict, dict]:
    """(stats for the JSON, arrays for the figures) of one run (trained=False: at init)."""
    result, task, model = load_run(run_dir, trained)
    inputs, targets = test_inputs(result, task, num_seqs)
    rows, sources = copy_sources(task, targets)
    n_layers = len(model.blocks)
    sums: dict = {}
    mean_M: list = [0.0] * (n_layers + 1)
    reach = []
    for start in range(0, len(inputs), batch):
        mats = mixing_matrices(model, inputs[start:start + batch])
        per_layer = []
        for layer, (M, B, A) in enumerate(mats):
            terms = hop_terms(B, A)
            per_layer.append(terms)
            mean_M[layer] = mean_M[layer] + M.sum(0)
            if start == 0:
                reach.append(min_hops(B, A, rows, sources, per_row=True))
            for head in range(M.shape[1]):
                stats = routing_stats([W[:, head] for W in terms], rows, sources)
                sums.setdefault((layer, head), []).append((stats, M.shape[0]))
        if n_layers > 1:
            stats, P = product_stats(per_layer, rows, sources)
            mean_M[n_layers] = mean_M[n_layers] + P.sum(0)
            sums.setdefault(("end", 0), []).append((stats, P.shape[0]))
    agg = {key: _weighted_mean(parts) for key, parts in sums.items()}
    layers = [{"layer": layer,
               "min_hops": int(reach[layer].max()) if (reach[layer] >= 0).all() else None,
               "min_hops_range": [int(reach[layer].min()), int(reach[layer].max())],
               "heads": [agg[(layer, h)] for h in range(model.blocks[0].mixer.num_heads)]}
              for layer in range(n_layers)]
    out = {
        "run": {k: result.get(k) for k in ("task_setting", "mixer", "seed", "lr", "steps")}
        | {"test_acc": result["metrics"].get("test_acc"), "run_dir": str(run_dir)},
        "num_sequences": int(len(inputs)),
        "copy_distance": int(task.copy_len),
        "seq_len": int(task.seq_len),
        "layers": layers,
    }
    if n_layers > 1:
        out["end_to_end"] = agg[("end", 0)] | {
            "note": "product M_L ... M_1 of the layers' head-averaged mixing; ignores the "
                    "residual paths, layer norms and value/out projections"}
    figs = {"mean_M": [m / len(inputs) for m in mean_M[:n_layers]],
            "mean_product": mean_M[n_layers] / len(inputs) if n_layers > 1 else None}
    return out, figs


def _weighted_mean(parts):
    total = sum(w for _, w in parts)
    keys = parts[0][0].keys()
    out = {}
    for k in keys:
        vals = [s[k] for s, _ in parts]
        if isinstance(vals[0], list):
            width = max(len(v) for v in vals)
            arr = np.array([v + [0.0] * (width - len(v)) for v in vals])
            w = np.array([w for _, w in parts], dtype=float)[:, None]
            mean = (arr * w).sum(0) / total
            out[k] = [round(float(x), 6) for x in mean]
            if k == "distance_profile":
                out["top_distances"] = [[int(d), out[k][d]] for d in np.argsort(-mean)[:5]]
        elif k == "source_mass_min":
            out[k] = round(float(min(vals)), 6)
        else:
            out[k] = round(float(sum(v * w for v, (_, w) in zip(vals, parts)) / total), 6)
    return out


# ---------------------------------------------------------------------------- figures
def _label(stats):
    r = stats["run"]
    return f"{r['task_setting']}-{r['mixer']}-seed{r['seed']}"


def plot_heatmaps(stats: dict, figs: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns
    from matplotlib.colors import LogNorm

    panels = [(f"layer {i + 1}", m[0].numpy()) for i, m in enumerate(figs["mean_M"])]
    if figs["mean_product"] is not None:
        panels.append(("product (no residual)", figs["mean_product"].numpy()))
    c, n = stats["copy_distance"], stats["seq_len"]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels) + 0.8, 3.6),
                             squeeze=False)
    for k, (ax, (title, m)) in enumerate(zip(axes[0], panels)):
        sns.heatmap(np.clip(m, 1e-4, 1.0), ax=ax, norm=LogNorm(1e-4, 1.0), cmap="magma",
                    square=True, cbar=k == len(panels) - 1, xticklabels=20, yticklabels=20,
                    cbar_kws={"label": "mean M[i, j]"} if k == len(panels) - 1 else None)
        ax.plot([0, n - c - 3], [c + 3, n], color="cyan", lw=0.7, ls="--")  # 3 left of j = i - C
        ax.set_xlabel("input j")
        ax.set_ylabel("output i" if k == 0 else "")
        ax.set_title(title, fontsize=9)
    r = stats["run"]
    fig.suptitle(f"{r['mixer']} on {r['task_setting']} (test acc {r['test_acc']:.3f}): "
                 f"mean mixing, head 0, {stats['num_sequences']} test seqs; "
                 f"dashed: 3 cells left of the copy source j = i - {c}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def plot_hops(stats: dict, path: Path, max_bars: int = 48) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    at_init = stats.get("at_init") or {"layers": [None] * len(stats["layers"])}
    blocks = [(f"layer {L['layer'] + 1} (source mass {L['heads'][0]['source_mass']:.3f}, "
               f"min hops {L['min_hops_range'][0]}-{L['min_hops_range'][1]})", L["heads"][0],
               ini and ini["heads"][0])
              for L, ini in zip(stats["layers"], at_init["layers"])]
    if "end_to_end" in stats:
        e = stats["end_to_end"]
        blocks.append((f"product (source mass {e['source_mass']:.3f})", e,
                       at_init.get("end_to_end")))
    fig, axes = plt.subplots(len(blocks), 1, figsize=(7, 1.9 * len(blocks)), squeeze=False)
    for ax, (title, s, init) in zip(axes[:, 0], blocks):
        share, allm = s["hop_share"], s["hop_share_all"]
        last = max([h for h, v in enumerate(share) if v > 0.005] + [1]) + 2
        last = min(last, max_bars, len(share))
        hs = np.arange(last)
        ax.bar(hs - 0.2, share[:last], width=0.4, label="copy source's weight")
        ax.bar(hs + 0.2, allm[:last], width=0.4, label="all of the row's mass", alpha=0.6)
        if init is not None:
            ax.plot(hs - 0.2, init["hop_share"][:last] + [0.0] * (last - len(init["hop_share"])),
                    "kx", ms=5, label="copy source's weight, at init")
        ax.set_title(title, fontsize=9)
        ax.set_ylim(0, 1)
        ax.set_xlim(-0.6, max(last, 4) - 0.4)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_ylabel("share")
    axes[-1, 0].set_xlabel("recurrent hops h (weight through B^h A)")
    axes[0, 0].legend(fontsize=7, loc="upper right")
    fig.suptitle(f"{stats['run']['mixer']}: share by hop count, head 0", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


# -------------------------------------------------------------------------------- CLI
def find_runs(root: Path) -> list[Path]:
    root = Path(root)
    if (root / "result.json").exists():
        return [root]
    runs = []
    for p in sorted(root.glob("**/result.json")):
        try:
            r = read_result_json(p)
        except (OSError, ValueError):  # not a result (analysis.leaderboard lists it unreadable)
            continue
        if isinstance(r, dict) and r.get("status") == "ok" and r.get("checkpoint"):
            runs.append(p.parent)
    return runs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m analysis.routing", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("result_dir", type=Path)
    ap.add_argument("--out", type=Path, default=None, help="default: RESULT_DIR/routing")
    ap.add_argument("--num-seqs", type=int, default=128)
    args = ap.parse_args(argv)
    runs = find_runs(args.result_dir)
    if not runs:
        print(f"routing: no finished run with a checkpoint under {args.result_dir}",
              file=sys.stderr)
        return 1
    out = args.out or args.result_dir / "routing"
    out.mkdir(parents=True, exist_ok=True)
    for run in runs:
        stats, figs = analyse_run(run, args.num_seqs)
        init, _ = analyse_run(run, args.num_seqs, trained=False)
        stats["at_init"] = {"layers": init["layers"], "end_to_end": init.get("end_to_end")}
        name = _label(stats)
        stats["run"]["run_dir"] = run.name
        (out / f"{name}.json").write_text(json.dumps(stats, indent=1) + "\n")
        plot_heatmaps(stats, figs, out / f"{name}-heatmap.png")
        plot_hops(stats, out / f"{name}-hops.png")
        heads = [f"L{L['layer'] + 1} src {h['source_mass']:.3f} (init "
                 f"{i['heads'][0]['source_mass']:.3f}) self {h['self_mass']:.3f} "
                 f"hops {h['mean_source_hops']:.1f}"
                 for L, i in zip(stats["layers"], stats["at_init"]["layers"])
                 for h in L["heads"][:1]]
        end = stats.get("end_to_end")
        print(f"{name}: acc {stats['run']['test_acc']:.3f}; " + "; ".join(heads)
              + (f"; product src {end['source_mass']:.3f}" if end else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
