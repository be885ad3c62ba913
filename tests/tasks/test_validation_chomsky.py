"""Bad configurations of the Chomsky-hierarchy tasks and the new groups: one ValueError line
naming the field and the bound; boundary values accepted unchanged."""

from __future__ import annotations

import pytest

from tasks import make_task

CASES = [
    # (task, params, a regex the one-line message must match: the field and its bound)
    ("bucket_sort", {"num_symbols": 10, "vocab_size": 8}, r"vocab_size=8 must be >= 11"),
    ("bucket_sort", {"num_symbols": 1}, r"num_symbols must be >= 2"),
    ("duplicate_string", {"num_symbols": 4, "vocab_size": 4}, r"vocab_size=4 must be >= 5"),
    ("binary_addition", {"length": 2}, r"length must be >= 3"),
    ("binary_addition", {"length": 10, "seq_len": 20}, r"seq_len=20 does not match .* = 21"),
    ("binary_addition", {"vocab_size": 3}, r"vocab_size=3 must be >= 4"),
    ("binary_multiplication", {"length": 10, "seq_len": 21}, r"seq_len=21 .* = 20"),
    ("binary_addition", {"length": 2**31 - 1}, r"length=2147483647 is too long: seq_len .* "
                                                r"must be <= 2147483647"),
    ("duplicate_string", {"length": 2**30}, r"length=1073741824 is too long"),
    ("even_pairs", {"length": 0}, r"length must be >= 1"),
    ("even_pairs", {"length": 2.5}, r"length must be an integer"),
    ("modular_arithmetic", {"length": 10}, r"length=10 must be odd"),
    ("modular_arithmetic", {"modulus": 1}, r"modulus must be >= 2"),
    ("modular_arithmetic", {"operators": "/"}, r"operators must be distinct characters"),
    ("modular_arithmetic", {"operators": "++"}, r"operators must be distinct characters"),
    ("modular_arithmetic", {"operators": ""}, r"operators must be distinct characters"),
    ("modular_arithmetic_brackets", {"mult": "yes"}, r"mult must be a bool"),
    ("modular_arithmetic_brackets", {"modulus": 0}, r"modulus must be >= 2"),
    ("cycle_navigation", {"cycle_length": 1}, r"cycle_length must be >= 2"),
    ("missing_duplicate", {"length": 1}, r"length must be >= 2"),
    ("stack_manipulation", {"vocab_size": 5}, r"vocab_size=5 must be >= 6"),
    ("state_tracking", {"group": "symmetric"}, r"group must be one of .*'alternating'"),
    ("state_tracking", {"group": "alternating", "degree": 3}, r"degree must be one of \[4, 5\]"),
    ("state_tracking", {"group": "alternating", "degree": 6}, r"degree must be one of \[4, 5\]"),
    ("state_tracking", {"group": "alternating_x_cyclic", "degree": 3},
     r"degree must be one of \[4, 5\]"),
    ("state_tracking", {"group": "alternating", "order": 5}, r"order applies to group=cyclic"),
    ("state_tracking", {"group": "alternating_x_cyclic", "order": 1}, r"order must be >= 2"),
    ("state_tracking", {"group": "alternating_x_cyclic", "degree": 5, "order": 2**30},
     r"order must be <= 35791394"),
    ("state_tracking", {"group": "cyclic", "degree": 4}, r"degree applies to group=permutation"),
]


@pytest.mark.parametrize(("name", "params", "message"), CASES)
def test_bad_config_names_the_field_and_the_bound(name, params, message):
    with pytest.raises(ValueError, match=message) as e:
        make_task(name, **params)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(("name", "params"), [
    ("bucket_sort", {"num_symbols": 10, "vocab_size": 11}),  # exactly the symbols and blank
    ("bucket_sort", {"num_symbols": 10, "vocab_size": 64}),  # a larger shared vocabulary
    ("binary_addition", {"length": 3, "seq_len": 7}),
    ("binary_multiplication", {"length": 3}),
    ("modular_arithmetic", {"length": 1, "operators": "*"}),
    ("missing_duplicate", {"length": 2}),
    ("stack_manipulation", {"length": 1}),
    ("cycle_navigation", {"cycle_length": 2, "vocab_size": 4}),
    ("state_tracking", {"group": "alternating", "degree": 4}),
    ("state_tracking", {"group": "alternating_x_cyclic", "degree": 5, "order": 35791394,
                        "seq_len": 4}),
])
def test_boundary_configs_are_accepted_unchanged(name, params):
    task = make_task(name, **params)
    for k, v in params.items():
        assert getattr(task, k) == v  # not clamped
    data = task.generate(16, 0)
    assert int(data.inputs.max()) < task.vocab_size


def test_defaults_fill_in_the_derived_sizes():
    task = make_task("binary_addition", length=10)
    assert (task.seq_len, task.vocab_size) == (21, 4)
    assert make_task("state_tracking", group="alternating").degree == 5
    st = make_task("state_tracking", group="alternating_x_cyclic")
    assert (st.degree, st.order, st.vocab_size) == (4, 5, 60)
