# SPDX-License-Identifier: GPL-2.0-or-later
"""The installer driven in real QGIS processes of QGIS's own Python (/usr/bin/python3, no PyTorch there), offline.

1. The installer's script installs fake wheels named like a missing dependency (spectral) and like QGIS's own
   packages (numpy, scipy: never installed) into a throw-away profile's site folder with its real pip command
   (--no-deps --no-index --find-links); then a *new* QGIS process loads the plugin as QGIS does (the plugin's
   sys.path set-up): GDAL's numpy bindings, numpy and SciPy import from QGIS's paths, not the site folder, and the
   panel opens offscreen without PyTorch, naming what is missing, with a button that opens the installer.
2. The dialog through every stage, in a new QGIS process: closed while it plans, stopped (Close) and stopped
   (Esc) while pip waits on an index that never answers, failing (a package the folder lacks), succeeding; no
   Python error on the way, and after the success the message bar warning and the panel's notice are gone.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from cofusion.cofusion_qgis import dependencies

from .conftest import make_wheel

REPO = Path(__file__).resolve().parents[2]
SCRIPT = Path(dependencies.__file__).resolve()
QGIS_PYTHON = "/usr/bin/python3"
pytestmark = [pytest.mark.qgis, pytest.mark.slow]


def qgis_python_unfit() -> str:
    """Why QGIS's Python cannot stand for a QGIS without the dependencies ('' where it can)."""
    if not os.access(QGIS_PYTHON, os.X_OK):
        return f"{QGIS_PYTHON} is absent"
    if subprocess.run([QGIS_PYTHON, "-c", "import qgis.core, pip"], capture_output=True).returncode != 0:
        return f"{QGIS_PYTHON} has no PyQGIS or no pip"
    done = subprocess.run([QGIS_PYTHON, "-c", "import importlib.util as u; print(*(m for m in ('torch', 'safetensors', "
                           "'spectral') if u.find_spec(m)))"], capture_output=True, text=True)
    if done.stdout.split():
        return (f"{QGIS_PYTHON} has {', '.join(done.stdout.split())} of its own (Debian's packages, as in make "
                "test-qgis340): these tests install them into a QGIS Python that lacks them")
    return ""


UNFIT = qgis_python_unfit()
if UNFIT:
    pytest.skip(UNFIT, allow_module_level=True)

IFACE = r"""
import json, os, sys, time
from qgis.core import QgsApplication
errors = []
sys.excepthook = lambda kind, value, tb: errors.append(f"{kind.__name__}: {value}")  # slots' errors
app = QgsApplication([], True, PROFILE)
app.initQgis()

from fake_iface import Iface

def wait(condition, seconds=60):
    end = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > end:
            raise SystemExit("timed out waiting")
        app.processEvents()
        time.sleep(0.02)
"""


@pytest.fixture
def qgis_env(tmp_path) -> dict:
    """A QGIS process's environment: offscreen, its own home (QgsSettings), no pip configuration of this machine,
    and a plugins folder holding this checkout as the plugin ``cofusion`` (nothing of the venv: no torch)."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "cofusion").symlink_to(REPO, target_is_directory=True)
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(QT_QPA_PLATFORM="offscreen", HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"),
               XDG_RUNTIME_DIR=str(home), PIP_CONFIG_FILE=os.devnull, PIP_NO_CACHE_DIR="1",
               COFUSION_PLUGINS=str(plugins))
    env.pop(dependencies.QGIS_PATH_VARIABLE, None)
    return env


def run_qgis(code: str, env: dict, profile: Path, timeout: int = 300) -> dict:
    """Run ``code`` (after IFACE) in a new process of QGIS's Python; its 'RESULT {json}' line."""
    prelude = (f"PROFILE = {str(profile)!r}\nimport sys\nsys.path.insert(0, {env['COFUSION_PLUGINS']!r})\n"
               f"sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})\n")  # tests/: fake_iface
    done = subprocess.run([QGIS_PYTHON, "-c", prelude + IFACE + code], capture_output=True, text=True, env=env,
                          timeout=timeout, cwd=str(profile.parent))
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT "):])


PANEL = r"""
import cofusion
from cofusion.cofusion_qgis import dependencies
iface = Iface()
plugin = cofusion.classFactory(iface)  # the plugin's sys.path set-up, as QGIS loads it
site = str(dependencies.site_dir(QgsApplication.qgisSettingsDirPath()))
out = {"site": site, "site_last": sys.path[-1] == site}
import importlib.util, numpy, scipy, scipy.ndimage, osgeo.gdal_array, spectral
out["files"] = {m.__name__: m.__file__ for m in (numpy, scipy, scipy.ndimage, osgeo.gdal_array, spectral)}
out["fake_numpy"] = hasattr(numpy, "FAKE")
out["torch"] = importlib.util.find_spec("torch") is not None
plugin.initGui()
out["message"] = iface.bar.currentItem().text()
plugin.dock_action.setChecked(True)
dock = plugin.dock
out["dock"] = dock.objectName() if dock is not None else None
out["notice_shown"] = not dock.notice.isHidden()
out["notice"] = dock.notice_text.text()
out["spectra"] = type(dock.spectra).__name__
dock.install_button.click()
dialog = plugin.installer
dialog.wheels.setFilePath(WHEELS)  # plan offline
out["dialog_visible"] = dialog.isVisible()
wait(lambda: dialog.plan is not None and dialog.process is None)
out["size"] = dialog.size.text()
out["command"] = dialog.command.toPlainText()
out["state"] = dialog.state.text()
dialog.reject()
out["dialog_closed"] = not dialog.isVisible()
plugin.unload()
out["errors"] = errors
print("RESULT " + json.dumps(out))
"""


def test_install_into_a_profile_then_a_new_qgis_process_keeps_qgis_numpy_gdal_scipy_and_opens_the_panel(
        tmp_path, wheelhouse, qgis_env):
    profile = tmp_path / "profile"
    site = dependencies.site_dir(profile)
    done = subprocess.run([QGIS_PYTHON, str(SCRIPT), "install", "--target", str(site), "--find-links",
                           str(wheelhouse), "--package", "spectral==0.25", "--package", "numpy==99.0",
                           "--package", "scipy==99.0", "--package", "cofusion-dummy-dep==0.1"],
                          capture_output=True, text=True, env=qgis_env, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    command = next(line for line in done.stdout.splitlines() if line.startswith("$ "))
    assert command.startswith(f"$ {QGIS_PYTHON}") and " -m pip install --no-deps " in command
    assert set(dependencies.distributions([str(site)])) == {"spectral", "cofusion-dummy-dep", "cofusion-dummy-extra"}

    out = run_qgis(f"WHEELS = {str(wheelhouse)!r}\n" + PANEL, qgis_env, profile)
    assert out["site"] == str(site) and out["site_last"]
    for module in ("numpy", "scipy", "scipy.ndimage", "osgeo.gdal_array"):
        assert not out["files"][module].startswith(str(site)), (module, out["files"][module])
    assert out["files"]["spectral"].startswith(str(site)) and not out["fake_numpy"] and not out["torch"]
    assert "torch" in out["message"]
    assert out["dock"] == "CoFusionDock" and out["spectra"] == "SpectraPanel"
    assert out["notice_shown"] and "PyTorch – for fusion" in out["notice"] and "spectral" not in out["notice"]
    assert out["dialog_visible"] and out["dialog_closed"]
    assert out["size"].startswith("Download: about ") and "torch about 192 MB" in out["size"]  # not in the folder
    assert f"The folder {wheelhouse} has no torch==2.13.0 for Python" in out["size"]
    assert out["command"].startswith(QGIS_PYTHON) and "--no-deps" in out["command"]
    assert "torch==2.13.0" in out["command"]
    assert "✗ Missing: PyTorch, safetensors (will be installed)." in out["state"]
    assert "✓ Found: spectral (SPy), NumPy" in out["state"]
    assert out["errors"] == []


STAGES = r"""
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtTest import QTest
import cofusion
from cofusion.cofusion_qgis import dependencies
iface = Iface()
plugin = cofusion.classFactory(iface)
plugin.initGui()
plugin.dock_action.setChecked(True)
out = {"message_before": iface.bar.currentItem() is not None, "notice_before": not plugin.dock.notice.isHidden()}
plugin.show_installer()
dialog = plugin.installer
installed = []
dialog.installed.connect(lambda: installed.append(True))

def configure(index, wheels=""):
    dialog.torch_index.setText(index)
    dialog.index.setText(index)
    dialog.wheels.setFilePath(wheels)

# closed while planning
configure(SILENT)
dialog.replan.stop()
dialog.start_plan()
out["planning"] = dialog.mode
dialog.reject()
out["after_plan_close"] = [dialog.process is None, dialog.isVisible()]

# stopped with Close while pip (here: the plan of the install) waits on an index that never answers
plugin.show_installer()
configure(SILENT)
dialog.install_button.click()
out["installing"] = [dialog.mode, dialog.stop_button.isEnabled(), dialog.install_button.isEnabled()]
time.sleep(1.5)
dialog.reject()
wait(lambda: dialog.process is None, 30)
out["closed_while_installing"] = [dialog.outcome["event"], dialog.status.text(), dialog.isVisible()]

# stopped with Esc
plugin.show_installer()
configure(SILENT)
dialog.install_button.click()
time.sleep(1.0)
QTest.keyClick(dialog, Qt.Key_Escape)
wait(lambda: dialog.process is None, 30)
out["escaped"] = [dialog.outcome["event"], dialog.isVisible()]

# fails: the folder has no safetensors
plugin.show_installer()
configure(SILENT, PARTIAL)
dialog.install_button.click()
wait(lambda: dialog.process is None and dialog.outcome is not None, 120)
out["failed"] = [dialog.outcome["event"], dialog.status.text(), dialog.install_button.isEnabled()]
dialog.reject()

# succeeds
plugin.show_installer()
configure(SILENT, FULL)
dialog.install_button.click()
wait(lambda: dialog.process is None and dialog.outcome is not None, 120)
out["done"] = [dialog.outcome["event"], dialog.outcome.get("ok"), dialog.status.text(), installed]
wait(lambda: dialog.process is None, 60)
out["state_after"] = dialog.state.text().splitlines()[0]
out["install_enabled_after"] = dialog.install_button.isEnabled()
out["message_after"] = iface.bar.currentItem() is not None
out["notice_after"] = not plugin.dock.notice.isHidden()
out["details"] = dialog.details.toPlainText()[-2000:]
dialog.reject()
plugin.show_installer()
dialog.reject()
plugin.unload()
out["errors"] = errors
print("RESULT " + json.dumps(out))
"""


def test_the_dialog_closes_and_stops_at_every_stage_and_a_success_clears_the_warnings(tmp_path, wheelhouse,
                                                                                       silent_index, qgis_env):
    partial, full = tmp_path / "partial", tmp_path / "full"
    for folder in (partial, full):
        shutil.copytree(wheelhouse, folder)
        make_wheel(folder, "torch", "2.13.0")
    make_wheel(full, "safetensors", "0.8.0", extra={"safetensors/torch.py": "import torch\n"})
    code = f"SILENT, PARTIAL, FULL = {silent_index!r}, {str(partial)!r}, {str(full)!r}\n" + STAGES
    out = run_qgis(code, qgis_env, tmp_path / "profile")
    assert out["message_before"] and out["notice_before"]
    assert out["planning"] == "plan" and out["after_plan_close"] == [True, False]
    assert out["installing"] == ["install", True, False]
    assert out["closed_while_installing"][0] == "canceled" and not out["closed_while_installing"][2]
    assert out["closed_while_installing"][1].startswith("Stopped.")
    assert out["escaped"] == ["canceled", False]
    event, status, enabled = out["failed"]
    assert event == "failed" and status.startswith("Failed: No file of safetensors==0.8.0 fits") and enabled
    assert out["done"][:2] == ["done", True] and out["done"][3] == [True], out["details"]
    assert out["done"][2] == "Installed: every package imports."
    assert out["state_after"] == "All dependencies are installed." and not out["install_enabled_after"]
    assert not out["message_after"] and not out["notice_after"]
    assert out["errors"] == []
