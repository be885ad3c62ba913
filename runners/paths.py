"""Where the Hydra configs live, and the catalogue of mixers read from them.

The config folder is defined here once. In a checkout (or an editable install) it is `conf/` at
the repository root; an installed wheel ships it as `runners/conf` (pyproject.toml maps the
package `runners.conf` to `conf/`). A user's own configs go in another folder on Hydra's search
path (docs/runners.md, "Your own configs"). Nothing here imports torch or Hydra.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["CONF_DIR", "catalogue"]

_ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = next((d for d in (_ROOT / "runners" / "conf", _ROOT / "conf") if d.is_dir()),
                _ROOT / "conf")


def catalogue(conf_dir: Path | str | None = None) -> dict[str, dict]:
    """Every `<conf_dir>/mixer/*.yaml` (default: CONF_DIR) as {file stem: mapping}, in name
    order: the only list of mixers (benchmarks, tests and `python -m analysis.theory` use it)."""
    from omegaconf import OmegaConf

    folder = Path(conf_dir) if conf_dir is not None else CONF_DIR
    files = sorted((folder / "mixer").glob("*.yaml"))
    if not files:
        raise FileNotFoundError(f"no mixer configs under {folder / 'mixer'}")
    return {f.stem: OmegaConf.to_container(OmegaConf.load(f), resolve=True) for f in files}
