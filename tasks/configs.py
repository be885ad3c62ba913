"""Writing generated task configs (`conf/task/<folder>/*.yaml`): the protocols that own a folder
of configs (tasks/lengthgen.py, tasks/mad.py) write it with `write_configs`, and their tests
check that the committed files are what they write."""

from __future__ import annotations

import sys
from pathlib import Path


def write_configs(folder: str, texts: dict[str, str], argv: list[str] | None = None) -> int:
    """Write `texts` (file name -> YAML text) into conf/task/<folder>, or into the folder given
    as the first command-line argument; print each path written."""
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0]) if args else Path(__file__).resolve().parents[1] / "conf" / "task" / folder
    out.mkdir(parents=True, exist_ok=True)
    for name, text in texts.items():
        (out / name).write_text(text)
        print(out / name)
    return 0
