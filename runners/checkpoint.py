"""Checkpoints hold tensors only: a plain state dict {name: Tensor} written with `torch.save` and
read with `torch.load(weights_only=True)`, so loading a checkpoint from a shared results folder
never runs code from its pickle (docs/design.md, "Untrusted inputs").

Anything else in the file (a pickled object, a Lightning checkpoint's trainer state, a value that
is not a tensor) is refused with one ValueError line naming the file.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path

import torch

__all__ = ["save_state_dict", "load_state_dict"]


def save_state_dict(model: torch.nn.Module, path: Path) -> None:
    """Write `model.state_dict()` (detached CPU tensors, nothing else) to `path` atomically:
    a killed run leaves either the whole file or none."""
    path = Path(path)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        umask = os.umask(0o022)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # readable like result.json, not mkstemp's private 0600
        with os.fdopen(fd, "wb") as fh:
            torch.save(state, fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The state dict saved at `path`, on the CPU. ValueError (one line) when the file is
    missing, is not a torch file, holds any pickled object beyond plain containers and tensors
    (torch's weights_only unpickler refuses it before anything runs) or is not {str: Tensor}."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ValueError(f"checkpoint {path}: no such file") from None
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, TypeError,
            AttributeError, ImportError, IndexError, KeyError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ValueError(f"checkpoint {path}: not a plain state dict of tensors (loading it with "
                         f"weights_only=True refused it: {first[:200]})") from None
    if not isinstance(state, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise ValueError(f"checkpoint {path}: not a plain state dict (expected a mapping of "
                         f"parameter names to tensors, got {type(state).__name__})")
    return state
