"""Fixtures of the export tests that run R: skip where R or an R package is missing, run
a script and check that it succeeded."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest


@functools.cache
def _r_loads(packages: tuple[str, ...]) -> bool:
    """``Rscript`` is installed and attaches every one of ``packages``."""
    if shutil.which("Rscript") is None:
        return False
    check = "; ".join(f"library({p})" for p in packages)
    done = subprocess.run(["Rscript", "-e", check], capture_output=True, timeout=120)
    return done.returncode == 0


@pytest.fixture(scope="session")
def require_r() -> Callable[..., None]:
    """``require_r("mice", "pan")`` skips the test unless Rscript attaches those R packages."""
    def require(*packages: str) -> None:
        if not _r_loads(packages):
            names = " and ".join([", ".join(packages[:-1]), packages[-1]] if len(packages) > 1
                                 else packages)
            pytest.skip(f"needs Rscript with the R packages {names}")
    return require


@pytest.fixture
def rscript(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``rscript(code, timeout=120)`` runs R code as a script file in ``tmp_path`` (locale
    ``C.UTF-8``), asserts that it succeeded and returns the finished process."""
    def run(code: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        path = tmp_path / "check.R"
        path.write_text(code, encoding="utf-8")
        done = subprocess.run(["Rscript", str(path)], capture_output=True, text=True,
                              timeout=timeout, env={**os.environ, "LC_ALL": "C.UTF-8"})
        assert done.returncode == 0, done.stderr
        return done
    return run
