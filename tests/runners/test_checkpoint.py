"""Checkpoints hold tensors only (runners/checkpoint.py): a round trip keeps every tensor, and a
file whose pickle would run code, or that is not a plain state dict, is refused in one line."""

from __future__ import annotations

import pickle

import pytest
import torch

from runners.checkpoint import load_state_dict, save_state_dict


class _RunsCode:
    """Unpickling this calls open(marker, "w"): it creates the marker file (the stand-in for
    arbitrary code in a shared checkpoint)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _one_line_value_error(path) -> str:
    with pytest.raises(ValueError) as info:
        load_state_dict(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


def test_round_trip_keeps_every_tensor(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.LayerNorm(5))
    save_state_dict(model, tmp_path / "final.ckpt")
    state = load_state_dict(tmp_path / "final.ckpt")
    assert state.keys() == model.state_dict().keys()
    for k, v in model.state_dict().items():
        assert torch.equal(state[k], v)
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic write leaves no temporary file


def test_a_pickle_that_runs_code_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "final.ckpt"
    # the control: a plain pickle load of the same bytes does run it
    payload = {"weight": torch.zeros(2), "evil": _RunsCode(tmp_path / "control")}
    pickle.loads(pickle.dumps(payload))
    assert (tmp_path / "control").exists()
    torch.save({"weight": torch.zeros(2), "evil": _RunsCode(marker)}, path)
    message = _one_line_value_error(path)
    assert "weights_only" in message
    assert not marker.exists()


@pytest.mark.parametrize("content", [
    [torch.zeros(2)],  # a list, not a mapping
    {"step": 3},  # a value that is not a tensor
    {"state_dict": {"w": torch.zeros(2)}, "epoch": 1},  # a Lightning checkpoint: not plain
    {1: torch.zeros(2)},  # a key that is not a name
])
def test_not_a_plain_state_dict_is_refused(tmp_path, content):
    torch.save(content, tmp_path / "x.ckpt")
    assert "not a plain state dict" in _one_line_value_error(tmp_path / "x.ckpt")


@pytest.mark.parametrize("data", [b"", b"not a torch file", b"\x80\x04garbage"])
def test_garbage_and_missing_files_are_one_line(tmp_path, data):
    (tmp_path / "x.ckpt").write_bytes(data)
    _one_line_value_error(tmp_path / "x.ckpt")
    _one_line_value_error(tmp_path / "missing.ckpt")
