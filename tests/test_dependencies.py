# SPDX-License-Identifier: GPL-2.0-or-later
"""The dependency installer (QGIS-free): detection, the pip commands, and a real offline install of a dummy wheel."""
from __future__ import annotations

import subprocess
import sys

import pytest

from cofusion.cofusion_qgis import dependencies
from cofusion.cofusion_qgis.dependencies import InstallError, Requirement


def test_the_shipped_requirements_are_pinned():
    names = {r.name: r.spec for r in dependencies.read_requirements()}
    assert {"torch", "safetensors", "spectral"} <= set(names)
    assert all("==" in spec for spec in names.values())


def test_torch_comes_from_the_chosen_build_index_the_rest_from_pypi(tmp_path):
    reqs = [Requirement("torch", "torch==2.13.0"), Requirement("spectral", "spectral==0.25")]
    cpu = dependencies.install_commands(reqs, tmp_path, "cpu", python="py")
    cuda = dependencies.install_commands(reqs, tmp_path, "cuda", python="py")
    assert cpu[0][-3:] == ["--index-url", dependencies.TORCH_INDEXES["cpu"], "torch==2.13.0"]
    assert cuda[0][-3:] == ["--index-url", dependencies.TORCH_INDEXES["cuda"], "torch==2.13.0"]
    assert cpu[1][-1] == "spectral==0.25" and "--index-url" not in cpu[1]
    assert all(c[:3] == ["py", "-m", "pip"] and str(tmp_path) in c for c in cpu)
    with pytest.raises(InstallError, match="rocm"):
        dependencies.install_commands(reqs, tmp_path, "rocm")


@pytest.fixture
def wheelhouse(tmp_path):
    """A folder with one wheel of a throwaway package 'cofusion-dummy-dep' (module cofusion_dummy_dep)."""
    source = tmp_path / "src"
    (source / "cofusion_dummy_dep").mkdir(parents=True)
    (source / "cofusion_dummy_dep" / "__init__.py").write_text("VALUE = 42\n")
    (source / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "cofusion-dummy-dep"\nversion = "0.1"\n')
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "-w", str(wheels), str(source)], check=True, capture_output=True)
    return wheels


def test_offline_install_into_the_plugin_folder_then_activate(wheelhouse, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    requirement = Requirement("cofusion-dummy-dep", "cofusion-dummy-dep==0.1")
    assert dependencies.missing([requirement]) == [requirement]
    target = dependencies.site_dir(tmp_path / "profile")
    lines: list[str] = []
    dependencies.install([requirement], target, find_links=wheelhouse, output=lines.append)
    assert lines[0].startswith("$ ") and "--no-index" in lines[0]
    assert dependencies.activate(target) and sys.path[0] == str(target)
    assert dependencies.missing([requirement]) == []
    import cofusion_dummy_dep

    assert cofusion_dummy_dep.VALUE == 42
    monkeypatch.delitem(sys.modules, "cofusion_dummy_dep")


def test_a_failing_pip_is_an_install_error(wheelhouse, tmp_path):
    absent = Requirement("cofusion-not-there", "cofusion-not-there==1.0")
    with pytest.raises(InstallError, match="pip failed"):
        dependencies.install([absent], tmp_path / "site", find_links=wheelhouse)
