"""Independent checkers of the Chomsky-hierarchy tasks and the order-60 groups: plain-Python
solvers that read only the input part of each row and the documented layout (docs/tasks.md,
tasks/chomsky.py: input symbols, then blanks, scored from the first blank on), derive every
answer token and its slice, and are compared with what the generator produced."""

from __future__ import annotations

import itertools

import pytest

from tasks import make_task

IGNORE = -100


def out_bucket(j: int) -> str:
    """The documented slice of output index j: `out<16`, `out16..31`, ..."""
    if j < 16:
        return "out<16"
    lo = 16
    while 2 * lo <= j:
        lo *= 2
    return f"out{lo}..{2 * lo - 1}"


def check(task, solve, blank: int, tape: int, num_examples: int = 300, seed: int = 17):
    """`solve(x)` -> the scored answer tokens of input x (a list); `tape` is the documented
    number of output slots after the input."""
    data = task.generate(num_examples, seed)
    length = task.length
    assert task.seq_len == length + tape
    assert data.inputs.shape == (num_examples, length + tape)
    assert int(data.inputs.max()) < task.vocab_size
    slices = {}
    for name, mask in data.slices.items():
        for r, c in mask.nonzero().tolist():
            assert (r, c) not in slices
            slices[(r, c)] = name
    expected_slices = {}
    for r, row in enumerate(data.inputs.tolist()):
        x = row[:length]
        assert row[length:] == [blank] * tape, "the output tape is blanks"
        assert blank not in x
        answer = solve(x)
        assert 1 <= len(answer) <= tape
        assert data.targets[r].tolist() == [IGNORE] * length + answer + \
            [IGNORE] * (tape - len(answer))
        expected_slices.update({(r, length + j): out_bucket(j) for j in range(len(answer))})
    assert slices == expected_slices


# ------------------------------------------------------------------------------------ regular


@pytest.mark.parametrize("length", [1, 2, 9, 40])
def test_even_pairs_checker(length):
    def solve(x):
        assert set(x) <= {0, 1}
        return [sum(a != b for a, b in zip(x, x[1:])) % 2]

    check(make_task("even_pairs", length=length), solve, blank=2, tape=1)


@pytest.mark.parametrize("params", [{}, {"length": 1}, {"length": 9, "modulus": 7},
                                    {"length": 21, "modulus": 11, "operators": "-*"},
                                    {"length": 5, "operators": "+"}])
def test_modular_arithmetic_checker(params):
    task = make_task("modular_arithmetic", **params)
    m, ops = task.modulus, task.operators
    symbol = {m: "+", m + 1: "-", m + 2: "*"}

    def solve(x):
        assert all(0 <= d < m for d in x[0::2])
        assert all(symbol.get(o, "?") in ops for o in x[1::2])
        text = "".join(str(t) if i % 2 == 0 else symbol[t] for i, t in enumerate(x))
        return [eval(text) % m]  # Python's precedence: * before + and -, left to right

    check(task, solve, blank=m + 3, tape=1)


@pytest.mark.parametrize("params", [{}, {"length": 3, "cycle_length": 2},
                                    {"length": 50, "cycle_length": 9}])
def test_cycle_navigation_checker(params):
    task = make_task("cycle_navigation", **params)

    def solve(x):
        return [sum({0: -1, 1: 0, 2: 1}[a] for a in x) % task.cycle_length]

    check(task, solve, blank=3, tape=1)


# ---------------------------------------------------------------------------- context-free


@pytest.mark.parametrize("params", [{}, {"length": 1}, {"length": 20, "num_symbols": 7}])
def test_reverse_string_checker(params):
    task = make_task("reverse_string", **params)
    check(task, lambda x: x[::-1], blank=task.num_symbols, tape=task.length)


@pytest.mark.parametrize("length", [1, 2, 5, 33])
def test_stack_manipulation_checker(length):
    pop, push0, push1, end = 2, 3, 4, 2

    def solve(x):
        if length == 1:
            assert x[0] in (0, 1)
        stack, i = [], 0
        while i < len(x) and x[i] in (0, 1):  # the initial stack, bottom first
            stack.append(x[i])
            i += 1
        assert 1 <= i <= max(1, length - 1)
        for a in x[i:]:
            assert a in (pop, push0, push1)
            if a == pop:
                if stack:
                    stack.pop()
            else:
                stack.append(a - push0)
        return stack[::-1] + [end]

    check(make_task("stack_manipulation", length=length), solve, blank=5, tape=length + 1)


@pytest.mark.parametrize("params", [{}, {"length": 1}, {"length": 4}, {"length": 5},
                                    {"length": 60, "modulus": 7},
                                    {"length": 25, "mult": True},
                                    {"length": 41, "modulus": 13, "mult": True}])
def test_modular_arithmetic_brackets_checker(params):
    task = make_task("modular_arithmetic_brackets", **params)
    m = task.modulus
    symbol = {m: "+", m + 1: "-", m + 2: "*", m + 3: "(", m + 4: ")"}

    def solve(x):
        assert task.mult or m + 2 not in x
        text = "".join(symbol.get(t, str(t)) for t in x)
        assert text.count("(") == text.count(")")
        return [eval(text) % m]  # fully bracketed binary operations; unary minus binds first

    check(task, solve, blank=m + 5, tape=1)


# ------------------------------------------------------------------------ context-sensitive


@pytest.mark.parametrize("params", [{}, {"length": 1}, {"length": 13, "num_symbols": 4}])
def test_duplicate_string_checker(params):
    task = make_task("duplicate_string", **params)
    check(task, lambda x: x + x, blank=task.num_symbols, tape=2 * task.length)


@pytest.mark.parametrize("params", [{}, {"length": 1}, {"length": 2}, {"length": 15},
                                    {"length": 16, "num_symbols": 3}])
def test_odds_first_checker(params):
    task = make_task("odds_first", **params)
    # 1-based odd positions first: x_1 x_3 x_5 .., then x_2 x_4 ..
    odd = lambda x: [s for i, s in enumerate(x, start=1) if i % 2 == 1]  # noqa: E731
    even = lambda x: [s for i, s in enumerate(x, start=1) if i % 2 == 0]  # noqa: E731
    check(task, lambda x: odd(x) + even(x), blank=task.num_symbols, tape=task.length)


@pytest.mark.parametrize("params", [{}, {"length": 1}, {"length": 40, "num_symbols": 2},
                                    {"length": 30, "num_symbols": 12}])
def test_bucket_sort_checker(params):
    task = make_task("bucket_sort", **params)
    check(task, sorted, blank=task.num_symbols, tape=task.length)


def binary_solver(length: int, op):
    def solve(x):
        i = x.index(2)  # the operator
        a, b = x[:i], x[i + 1:]
        assert a and b and set(a + b) <= {0, 1}
        va = int("".join(map(str, a[::-1])), 2)  # little-endian
        vb = int("".join(map(str, b[::-1])), 2)
        assert va >= 1 and vb >= 1
        result = op(va, vb)
        return [int(c) for c in bin(result)[2:][::-1]] + [2]

    return solve


@pytest.mark.parametrize("length", [3, 4, 17, 70])
def test_binary_addition_checker(length):
    task = make_task("binary_addition", length=length)
    check(task, binary_solver(length, lambda a, b: a + b), blank=3, tape=length + 1)


@pytest.mark.parametrize("length", [3, 4, 17, 70])
def test_binary_multiplication_checker(length):
    task = make_task("binary_multiplication", length=length)
    check(task, binary_solver(length, lambda a, b: a * b), blank=3, tape=length)


@pytest.mark.parametrize("length", [2, 3, 12, 31])
def test_missing_duplicate_checker(length):
    h = length // 2

    def solve(x):
        if length % 2:
            assert x[-1] == 3
        first, second = x[:h], x[h:2 * h]
        assert (first + second).count(2) == 1
        if 2 in first:
            return [second[first.index(2)]]
        return [first[second.index(2)]]

    check(make_task("missing_duplicate", length=length), solve, blank=4, tape=1)


def test_every_level_is_declared():
    levels = {name: make_task(name).level for name in (
        "even_pairs", "modular_arithmetic", "cycle_navigation", "reverse_string",
        "stack_manipulation", "modular_arithmetic_brackets", "duplicate_string", "odds_first",
        "binary_addition", "bucket_sort", "missing_duplicate", "binary_multiplication")}
    assert [n for n, v in levels.items() if v == "regular"] == \
        ["even_pairs", "modular_arithmetic", "cycle_navigation"]
    assert [n for n, v in levels.items() if v == "dcf"] == \
        ["reverse_string", "stack_manipulation", "modular_arithmetic_brackets"]
    assert sum(v == "cs" for v in levels.values()) == 6


# ------------------------------------------------------------------ groups of order 60


def sign(p: tuple) -> int:
    """+1 or -1 from the cycle decomposition: (-1)^(n - number of cycles)."""
    seen, cycles = set(), 0
    for start in range(len(p)):
        if start not in seen:
            cycles += 1
            j = start
            while j not in seen:
                seen.add(j)
                j = p[j]
    return (-1) ** (len(p) - cycles)


def alternating(degree: int):
    """The documented ids of A_d (even tuples of itertools.permutations, in its order) and the
    product of two ids, (p q)(x) = p(q(x))."""
    perms = [p for p in itertools.permutations(range(degree)) if sign(p) == 1]
    index = {p: i for i, p in enumerate(perms)}

    def mul(a, b):
        p, q = perms[a], perms[b]
        return index[tuple(p[q[x]] for x in range(degree))]

    return len(perms), mul


def group_of(task):
    if task.group == "alternating":
        return alternating(task.degree)
    if task.group == "cyclic":
        return task.order, lambda a, b: (a + b) % task.order
    size, mul_a = alternating(task.degree)
    m = task.order

    def mul(a, b):  # id = (A_d id) * m + (Z_m element)
        return mul_a(a // m, b // m) * m + (a % m + b % m) % m

    return size * m, mul


@pytest.mark.parametrize("params", [
    {"group": "alternating", "degree": 5, "seq_len": 70},
    {"group": "alternating", "degree": 4, "seq_len": 33, "score": "last"},
    {"group": "alternating_x_cyclic", "degree": 4, "order": 5, "seq_len": 40},
    {"group": "alternating_x_cyclic", "degree": 5, "order": 3, "seq_len": 20},
    {"group": "cyclic", "order": 60, "seq_len": 40},
])
def test_order_60_groups_checker(params):
    task = make_task("state_tracking", **params)
    size, mul = group_of(task)
    assert task.vocab_size == size
    data = task.generate(200, 5)
    for row, target in zip(data.inputs.tolist(), data.targets.tolist()):
        state, products = 0, []  # id 0 is the identity of every group here
        for g in row:
            assert 0 <= g < size
            state = mul(state, g)
            products.append(state)
        if task.score == "all":
            assert target == products
        else:
            assert target == [IGNORE] * (len(row) - 1) + products[-1:]


def derived_series(size: int, mul) -> list[int]:
    """The orders of G, [G, G], [[G, G], [G, G]], ... until it stops shrinking."""
    inverse = {a: next(b for b in range(size) if mul(a, b) == 0) for a in range(size)}
    group, orders = set(range(size)), [size]
    while True:
        gens = {mul(mul(a, b), mul(inverse[a], inverse[b])) for a in group for b in group}
        sub = set(gens) | {0}
        while True:  # close under products
            more = {mul(a, b) for a in sub for b in sub} - sub
            if not more:
                break
            sub |= more
        if len(sub) == len(group):
            return orders
        group = sub
        orders.append(len(sub))


def test_order_60_groups_separate_abelian_solvable_and_not():
    a5 = group_of(make_task("state_tracking", group="alternating", degree=5))
    a4z5 = group_of(make_task("state_tracking", group="alternating_x_cyclic", degree=4, order=5))
    z60 = group_of(make_task("state_tracking", group="cyclic", order=60))
    assert a5[0] == a4z5[0] == z60[0] == 60
    assert derived_series(*a5) == [60]  # perfect: never reaches 1, not solvable
    assert derived_series(*a4z5) == [60, 4, 1]  # solvable, and not abelian ([G, G] != 1)
    assert derived_series(*z60) == [60, 1]  # abelian


def test_bracket_expressions_split_uniformly():
    # the reference's law: an inner node of size a splits its left part uniformly in 1 .. a - 4,
    # and draws its operator uniformly; read both off the root of length-9 expressions
    task = make_task("modular_arithmetic_brackets", length=9, mult=True)
    m = task.modulus
    counts, ops = [0] * 6, {m: 0, m + 1: 0, m + 2: 0}
    for row in task.generate(6000, 3).inputs.tolist():
        x = row[:9]
        assert x[0] == m + 3 and x[-1] == m + 4
        if x[1] == m + 3:  # a bracketed left part: up to its closing bracket
            depth, i = 0, 1
            while True:
                depth += {m + 3: 1, m + 4: -1}.get(x[i], 0)
                if depth == 0:
                    break
                i += 1
            left = i
        else:
            left = 2 if x[1] == m + 1 else 1
        counts[left] += 1
        ops[x[1 + left]] += 1
    assert counts[0] == 0 and all(abs(c / 6000 - 1 / 5) < 0.03 for c in counts[1:]), counts
    assert all(abs(c / 6000 - 1 / 3) < 0.03 for c in ops.values()), ops
