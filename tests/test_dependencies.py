# SPDX-License-Identifier: GPL-2.0-or-later
"""The dependency installer (QGIS-free): what is checked, sys.path order, constraints, the plan's rules, the pip
commands, pip's lines in plain words. Installs with pip are in tests/installer."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import numpy
import pytest

from cofusion.cofusion_qgis import dependencies
from cofusion.cofusion_qgis.dependencies import InstallError, Package, Requirement

REPO = Path(__file__).resolve().parents[1]
#: Provided by QGIS itself (PyQGIS, its Processing framework); never pip packages.
QGIS_ITSELF = {"qgis", "processing"}


def test_the_shipped_requirements_are_pinned():
    names = {r.name: r.spec for r in dependencies.read_requirements()}
    assert {"torch", "safetensors", "spectral"} <= set(names)
    assert all("==" in spec for spec in names.values())


def third_party_imports() -> set[str]:
    """Top-level modules imported anywhere in the code QGIS runs that are neither standard library nor ours."""
    found = set()
    files = [p for folder in ("core", "training", "cofusion_qgis") for p in (REPO / folder).rglob("*.py")]
    for path in files + [REPO / "cli.py", REPO / "__init__.py", REPO / "__main__.py"]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return {m for m in found if m not in sys.stdlib_module_names and m != "cofusion"}


#: Imported only by the batch fusion (core/batch.py), for servers, from requirements-batch.txt; never installed into
#: QGIS's Python by the installer, and the rest of the code imports without them (tests/test_batch.py checks).
BATCH_ONLY = {"dask", "distributed"}


def test_every_runtime_import_is_checked_by_its_import_name():
    modules = {r.module: r for r in dependencies.runtime()}
    imported = third_party_imports()
    assert {"torch", "safetensors", "spectral", "pywt", "scipy", "numpy", "osgeo", "pyqtgraph"} <= imported
    assert imported - QGIS_ITSELF - BATCH_ONLY <= set(modules), "a runtime import the installer does not check"
    batch = (REPO / "requirements-batch.txt").read_text()
    assert all(name in batch for name in BATCH_ONLY)
    assert modules["pywt"].name == "PyWavelets" and modules["osgeo"].name == "GDAL"
    assert not modules["numpy"].installable and not modules["osgeo"].installable  # QGIS is built on them
    assert dependencies.check_modules()[:3] == ["torch", "safetensors", "safetensors.torch"]
    assert "osgeo.gdal_array" in dependencies.check_modules()


def test_missing_finds_absent_import_names_without_importing(monkeypatch):
    monkeypatch.delitem(sys.modules, "pywt", raising=False)
    absent = dependencies.missing([Requirement("PyWavelets", "PyWavelets"), Requirement("cofusion-nope", "x")])
    assert [r.name for r in absent] == ["cofusion-nope"] and "pywt" not in sys.modules


def test_activate_appends_the_folder_after_qgis_paths(tmp_path, monkeypatch):
    folder = tmp_path / "site"
    monkeypatch.setattr(sys, "path", ["/qgis/python", "/usr/lib/python3/dist-packages"])
    assert not dependencies.activate(folder)  # not there yet
    folder.mkdir()
    assert dependencies.activate(folder) and sys.path == ["/qgis/python", "/usr/lib/python3/dist-packages",
                                                          str(folder)]
    assert dependencies.activate(folder) and sys.path.count(str(folder)) == 1
    monkeypatch.setattr(sys, "path", [str(folder), "/usr/lib/python3/dist-packages"])  # an older plugin put it first
    dependencies.activate(folder)
    assert sys.path == ["/usr/lib/python3/dist-packages", str(folder)]


def test_the_constraints_file_pins_the_interpreters_numpy_and_scipy(tmp_path):
    import scipy

    text = dependencies.constraints(dependencies.qgis_paths([tmp_path]))
    lines = text.splitlines()
    assert f"numpy=={numpy.__version__}" in lines and f"scipy=={scipy.__version__}" in lines
    assert all(line.count("==") == 1 and " " not in line for line in lines)


def test_qgis_paths_leave_out_the_site_folder(tmp_path):
    site = tmp_path / "cofusion" / "python3.11"
    paths = dependencies.qgis_paths([site], ["/usr/lib/python3/dist-packages", str(site), str(site / "sub")])
    assert paths == ["/usr/lib/python3/dist-packages"]


def test_a_requested_numpy_is_never_planned(tmp_path):
    plan = dependencies.make_plan([Requirement("numpy", "numpy==2.4.6"), Requirement("scipy", "scipy>=99"),
                                   Requirement("PyWavelets", "PyWavelets")], tmp_path / "site", query=False)
    assert plan.packages == []
    assert {name.lower() for name, _, _ in plan.kept} == {"numpy", "scipy", "pywavelets"}
    assert plan.describe() == "Nothing to download."


def test_torchs_dependencies_qgis_has_are_kept_the_others_planned_without_the_network(tmp_path):
    # QGIS's Python: this venv's base in make test; outside a venv (the chroots of make test-qgis340/344) sys.path
    system = [p for p in sys.path if sys.prefix == sys.base_prefix or not p.startswith(sys.prefix)]
    if "torch" in dependencies.distributions(system):
        pytest.skip("this Python has torch of its own (Debian's python3-torch): there is no torch to plan")
    plan = dependencies.make_plan([Requirement("torch", "torch==2.13.0"), Requirement("spectral", "spectral==0.25")],
                                  tmp_path / "site", query=False, paths=system)
    planned = {dependencies.normalize(p.name): p for p in plan.packages}
    assert {"torch", "spectral"} <= set(planned)
    have = dependencies.distributions(system)
    for dep in ("filelock", "typing-extensions", "sympy", "networkx", "jinja2", "fsspec", "setuptools"):
        assert (dep in planned) != (dep in have), dep  # planned exactly when this Python lacks it
    assert "numpy" not in planned and planned["torch"].needed_by == "" and planned["torch"].approximate
    assert planned["torch"].index == dependencies.TORCH_INDEXES["cpu"]
    assert plan.describe().startswith("Download: about ")


def test_pip_commands_install_exactly_the_list_constrained_with_torch_from_its_index(tmp_path):
    packages = [Package("torch", "torch==2.13.0", dependencies.TORCH_INDEXES["cuda"], version="2.13.0"),
                Package("spectral", "spectral==0.25", dependencies.PYPI),
                Package("filelock", "filelock", dependencies.PYPI, "torch", version="4.3.1")]
    runs = dependencies.pip_commands(packages, tmp_path, constraints_file="c.txt", python="py")
    assert len(runs) == 2
    for run in runs:
        assert run[:4] == ["py", "-m", "pip", "install"] and "--no-deps" in run and str(tmp_path) in run
        assert run[run.index("--constraint") + 1] == "c.txt"
    assert runs[0][-3:] == ["--index-url", dependencies.TORCH_INDEXES["cuda"], "torch==2.13.0"]
    assert runs[1][-4:] == ["--index-url", dependencies.PYPI, "spectral==0.25", "filelock==4.3.1"]
    offline = dependencies.pip_commands(packages, tmp_path, find_links="/w", python="py")
    assert len(offline) == 1 and offline[0][-6:-3] == ["--no-index", "--find-links", "/w"]
    with pytest.raises(InstallError, match="rocm"):
        dependencies.make_plan([], tmp_path, "rocm")


@pytest.mark.parametrize(("line", "kind", "words"), [
    ("Collecting torch==2.13.0", "step", "Looking up torch 2.13.0…"),
    ("  Downloading https://download.pytorch.org/whl/cpu/torch-2.13.0%2Bcpu-cp311-cp311-manylinux_2_28_x86_64.whl "
     "(191.8 MB)", "step", "Downloading torch 2.13.0+cpu (191.8 MB)…"),
    ("  Downloading networkx-3.6.1-py3-none-any.whl (2.1 MB)", "step", "Downloading networkx 3.6.1 (2.1 MB)…"),
    ("Processing ./wheels/spectral-0.25-py3-none-any.whl", "step", "Using the local file of spectral 0.25…"),
    ("Installing collected packages: torch, sympy", "step",
     "Installing torch, sympy (this can take a few minutes)…"),
    ("Successfully installed sympy-1.14.0 torch-2.13.0+cpu", "step", "Installed sympy 1.14.0, torch 2.13.0+cpu."),
    ("ERROR: Could not install packages due to an OSError: [Errno 28] No space left on device", "error",
     "Not enough disk space for the packages: free some space and install again."),
    ("ERROR: THESE PACKAGES DO NOT MATCH THE HASHES FROM THE REQUIREMENTS FILE.", "error",
     "A download was damaged on the way: install again."),
])
def test_pips_lines_in_plain_words(line, kind, words):
    assert dependencies.describe(line) == (kind, words)


def test_pips_errors_and_retries_are_one_readable_line():
    kind, text = dependencies.describe("ERROR: Could not find a version that satisfies the requirement "
                                       "torch==2.13.0 (from versions: none)")
    assert kind == "error" and text.startswith("No file of torch==2.13.0 fits this Python (") and "\n" not in text
    kind, text = dependencies.describe(
        "WARNING: Retrying (Retry(total=4, connect=None, read=None, redirect=None, status=None)) after connection "
        "broken by 'NewConnectionError('<pip._vendor.urllib3.connection.HTTPSConnection object at 0x7f>: Failed to "
        "establish a new connection: [Errno -3] Temporary failure in name resolution')': /whl/cpu/torch/")
    assert (kind, text) == ("retry", "Retrying: the package index cannot be reached (/whl/cpu/torch/)…")
    assert dependencies.describe("Looking in indexes: https://pypi.org/simple") is None
    assert dependencies.describe("  Requirement already satisfied: x") is None


def test_sizes_read_as_the_user_reads_them():
    assert [dependencies.format_size(s) for s in (191_794_682, 3.4e9, 516_040, 2_068_504, 999)] == \
        ["192 MB", "3.4 GB", "516 kB", "2.1 MB", "999 B"]
    plan = dependencies.Plan([Package("torch", "torch", size=191_794_682),
                              Package("sympy", "sympy", size=6_300_000, approximate=True)])
    assert plan.describe() == "Download: about 198 MB (torch 192 MB, sympy about 6.3 MB)."
    assert dependencies.Plan.from_json(plan.to_json()).packages == plan.packages


def test_choose_picks_the_newest_fitting_wheel_for_this_python():
    files = [dependencies.IndexFile(f, f"https://x/{f}") for f in (
        "torch-2.13.0-cp311-cp311-win_amd64.whl", "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl",
        "torch-2.12.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl", "torch-2.14.0rc1-py3-none-any.whl",
        "torch-2.13.0-cp310-cp310-manylinux_2_28_x86_64.whl", "torch-2.13.0.tar.gz")]
    if not (sys.platform.startswith("linux") and sys.version_info[:2] == (3, 11)):
        pytest.skip("the file names are Linux CPython 3.11 wheels")
    chosen, version = dependencies.choose(files, "torch==2.13.0")
    assert chosen.filename == "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl" and version == "2.13.0+cpu"
    assert dependencies.choose(files, "torch>=2.12")[1] == "2.13.0+cpu"  # no pre-release unless asked
    assert dependencies.choose(files, "torch==2.11") is None


def test_requires_evaluates_markers_and_leaves_out_extras():
    metadata = ("Metadata-Version: 2.1\nName: x\nVersion: 1\nRequires-Dist: filelock\n"
                "Requires-Dist: nvidia-cudnn-cu12==9.1; platform_system == 'Nowhere'\n"
                "Requires-Dist: sympy>=1.13.3; python_version >= '3.9'\n"
                "Requires-Dist: optree>=0.13; extra == 'optree'\n")
    assert dependencies.requires(metadata) == ["filelock", "sympy>=1.13.3"]


@pytest.mark.parametrize("with_packaging", [True, False])
def test_requirements_keep_the_pins_whose_marker_holds_here(tmp_path, monkeypatch, with_packaging):
    # requirements.txt pins torch 2.8 for QGIS's Python 3.9 on Windows and 2.13 elsewhere
    if not with_packaging:
        monkeypatch.setattr(dependencies, "_packaging", lambda: None)
    path = tmp_path / "requirements.txt"
    path.write_text('torch==9.9.9; python_version < "3.0"  # never here\ntorch==2.13.0; python_version >= "3.0"\n'
                    "spectral==0.25\n")
    assert [r.spec for r in dependencies.read_requirements(path)] == ["torch==2.13.0", "spectral==0.25"]
    shipped = {r.name: r.spec for r in dependencies.read_requirements()}
    assert shipped["torch"] == ("torch==2.13.0" if sys.version_info >= (3, 10) else "torch==2.8.0")
