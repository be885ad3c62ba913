"""`pip install .` (a wheel, not editable): the configs ship inside it and `glmix-train` composes
a config from a folder outside the repository."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LIBRARY = ("tasks", "mixers", "runners", "analysis")
SKIP = shutil.ignore_patterns(".git", ".venv", "results", "multirun", "outputs", "build", "dist",
                              "*.egg-info", "__pycache__", ".pytest_cache", "bench_out", "docs",
                              "tests")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built from a copy of the checkout (the build leaves nothing in the repo)."""
    src = tmp_path_factory.mktemp("src") / "glmix"
    shutil.copytree(REPO, src, ignore=SKIP)
    out = tmp_path_factory.mktemp("wheel")
    p = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                        "-q", "-w", str(out), str(src)], capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    (whl,) = out.glob("glmix-*.whl")
    return whl


@pytest.mark.slow
def test_wheel_holds_every_package_and_config(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    configs = {f"runners/conf/{p.relative_to(REPO / 'conf')}" for p in (REPO / "conf").rglob(
        "*.yaml")}
    assert "runners/conf/config.yaml" in configs and configs <= names, configs - names
    packages = {str(p.parent.relative_to(REPO)) for top in LIBRARY
                for p in (REPO / top).rglob("__init__.py")}
    missing = {p for p in packages if f"{p}/__init__.py" not in names}
    assert not missing, f"add {sorted(missing)} to [tool.setuptools] packages in pyproject.toml"


@pytest.mark.slow
def test_installed_wheel_composes_outside_the_repo(wheel, tmp_path):
    target = tmp_path / "site"
    p = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q",
                        "--target", str(target), str(wheel)], capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    away = tmp_path / "elsewhere"
    away.mkdir()
    env = dict(os.environ, PYTHONPATH=str(target))
    env.pop("HYDRA_FULL_ERROR", None)
    script = target / "bin" / "glmix-train"
    assert script.is_file()
    probe = subprocess.run([sys.executable, "-c", "import runners, runners.paths as r; "
                            "print(runners.__file__); print(r.CONF_DIR)"], cwd=away, env=env,
                           capture_output=True, text=True, timeout=120)
    where, conf = probe.stdout.split()
    assert where.startswith(str(target)) and conf == str(target / "runners" / "conf")
    p = subprocess.run([sys.executable, str(script), "--cfg", "job", "mixer=pow2_cache",
                        "model.d_model=32"], cwd=away, env=env, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "recurrent: pow2" in p.stdout and "d_model: 32" in p.stdout
    assert not (away / "results").exists()  # --cfg job composes and prints, nothing runs
