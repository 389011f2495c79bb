# SPDX-License-Identifier: GPL-2.0-or-later
"""initGui / unload with a GUI QgsApplication (in a subprocess: the session's application has no GUI)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.qgis
pytest.importorskip("qgis.core")

SCRIPT = """
from qgis.core import QgsApplication
from qgis.gui import QgsMessageBar
from qgis.PyQt.QtWidgets import QMainWindow
app = QgsApplication([], True)
app.initQgis()

class Iface:
    def __init__(self):
        self.window, self.bar, self.menus = QMainWindow(), QgsMessageBar(), []
    def mainWindow(self):
        return self.window
    def messageBar(self):
        return self.bar
    def addPluginToMenu(self, menu, action):
        self.menus.append((menu, action))
    def removePluginMenu(self, menu, action):
        self.menus.remove((menu, action))

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
plugin.unload()
print("restored", [p.id() for p in registry.providers()] == before and iface.menus == [])
"""


def test_init_gui_adds_menu_and_missing_message_and_unload_removes_them():
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    out = done.stdout.splitlines()
    assert "provider True" in out and "menu ['Install dependencies…']" in out and "restored True" in out
    assert any(line.startswith("message ") and "torch" in line for line in out)
