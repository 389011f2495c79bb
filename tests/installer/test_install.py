# SPDX-License-Identifier: GPL-2.0-or-later
"""Real pip runs of the installer (QGIS-free, offline): from a folder of fake wheels and from a simple index on
127.0.0.1. A package QGIS's Python has (numpy, scipy) is never installed, not even when asked for or declared as a
dependency; what the wheels declare and QGIS lacks is; a copy left by an older installer is removed; pip's failures
are one readable line; Stop stops pip at once."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy
import pytest

from cofusion.cofusion_qgis import dependencies
from cofusion.cofusion_qgis.dependencies import Canceled, InstallError, Requirement

SCRIPT = Path(dependencies.__file__).resolve()
pytestmark = pytest.mark.slow


def events(stdout: str) -> list[dict]:
    return [json.loads(line[len(dependencies.EVENT):]) for line in stdout.splitlines()
            if line.startswith(dependencies.EVENT)]


def installed(target: Path) -> set[str]:
    return set(dependencies.distributions([str(target)]))


def test_the_script_installs_from_a_wheel_folder_never_numpy_or_scipy(wheelhouse, tmp_path, pip_env):
    target = dependencies.site_dir(tmp_path / "profile")
    done = subprocess.run([sys.executable, str(SCRIPT), "install", "--target", str(target), "--find-links",
                           str(wheelhouse), "--package", "cofusion-dummy-dep==0.1", "--package", "numpy==99.0"],
                          capture_output=True, text=True, env=pip_env, timeout=300)
    said = events(done.stdout)
    assert done.returncode == 0, done.stdout + done.stderr
    plan = dependencies.Plan.from_json(next(e["plan"] for e in said if e["event"] == "plan"))
    assert [p.name for p in plan.packages] == ["cofusion-dummy-dep", "cofusion-dummy-extra"]
    assert {(n.lower(), why) for n, _, why in plan.kept} >= {("numpy", "requested"),
                                                             ("numpy", "needed by cofusion-dummy-dep"),
                                                             ("scipy", "needed by cofusion-dummy-dep")}
    assert any("numpy" in note and "kept" in note for note in plan.notes)  # QGIS's numpy is older than >=99
    assert not plan.approximate and plan.size == sum((wheelhouse / p.file).stat().st_size for p in plan.packages)
    assert installed(target) == {"cofusion-dummy-dep", "cofusion-dummy-extra"}
    assert not (target / "numpy").exists() and not (target / "scipy").exists()
    command = next(line for line in done.stdout.splitlines() if line.startswith("$ "))
    assert "--no-deps" in command and "--no-index" in command and "numpy" not in command.split("--find-links")[1]
    constraints = dependencies.constraints_path(target).read_text().splitlines()
    assert f"numpy=={numpy.__version__}" in constraints
    assert any(e["event"] == "step" and e["text"].startswith("Installed cofusion-dummy-dep 0.1") for e in said)
    finished = said[-1]
    assert finished["event"] == "done" and finished["ok"]
    assert finished["result"]["cofusion_dummy_dep"]["file"].startswith(str(target))
    assert finished["result"]["numpy"]["file"] == numpy.__file__  # QGIS's numpy, not a copy


def test_a_copy_of_numpy_left_by_an_older_installer_is_removed_first(wheelhouse, tmp_path, isolated_pip):
    target = tmp_path / "site"
    old = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), "--no-index",
           "--find-links", str(wheelhouse), "numpy==99.0", "cofusion-dummy-extra"]
    subprocess.run(old, check=True, capture_output=True, env=isolated_pip)  # what the old installer did
    assert installed(target) == {"numpy", "cofusion-dummy-extra"}
    removed = dependencies.prune(target)
    assert removed == [("numpy", "99.0", numpy.__version__)]
    assert installed(target) == {"cofusion-dummy-extra"} and not (target / "numpy").exists()
    assert (target / "cofusion_dummy_extra" / "__init__.py").is_file()


def test_dependencies_the_index_does_not_declare_are_installed_after_reading_the_installed_metadata(
        wheelhouse, tmp_path, serve, isolated_pip):
    index = serve(wheelhouse)  # no PEP 658 metadata: the plan cannot see the dependencies
    target = tmp_path / "site"
    steps: list[str] = []
    plan = dependencies.install([Requirement("cofusion-dummy-dep", "cofusion-dummy-dep==0.1")], target,
                                index=index, event=lambda e: steps.append(e.get("text", "")))
    assert [p.name for p in plan.packages] == ["cofusion-dummy-dep"]
    assert plan.packages[0].size == (wheelhouse / "cofusion_dummy_dep-0.1-py3-none-any.whl").stat().st_size  # HEAD
    assert installed(target) == {"cofusion-dummy-dep", "cofusion-dummy-extra"}  # the second round
    assert any(s.startswith("Downloading cofusion-dummy-extra 0.2") for s in steps)


def test_the_plan_reads_pep_658_metadata_from_the_index(wheelhouse, tmp_path, serve):
    index = serve(wheelhouse, metadata=True)
    plan = dependencies.make_plan([Requirement("cofusion-dummy-dep", "cofusion-dummy-dep")], tmp_path / "site",
                                  index=index)
    assert [(p.name, p.version, p.needed_by) for p in plan.packages] == [
        ("cofusion-dummy-dep", "0.1", ""), ("cofusion-dummy-extra", "0.2", "cofusion-dummy-dep")]
    assert all(p.url.startswith(index.rsplit("/", 1)[0]) and p.size for p in plan.packages)


def test_a_package_the_index_lacks_fails_with_one_readable_line(wheelhouse, tmp_path, isolated_pip):
    with pytest.raises(InstallError) as failure:
        dependencies.install([Requirement("cofusion-not-there", "cofusion-not-there==1.0")], tmp_path / "site",
                             find_links=wheelhouse)
    message = str(failure.value)
    assert message.startswith("No file of cofusion-not-there==1.0 fits this Python (") and "\n" not in message


def test_stop_ends_pip_while_it_waits_for_the_network(tmp_path, silent_index, isolated_pip):
    flag = threading.Event()
    threading.Timer(1.5, flag.set).start()
    start = time.monotonic()
    with pytest.raises(Canceled, match="stopped"):
        dependencies.install([Requirement("cofusion-dummy-dep", "cofusion-dummy-dep==0.1")], tmp_path / "site",
                             index=silent_index, cancel=flag.is_set,
                             plan=dependencies.Plan([dependencies.Package("cofusion-dummy-dep", "cofusion-dummy-dep",
                                                                          silent_index)]))
    assert time.monotonic() - start < 10


def test_the_script_stops_when_its_stdin_closes(tmp_path, silent_index, pip_env):
    script = subprocess.Popen([sys.executable, str(SCRIPT), "install", "--target", str(tmp_path / "site"),
                               "--index", silent_index, "--package", "cofusion-dummy-dep", "--offline-plan",
                               "--watch-stdin"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              env=pip_env)
    time.sleep(3)
    script.stdin.close()  # the dialog's Stop
    script.wait(timeout=20)
    out = script.stdout.read()
    assert script.returncode == 130 and events(out)[-1]["event"] == "canceled"


def test_the_check_imports_in_a_new_process_and_names_failures(tmp_path):
    result = dependencies.check(tmp_path, [Requirement("numpy", "numpy"), Requirement("cofusion-nope", "x")])
    assert result["numpy"]["ok"] and result["numpy"]["file"] == numpy.__file__
    assert not result["cofusion_nope"]["ok"] and "No module named" in result["cofusion_nope"]["error"]
    failed, text = dependencies.summary(result, [Requirement("cofusion-nope", "x", label="Nope")])
    assert [r.name for r in failed] == ["cofusion-nope"] and text.startswith("Nope: ModuleNotFoundError")
