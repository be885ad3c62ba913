"""Multi-hop recall: chained key -> value look-ups.

Each sequence holds C = num_chains chains of L = chain_len distinct nodes, u_0 -> u_1 -> ... ->
u_{L-1}; every edge is a fact (key u_i, value u_{i+1}), so a value is also the key of the next
fact of its chain. Nodes are distinct across the whole sequence, so every key has one value.

Tokens (H = hops, V = vocab_size): 0 = SEP, 1 .. H = hop markers (token h means "h hops"),
nodes are H + 1 .. V - 1. Layout, with E = C (L - 1) facts and Q = num_queries:

    positions 0 .. 2E-1        the E facts as (key, value) pairs, in uniformly random order
    position  2E               SEP
    positions 2E+1 .. 2E+2Q    Q queries, each (hop marker h, start node u)

The target at a query's start-node position is the node reached from u after h look-ups (the
token that would follow); nothing else is scored. Each query draws h uniformly in 1 .. H, a
chain uniformly, and a start uniformly among the nodes of that chain with at least h successors.
seq_len = 2E + 1 + 2Q.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from .base import (
    IGNORE_INDEX,
    Task,
    TaskData,
    check_derived_seq_len,
    check_int,
    log2_binomial,
    log2_falling_factorial,
    sample_distinct,
)


@dataclasses.dataclass(frozen=True)
class MultiHop(Task):
    vocab_size: int = 256
    num_chains: int = 16
    chain_len: int = 4
    hops: int = 3
    num_queries: int = 32
    seq_len: int | None = None  # derived: 2 * num_chains * (chain_len - 1) + 1 + 2 * num_queries

    name = "multihop"
    version = 1
    TEST_PARAMS = {"num_chains": 4}
    SEP = 0

    def __post_init__(self) -> None:
        check_int("num_chains", self.num_chains, minimum=1)
        check_int("chain_len", self.chain_len, minimum=2)
        check_int("hops", self.hops, minimum=1)
        check_int("num_queries", self.num_queries, minimum=1)
        check_int("vocab_size", self.vocab_size, minimum=1)
        if self.hops > self.chain_len - 1:
            raise ValueError(
                f"hops={self.hops} is larger than the chain allows: a chain of chain_len="
                f"{self.chain_len} nodes has {self.chain_len - 1} edges "
                "(need hops <= chain_len - 1)"
            )
        need = self.num_chains * self.chain_len
        if self.num_nodes < need:
            raise ValueError(
                f"vocab_size={self.vocab_size} is too small: num_chains * chain_len = {need} "
                f"distinct nodes are needed, and vocab_size - 1 - hops = {self.num_nodes} "
                f"tokens are nodes (need vocab_size >= {need + 1 + self.hops})"
            )
        derived = 2 * self.num_facts + 1 + 2 * self.num_queries
        formula = "2 * num_chains * (chain_len - 1) + 1 + 2 * num_queries"
        check_derived_seq_len(self, derived, formula)

    @property
    def num_nodes(self) -> int:
        return self.vocab_size - 1 - self.hops

    @property
    def first_node(self) -> int:
        return self.hops + 1

    @property
    def num_facts(self) -> int:
        return self.num_chains * (self.chain_len - 1)

    @property
    def answer_alphabet(self) -> int:
        """A scored token is a node: one of the V - 1 - hops node tokens."""
        return self.num_nodes

    @property
    def info_bits(self) -> float:
        # The successor map given its domain D (|D| = E, revealed by the queries): choose the C
        # chain ends among the other n - E nodes, then arrange D and the ends into chains: E!.
        e, c = self.num_facts, self.num_chains
        return log2_binomial(self.num_nodes - e, c) + log2_falling_factorial(e, e)

    def num_slices(self) -> int:
        return self.hops

    def slice_names(self) -> list[str]:
        return [f"hops={h}" for h in range(1, self.hops + 1)]

    def _generate(self, num_examples: int, rng: np.random.Generator) -> TaskData:
        n, c, length, q = num_examples, self.num_chains, self.chain_len, self.num_queries
        e = self.num_facts
        nodes = sample_distinct(rng, n, c * length, self.first_node, self.vocab_size)
        chains = nodes.reshape(n, c, length)
        keys = chains[:, :, :-1].reshape(n, e)
        vals = chains[:, :, 1:].reshape(n, e)
        perm = np.argsort(rng.random((n, e)), axis=1)
        keys = np.take_along_axis(keys, perm, axis=1)
        vals = np.take_along_axis(vals, perm, axis=1)

        h = rng.integers(1, self.hops + 1, size=(n, q), dtype=np.int64)
        chain = rng.integers(0, c, size=(n, q), dtype=np.int64)
        start = rng.integers(0, length - h, dtype=np.int64)  # in [0, L - 1 - h]
        rows = np.arange(n)[:, None]
        start_node = chains[rows, chain, start]
        answer = chains[rows, chain, start + h]

        seq = self.seq_len
        inputs = np.empty((n, seq), dtype=np.int64)
        inputs[:, 0 : 2 * e : 2] = keys
        inputs[:, 1 : 2 * e : 2] = vals
        inputs[:, 2 * e] = self.SEP
        qstart = 2 * e + 1
        inputs[:, qstart::2] = h
        inputs[:, qstart + 1 :: 2] = start_node
        targets = np.full((n, seq), IGNORE_INDEX, dtype=np.int64)
        targets[:, qstart + 1 :: 2] = answer

        hop_grid = np.zeros((n, seq), dtype=np.int64)
        hop_grid[:, qstart + 1 :: 2] = h
        hop_t = torch.from_numpy(hop_grid)
        slices = {f"hops={k}": hop_t == k for k in range(1, self.hops + 1)}
        return TaskData(torch.from_numpy(inputs), torch.from_numpy(targets), slices)
