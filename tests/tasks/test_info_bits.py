"""info_bits against brute-force counts on tiny configurations (formulas: docs/tasks.md)."""

from __future__ import annotations

import itertools
import math
from collections import defaultdict

import pytest

from tasks import make_task


def answer_table_bits(structures) -> float:
    """log2 of the number of distinct answer tables per revealed domain, checked to be the same
    for every domain (all equally likely): the bits a model must carry beyond what the queries
    reveal."""
    per_domain = defaultdict(set)
    for domain, table in structures:
        per_domain[domain].add(table)
    counts = {len(tables) for tables in per_domain.values()}
    assert len(counts) == 1
    return math.log2(counts.pop())


def test_mqar_info_bits_brute_force():
    vocab, k = 10, 2  # keys in [1, 5), values in [5, 10)
    task = make_task("mqar", vocab_size=vocab, num_kv_pairs=k, seq_len=8)
    structures = []
    for keys in itertools.permutations(range(1, 5), k):
        for vals in itertools.permutations(range(5, 10), k):
            table = tuple(sorted(zip(keys, vals)))
            structures.append((frozenset(keys), table))
    assert task.info_bits == pytest.approx(answer_table_bits(structures))


@pytest.mark.parametrize(("nodes", "chains", "length"), [(6, 2, 2), (7, 2, 3), (7, 1, 4)])
def test_multihop_info_bits_brute_force(nodes, chains, length):
    hops = length - 1
    task = make_task(
        "multihop", vocab_size=nodes + 1 + hops, num_chains=chains, chain_len=length, hops=hops
    )
    assert task.num_nodes == nodes
    structures = []
    for pick in itertools.permutations(range(nodes), chains * length):
        succ = {}
        for c in range(chains):
            chain = pick[c * length : (c + 1) * length]
            succ.update(zip(chain[:-1], chain[1:]))
        structures.append((frozenset(succ), tuple(sorted(succ.items()))))
    assert task.info_bits == pytest.approx(answer_table_bits(structures))


def test_small_formulas():
    assert make_task("copy", vocab_size=17, copy_len=10).info_bits == pytest.approx(40.0)
    assert make_task("selective_copy", vocab_size=18, num_tokens=8).info_bits == pytest.approx(32)
    assert make_task("flipflop").info_bits == 1.0
    assert make_task("state_tracking", group="parity").info_bits == 1.0
    assert make_task("state_tracking", group="cyclic", order=8).info_bits == 3.0
    s5 = make_task("state_tracking", group="permutation", degree=5)
    assert s5.info_bits == pytest.approx(math.log2(120))
