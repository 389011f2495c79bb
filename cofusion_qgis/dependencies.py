# SPDX-License-Identifier: GPL-2.0-or-later
"""Runtime dependencies inside QGIS: which are missing, and installing them with pip. No QGIS imports.

QGIS ships its own Python without PyTorch, safetensors or spectral. The plugin checks for them with
``importlib.util.find_spec`` (nothing is imported, so the check has no side effects and does not load torch)
and offers to install the versions pinned in ``requirements.txt`` with pip, run by QGIS's own interpreter, into
a per-user folder outside the plugin folder (a plugin update replaces the plugin folder and would wipe it).
That folder is put on ``sys.path`` when the plugin loads.

PyTorch comes in a CPU build and CUDA builds, served by PyTorch's own package indexes; the user chooses. Torch is
installed in a first pip run from the chosen index, the other packages in a second run from PyPI (one run with
an extra index would let pip take either build). With ``find_links`` (a folder of wheels) pip works offline.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import re
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

#: The pinned runtime requirements; shipped in the plugin zip.
REQUIREMENTS_FILE = Path(__file__).resolve().parents[1] / "requirements.txt"
#: Package indexes of the PyTorch builds the user can choose between.
TORCH_INDEXES = {
    "cpu": "https://download.pytorch.org/whl/cpu",
    "cuda": "https://download.pytorch.org/whl/cu128",
}
TORCH = "torch"


class InstallError(Exception):
    """pip failed or was stopped; the message says how and what to do."""


@dataclass(frozen=True)
class Requirement:
    """One pinned package: ``spec`` as pip takes it (``torch==2.13.0``), ``name`` the distribution name, which
    is also the module it provides (true of every runtime dependency)."""

    name: str
    spec: str

    @property
    def module(self) -> str:
        return self.name.replace("-", "_")


def read_requirements(path: str | os.PathLike = REQUIREMENTS_FILE) -> tuple[Requirement, ...]:
    """The requirements of a pip requirements file (comments and blank lines skipped)."""
    found = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        spec = line.split("#", 1)[0].strip()
        if spec:
            found.append(Requirement(re.split(r"[<>=!~ ;\[]", spec, maxsplit=1)[0], spec))
    return tuple(found)


def missing(requirements: Sequence[Requirement]) -> list[Requirement]:
    """The requirements whose module cannot be found on ``sys.path`` (nothing is imported)."""
    importlib.invalidate_caches()
    return [r for r in requirements if importlib.util.find_spec(r.module) is None]


def site_dir(base: str | os.PathLike) -> Path:
    """The folder packages are installed into under ``base`` (a per-user folder, e.g. the QGIS profile's
    parent); one per Python minor version, since compiled wheels fit only the Python they were built for."""
    return Path(base) / "cofusion" / f"python{sys.version_info.major}.{sys.version_info.minor}"


def activate(folder: str | os.PathLike) -> bool:
    """Put ``folder`` on ``sys.path`` (first, once) when it exists; returns whether it is on the path."""
    path = os.fspath(folder)
    if not os.path.isdir(path):
        return False
    if path not in sys.path:
        sys.path.insert(0, path)
        importlib.invalidate_caches()
    return True


def interpreter() -> str:
    """The Python executable of the running interpreter. An embedded Python (QGIS, qgis_process) may report the
    host program or whatever ``python3`` is first on PATH as ``sys.executable``, so outside a virtual environment
    the installation's own executable under ``sys.exec_prefix`` is preferred."""
    if sys.prefix != sys.base_prefix:
        return sys.executable
    prefix, version = Path(sys.exec_prefix), f"{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (prefix / "python.exe", prefix / "python3.exe", prefix / "bin" / f"python{version}"):
        if candidate.is_file():
            return str(candidate)
    return sys.executable


def install_commands(requirements: Sequence[Requirement], target: str | os.PathLike, variant: str = "cpu", *,
                     find_links: str | os.PathLike | None = None, python: str | None = None) -> list[list[str]]:
    """The pip commands that install ``requirements`` into ``target``: torch (if listed) from the index of
    ``variant`` ('cpu' or 'cuda', see ``TORCH_INDEXES``), then the rest from PyPI; with ``find_links`` both
    runs use only the wheels in that folder (``--no-index``)."""
    if variant not in TORCH_INDEXES:
        raise InstallError(f"PyTorch build {variant!r} is not one of {', '.join(TORCH_INDEXES)}.")
    base = [python or interpreter(), "-m", "pip", "install", "--upgrade", "--target", os.fspath(target),
            "--disable-pip-version-check", "--no-warn-script-location", "--progress-bar", "off"]
    torch = [r.spec for r in requirements if r.name == TORCH]
    others = [r.spec for r in requirements if r.name != TORCH]
    if find_links is not None:
        offline = ["--no-index", "--find-links", os.fspath(find_links)]
        return [base + offline + specs for specs in (torch, others) if specs]
    runs = [base + ["--index-url", TORCH_INDEXES[variant]] + torch] if torch else []
    return runs + ([base + others] if others else [])


def install(requirements: Sequence[Requirement], target: str | os.PathLike, variant: str = "cpu", *,
            find_links: str | os.PathLike | None = None, output: Callable[[str], None] | None = None,
            cancel: Callable[[], bool] | None = None) -> None:
    """Run ``install_commands`` one after the other, streaming pip's output lines to ``output``.

    ``cancel() -> bool`` is checked after every line and stops pip. Raises InstallError when pip fails or is
    stopped (packages already installed into ``target`` stay; a later run upgrades them).
    """
    Path(target).mkdir(parents=True, exist_ok=True)
    emit = output or (lambda _line: None)
    for command in install_commands(requirements, target, variant, find_links=find_links):
        emit("$ " + " ".join(command))
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as pip:
            for line in pip.stdout:
                emit(line.rstrip())
                if cancel is not None and cancel():
                    pip.terminate()
                    raise InstallError("The installation was stopped; run it again to finish it.")
        if pip.returncode != 0:
            raise InstallError(f"pip failed (exit code {pip.returncode}); its output above says why. Check the "
                               "network connection, or install the packages by hand into " + os.fspath(target))
