"""Fuzz the result.json files fed to the leaderboard (analysis.leaderboard.build_leaderboard and
its Markdown, JSON and HTML outputs): valid results with fields replaced or removed, and
arbitrary JSON. Each draw gives a table or one NoResultsError / ValueError line; a file that is
not a result is reported as `unreadable`, never a crash; a hostile mixer name is escaped in the
HTML; all within the bound of fuzz_helpers."""

from __future__ import annotations

import html
import json
import sys
import tempfile
from pathlib import Path

import pytest
from fuzz_helpers import bounded, json_values, one_line, text
from hypothesis import event, example, given
from hypothesis import strategies as st

from analysis.leaderboard import build_leaderboard
from analysis.render import to_html, to_json, to_markdown
from analysis.results import NoResultsError

sys.path.insert(0, str(Path(__file__).parents[1] / "analysis"))
from analysis_helpers import make_result  # noqa: E402

HOSTILE = "<img src=x onerror=alert(1)>"
_BASE = [make_result("mqar-n64", mixer, seed, 1e-3, 0.5 + 0.1 * seed, 0.4 + 0.1 * seed)
         for mixer in ("attention", "pow2") for seed in (0, 1)]
_paths = st.sampled_from([("mixer",), ("task_setting",), ("seed",), ("lr",), ("status",),
                          ("metrics",), ("metrics", "test_acc"), ("metrics", "val_acc"),
                          ("theory",), ("theory", "seq_len"), ("config",), ("config", "model"),
                          ("config", "model", "d_model"), ("config", "task", "params"),
                          ("config", "mixer"), ("config", "mixer", "recurrent"), ("num_params",),
                          ("curve",), ("config_hash",), ("schema",), ("info_bits",)])
_edits = st.lists(st.tuples(_paths, st.one_of(json_values, st.just(HOSTILE), st.just("9**9**9"),
                                              st.just(None), st.just("<delete>"))), max_size=3)


def _edit(record: dict, edits) -> dict:
    record = json.loads(json.dumps(record))
    for path, value in edits:
        node = record
        for key in path[:-1]:
            if not isinstance(node, dict) or not isinstance(node.get(key), dict):
                break
            node = node[key]
        else:
            if value == "<delete>":
                node.pop(path[-1], None)
            else:
                node[path[-1]] = value
    return record


records = st.lists(st.one_of(st.tuples(st.integers(0, len(_BASE) - 1), _edits).map(
    lambda t: _edit(_BASE[t[0]], t[1])), json_values), min_size=1, max_size=4)


@pytest.fixture(scope="module", autouse=True)
def _warm_up():
    """The leaderboard and its outputs once, outside the bound (first imports are slow)."""
    with tempfile.TemporaryDirectory() as tmp:
        for i, record in enumerate(_BASE):
            (Path(tmp) / f"r{i}").mkdir()
            (Path(tmp) / f"r{i}" / "result.json").write_text(json.dumps(record))
        table = build_leaderboard(tmp)
        to_markdown(table), to_json(table), to_html(table)


@given(files=records, raw=st.lists(text, max_size=1))
@example(files=[_edit(_BASE[0], [(("mixer",), HOSTILE)]), _BASE[2]], raw=[])
@example(files=[_edit(_BASE[0], [(("config", "mixer", "recurrent"), "9**9**(9*k)")])], raw=[])
@example(files=[_BASE[0]], raw=["[" * 100_000 + "]" * 100_000, "[1, 2]"])  # found by the fuzzer
@example(files=[_edit(_BASE[0], [(("config",), HOSTILE)]), _edit(_BASE[1], [(("metrics",), None)]),
                _edit(_BASE[2], [(("theory",), 3)]), _edit(_BASE[3], [(("config", "model"), "x")])],
         raw=[])  # found by the fuzzer: fields of the wrong JSON type
def test_result_files_give_a_table_or_one_line(files, raw):
    with tempfile.TemporaryDirectory() as tmp, bounded():
        root = Path(tmp)
        for i, record in enumerate(files):
            (root / f"r{i}").mkdir()
            (root / f"r{i}" / "result.json").write_text(json.dumps(record))
        for i, blob in enumerate(raw):  # not even JSON
            (root / f"x{i}").mkdir()
            (root / f"x{i}" / "result.json").write_text(blob)
        try:
            table = build_leaderboard(root)
        except (NoResultsError, ValueError) as e:
            one_line(e)
            event("no table")
            return
        event(f"a table of {len(table.table)} rows")
        to_markdown(table)
        json.dumps(to_json(table), default=str)  # as write_outputs writes it
        page = to_html(table)
        if any(HOSTILE in str(name) for name in table.table["mixer"]):
            assert HOSTILE not in page and html.escape(HOSTILE) in page
