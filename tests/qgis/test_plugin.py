# SPDX-License-Identifier: GPL-2.0-or-later
"""initGui / unload with a GUI QgsApplication and a stand-in iface (in a subprocess: a fresh QGIS, whose state
before and after can be compared)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.qgis
pytest.importorskip("qgis.core")

SCRIPT = """
from qgis.core import QgsApplication
app = QgsApplication([], True)
app.initQgis()

from fake_iface import Iface

import cofusion
from cofusion.cofusion_qgis import dependencies
dependencies.missing = lambda requirements: [dependencies.Requirement("torch", "torch==2.13.0")]
registry, iface = QgsApplication.processingRegistry(), Iface()
before = [p.id() for p in registry.providers()]
plugin = cofusion.classFactory(iface)
plugin.initGui()
print("provider", registry.providerById("cofusion") is not None)
print("menu", [a.text() for _, a in iface.menus])
print("message", iface.bar.currentItem().text())
tool = iface.canvas.mapTool()
plugin.dock_action.setChecked(True)
print("dock", [d.objectName() for d in iface.docks], [a.text() for a in iface.tools])
plugin.dock.spectra.inspect_button.setChecked(True)
print("inspecting", iface.canvas.mapTool() is plugin.dock.spectra.tool)
plugin.unload()
print("restored", [p.id() for p in registry.providers()] == before and iface.menus == [] and iface.tools == []
      and iface.docks == [] and iface.canvas.mapTool() is tool)
"""


def test_init_gui_adds_menus_toolbar_dock_and_missing_message_and_unload_removes_them():
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    prelude = f"import sys\nsys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})\n"  # fake_iface
    done = subprocess.run([sys.executable, "-c", prelude + SCRIPT], capture_output=True, text=True, env=env,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    out = done.stdout.splitlines()
    assert "provider True" in out and "menu ['CoFusion panel', 'Install dependencies…']" in out
    assert "dock ['CoFusionDock'] ['CoFusion panel']" in out and "inspecting True" in out and "restored True" in out
    assert any(line.startswith("message ") and "torch" in line for line in out)
