"""Plots: produced from a synthetic folder, skipped with a note when their data is missing."""

import json

import numpy as np
import pytest
from analysis_helpers import make_result, synthetic_results, write

from analysis import plots
from analysis.results import load_results, setting_order, summarize
from analysis.stats import fit_exponent


def bench_records(exponents, ns=(256, 512, 1024, 2048, 4096)):
    out = []
    for mixer, e in exponents.items():
        for n in ns:
            t = 1e-6 * n ** e * (5.0 if n < 1024 else 1.0)  # small n off the power law
            out.append({"mixer": mixer, "backend": "chunked", "n": n, "fwd_s": t,
                        "fwdbwd_s": 3 * t, "peak_mem_bytes": 1000 * n})
    return out


def test_every_plot_from_a_synthetic_folder(tmp_path, capsys):
    root = synthetic_results(tmp_path / "r", seeds=(0, 1), lengths=(64, 128), failed=0)
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps({"records": bench_records({"attention": 2.0, "pow2": 1.1}),
                                 "fits": {"attention": 2.0}}))
    runs = load_results(root)
    cells = summarize(runs)
    made = plots.make_plots(cells, tmp_path / "out", bench=bench, runs=runs)
    names = {p.stem for _, p in made}
    assert names == {"accuracy_vs_seq_len", "accuracy_vs_state", "accuracy_vs_hops",
                     "accuracy_vs_congestion", "time_vs_n", "learning_curves"}
    for _, png in made:
        assert png.stat().st_size > 10_000
        assert png.with_suffix(".svg").exists()


def test_accuracy_against_the_swept_task_parameter(tmp_path, capsys):
    # MQAR at 8, 16, 32 pairs (seq_len fixed): a line per mixer against num_kv_pairs
    root = tmp_path / "r"
    truth = {("attention", 8): 0.99, ("attention", 16): 0.97, ("attention", 32): 0.9,
             ("sq1", 8): 0.6, ("sq1", 16): 0.3, ("sq1", 32): 0.1}
    for (mixer, kv), acc in truth.items():
        for seed in (0, 1):
            write(root, make_result(f"mqar-kv{kv}", mixer, seed, 1e-3, acc, acc + 0.01 * seed,
                                    seq_len=128, task_params={"num_kv_pairs": kv}))
    cells = summarize(load_results(root))
    assert setting_order(cells) == ["mqar-kv8", "mqar-kv16", "mqar-kv32"]  # numbers as numbers
    swept = plots.swept_task_params(cells)
    assert list(swept) == ["mqar"]
    key, sub = swept["mqar"]
    assert key == "num_kv_pairs"
    got = {(r["mixer"], int(r["x"])): r["mean"] for _, r in sub.iterrows()}
    assert got == pytest.approx({k: v + 0.005 for k, v in truth.items()})
    seeds = {(r["mixer"], int(r["x"])): sorted(r["values"]) for _, r in sub.iterrows()}
    assert seeds[("sq1", 16)] == pytest.approx([0.3, 0.31])
    made = plots.make_plots(cells, tmp_path / "out")
    assert "accuracy_vs_num_kv_pairs" in {p.stem for _, p in made}
    # the synthetic grid varies seq_len (its own plot) and, in one setting, three parameters
    grid = summarize(load_results(synthetic_results(tmp_path / "g", seeds=(0,), failed=0)))
    assert plots.swept_task_params(grid) == {}
    assert plots.plot_task_sweep(grid, tmp_path / "out2", "test_acc") is None
    assert "exactly one numeric parameter" in capsys.readouterr().out


def test_a_run_stopped_early_holds_its_last_value_in_the_curves(tmp_path):
    root = tmp_path / "r"
    for seed, (steps, accs) in enumerate((([100, 200], [0.5, 0.99]),
                                          ([100, 200, 300, 400], [0.1, 0.2, 0.3, 0.4]))):
        curve = {"train": {"step": steps, "loss": [1.0] * len(steps)},
                 "val": {"step": steps, "acc": accs, "exact": accs, "loss": accs}}
        write(root, make_result("mqar-64", "attention", seed, 1e-3, accs[-1], accs[-1],
                                curve=curve))
    runs = load_results(root)
    frame = plots._curve_frame(summarize(runs), runs)
    val = frame[frame["part"] == "val_acc"].groupby("step")["value"].mean()
    # seed 0 stopped at 200 with 0.99: the mean at 300 and 400 keeps it
    assert val.to_dict() == pytest.approx({100: 0.3, 200: 0.595, 300: 0.645, 400: 0.695})


def test_missing_data_is_skipped_with_a_note(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no bench_out/mixers.json from an earlier `make bench`
    root = tmp_path / "r"
    # one length only: no seq-len plot; no recorded state size: the summary asks the layer
    for seed in (0, 1):
        rec = make_result("mqar-64", "attention", seed, 1e-3, 0.5, 0.5)
        rec["theory"] = {"seq_len": 64}
        write(root, rec)
    runs = load_results(root)
    cells = summarize(runs)
    made = plots.make_plots(cells, tmp_path / "out", runs=runs)
    printed = capsys.readouterr().out
    assert "sequence length skipped" in printed
    assert "no benchmark JSON" in printed
    assert "learning curves skipped" in printed
    assert {p.stem for _, p in made} == {"accuracy_vs_state", "accuracy_vs_hops",
                                          "accuracy_vs_congestion"}
    assert (cells["state_size"] == 2 * 32 * 63).all()  # attention: 2 * d_model * (n - 1)


def test_a_registered_plot_is_drawn_with_the_style_passed_in(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no bench_out/mixers.json of the checkout joins the plots
    root = tmp_path / "r"
    for seed in (0, 1):
        for d in (16, 32):
            write(root, make_result("mqar-64", "attention", seed, 1e-3, 0.5, 0.5, d_model=d))
    runs = load_results(root)
    seen = {}

    def draw(cells, out, metric, key, style):
        seen["rows"] = sorted(cells["row"].unique())
        seen["color"] = style.color(seen["rows"][0])
        return None

    plots.PLOTS.append(plots.Plot("probe", draw))
    try:
        style = plots.Style(["attention"])
        plots.make_plots(summarize(runs, group_by="model.d_model"), tmp_path / "out",
                         style=style)
    finally:
        plots.PLOTS.pop()
    # --group-by: one curve per group value, never the pool of both widths
    assert seen["rows"] == ["attention [d_model=16]", "attention [d_model=32]"]
    assert seen["color"] == style.colors["attention [d_model=16]"]
    # the pooled rows keep the palette of the pooled rows alone (the leaderboard's colours)
    assert style.colors["attention"] == plots.colors_for(["attention"])["attention"]


def test_a_width_sweep_draws_a_line_per_mixer_against_state(tmp_path, monkeypatch):
    # Zoology's frontier: with --group-by model.d_model each mixer is one line through its
    # widths, ordered by the layer's state size, on the accuracy-against-state plot
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "r"
    truth = {("attention", 16): 0.2, ("attention", 32): 0.9, ("pow2", 16): 0.1,
             ("pow2", 32): 0.4}
    for (mixer, d), acc in truth.items():
        for seed in (0, 1):
            write(root, make_result("mqar-64", mixer, seed, 1e-3, acc, acc, d_model=d))
    cells = summarize(load_results(root), group_by="model.d_model")
    split = plots.split_by_group(cells, "model.d_model")
    split["state"] = split["state_size"].astype(float)
    lines = plots.state_lines(split)
    assert set(lines) == {"attention", "pow2"}
    for mixer, (xs, ys) in lines.items():
        assert xs == sorted(xs) and len(set(xs)) == 2  # the wider layer keeps more state
        assert ys == pytest.approx([truth[(mixer, 16)], truth[(mixer, 32)]])
    assert plots.state_lines(summarize(load_results(root)).assign(state=1.0)) == {}
    made = plots.make_plots(cells, tmp_path / "out")
    assert "accuracy_vs_state" in {p.stem for _, p in made}


def test_fit_exponent_uses_large_n_only():
    df = plots.load_bench_records(bench_records({"sq1": 1.5}))
    part = df[df["mixer"] == "sq1"]
    fit = fit_exponent(part["n"], part["fwd_s"])
    assert fit.exponent == pytest.approx(1.5) and fit.ns == [1024, 2048, 4096]
    # with every n the off-curve small lengths would bend it
    assert fit_exponent(part["n"], part["fwd_s"], n_min=1).exponent < 1.3
    assert np.isnan(fit_exponent([1024], [1.0]).exponent)
    assert np.isnan(fit_exponent([1024, 2048], [1.0, None]).exponent)


def test_bench_loader_reads_the_records_layout(tmp_path, capsys):
    path = tmp_path / "b.json"
    path.write_text(json.dumps({"records": [{"mixer": "pow2", "n": 1024, "fwd_s": None},
                                            {"mixer": "pow2", "n": 2048, "fwd_s": 0.2},
                                            {"n": "bad"}, "junk"]}))
    df = plots.load_bench(path)
    assert len(df) == 2 and set(df["backend"]) == {""}
    path.write_text(json.dumps([{"mixer": "pow2", "n": 1024, "fwd_s": 0.1}]))  # not the layout
    assert plots.plot_bench(path, tmp_path) is None
    assert plots.plot_bench(tmp_path / "missing.json", tmp_path) is None
    assert capsys.readouterr().out.count("cannot read") == 2


def test_colours_by_order():
    colors = plots.colors_for(["b", "a", "b", "c"])
    assert list(colors) == ["b", "a", "c"] and len(set(colors.values())) == 3
    assert plots.colors_for(["z", "y"])["z"] == colors["b"]  # the first row's colour
    many = plots.colors_for([f"m{i}" for i in range(25)])
    assert len(set(many.values())) == 25


def test_plots_main_exit_codes(tmp_path):
    empty = tmp_path / "e"
    empty.mkdir()
    assert plots.main([str(empty)]) == 1
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps({"records": bench_records({"attention": 2.0})}))
    assert plots.main([str(empty), "--bench", str(bench), "--out", str(tmp_path / "o")]) == 0
    assert (tmp_path / "o" / "time_vs_n.png").exists()
    one = tmp_path / "one"
    write(one, make_result("mqar-64", "attention", 0, 1e-3, 0.5, 0.5))
    assert plots.main([str(one), "--where", "lr", "--out", str(tmp_path / "w")]) == 1
    assert plots.main([str(one), "--where", "lr=3e-3", "--out", str(tmp_path / "w")]) == 1
    assert not (tmp_path / "w").exists()  # nothing drawn for a filter that left nothing


def test_a_late_label_keeps_the_colours_already_given():
    style = plots.Style(["a", "b"])
    first = dict(style.colors)
    for i in range(12):  # past the 10 colours of the colour-blind palette
        style.color(f"late{i}")
    assert {k: style.colors[k] for k in first} == first
    assert len(set(style.colors.values())) == len(style.colors)


def test_a_legend_entry_spells_out_the_keys_only_where_its_label_does_not_say_them():
    import pandas as pd

    from analysis.results import label_by_difference

    base = pd.Series(["attention", "attention", "pow2", "pow2"])
    ids = pd.Series([{"model.n_layers": 1}, {"model.n_layers": 2},
                     {"model.d_model": 16, "trainer.max_steps": 600, "mixer.short_conv": 4},
                     {"model.d_model": 32, "trainer.max_steps": 800, "mixer.short_conv": 0}])
    labels, legend = label_by_difference(base, ids, width=24)
    style = plots.Style(labels, legend)
    # `attention [n_layers=2]` already says model.n_layers=2: the entry is the label alone
    assert list(labels[:2]) == ["attention [n_layers=1]", "attention [n_layers=2]"]
    assert style.text(labels[1]) == "attention [n_layers=2]"
    assert style.keys_to_show(labels[1]) is None
    # a label too long for the width became a letter: its entry carries the keys in full
    assert set(labels[2:]) == {"pow2 [a]", "pow2 [b]"} and "\n" in style.text(labels[2])
    assert "model.d_model=16" in style.text(labels[2])
    assert style.keys_to_show(labels[3]) == legend[labels[3]]
    # a label that stands for nothing has no keys either
    assert plots.Style(["attention"]).text("attention") == "attention"
