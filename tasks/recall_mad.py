"""MAD's own layout of fuzzy in-context recall (`fuzzy_recall` with `layout=mad`).

MAD (`mad/data/instances.py`, `generate_fuzzy_in_context_recall_instance`, multi-query) builds
each sequence slot by slot with keys and values of variable length; this module draws the same
law with glmix's generator (one row at a time: the slots' lengths vary, so rows do not align).
With V = vocab_size, Z = noise_vocab_size, PAD = V - 1 and W = V - 1 - Z: key tokens [0, W // 2),
value tokens [W // 2, W), noise tokens [W, V - 1) (MAD's 7 key / 8 value tokens at V = 16).

    sizes      a key is 1 .. key_len distinct key tokens (each size uniform) when variable_keys
               (MAD's training split), else key_len (its test split); a value is 1 .. value_len
               distinct value tokens, each size uniform, in both splits
    probe      a key-value pair drawn first; it is inserted once where the growing sequence
               passes a uniform index in [0, seq_len - 2 (probe's length)), and it ends the
               sequence
    slots      until the sequence reaches seq_len - (probe's length) - (key_len + value_len):
               noise (the slot's key and value sizes of i.i.d. noise tokens) with probability
               frac_noise, else a key; the probe's key takes the probe's value, a key seen
               before keeps its value, a new key draws one
    padding    PAD in front, to seq_len + 1 tokens; inputs are the first seq_len
    scored     the value tokens of every key presented before (the final probe included)
"""

from __future__ import annotations

import numpy as np


class _Stream:
    """Uniform [0, 1) draws of one row, read in order (one numpy draw for all rows: the slots'
    lengths vary, so the rows are built one by one in Python, from numbers drawn at once)."""

    def __init__(self, u: list[float]):
        self.u, self.i = u, 0

    def below(self, m: int) -> int:
        """Uniform in [0, m)."""
        self.i += 1
        return int(self.u[self.i - 1] * m)

    def distinct(self, low: int, high: int, size: int) -> tuple[int, ...]:
        """`size` distinct tokens of [low, high), uniform over ordered tuples (partial shuffle)."""
        pool = list(range(low, high))
        for j in range(size):
            k = j + self.below(len(pool) - j)
            pool[j], pool[k] = pool[k], pool[j]
        return tuple(pool[:size])


def draws_per_row(task) -> int:
    """An upper bound on the uniforms one row reads: at most seq_len / 2 + 1 slots (the
    shortest is 2 tokens), each reading 3 (sizes, noise) plus key_len + value_len."""
    return (task.seq_len // 2 + 3) * (3 + task.key_len + task.value_len)


def _row(task, draw: _Stream) -> tuple[list[int], list[bool], list[int]]:
    length, kmax, vmax = task.seq_len, task.key_len, task.value_len
    w = task.vocab_size - 1 - task.noise_vocab_size
    half = w // 2
    sizes = list(range(1, kmax + 1)) if task.variable_keys else [kmax]
    seq, scored, dists = [], [], []
    value_of, last_start = {}, {}

    def add(key, value, score):
        start = len(seq)
        seq.extend(key + value)
        scored.extend([False] * len(key) + [score] * len(value))
        d = start - last_start.get(key, start)
        dists.extend([0] * len(key) + [d] * len(value))
        last_start[key] = start

    kp = draw.distinct(0, half, sizes[draw.below(len(sizes))])
    vp = draw.distinct(half, w, 1 + draw.below(vmax))
    probe_len = len(kp) + len(vp)
    probe_at = draw.below(length - 2 * probe_len)
    probe_added = False
    while len(seq) < length - probe_len - (kmax + vmax):
        ks, vs = sizes[draw.below(len(sizes))], 1 + draw.below(vmax)
        if len(seq) >= probe_at and not probe_added:
            add(kp, vp, False)  # the inserted probe is presented, not asked
            value_of[kp], probe_added = vp, True
            continue
        if task.frac_noise > 0 and draw.below(2**30) < task.frac_noise * 2**30:
            seq.extend(w + draw.below(task.noise_vocab_size) for _ in range(ks + vs))
            scored.extend([False] * (ks + vs))
            dists.extend([0] * (ks + vs))
            continue
        key = draw.distinct(0, half, ks)
        if key == kp:
            value, probe_added = vp, True
        elif key in value_of:
            value = value_of[key]
        else:
            value = draw.distinct(half, w, vs)
        add(key, value, key in last_start)
        value_of[key] = value
    # MAD scores the final probe even when the loop ended before its insertion index (its key
    # then was never presented: no reader can know it); glmix scores it as any other repeat
    unanswerable = kp not in last_start
    add(kp, vp, not unanswerable)
    return seq, scored, dists


def mad_fuzzy_rows(task, num_examples: int, rng: np.random.Generator):
    """(x [N, seq_len + 1] the strings, repeat [N, seq_len + 1] True at the scored value tokens,
    dist [N, seq_len + 1] the distance from the key's previous start to this slot's start)."""
    length, pad = task.seq_len, task.vocab_size - 1
    uniforms = rng.random((num_examples, draws_per_row(task)))
    x = np.full((num_examples, length + 1), pad, dtype=np.int64)
    repeat = np.zeros((num_examples, length + 1), dtype=bool)
    dist = np.zeros((num_examples, length + 1), dtype=np.int64)
    for r in range(num_examples):
        seq, scored, dists = _row(task, _Stream(uniforms[r].tolist()))
        x[r, length + 1 - len(seq) :] = seq
        repeat[r, length + 1 - len(seq) :] = scored
        dist[r, length + 1 - len(seq) :] = dists
    return x, repeat, dist
