# SPDX-License-Identifier: GPL-2.0-or-later
"""A stand-in for QGIS's ``iface`` in the QGIS processes some tests start (tests/qgis/test_plugin.py,
tests/installer/test_qgis_process.py): a main window, a message bar and a map canvas, and lists of the menus, toolbar
icons and docks a plugin adds, so that a test can check what initGui added and unload removed. Import it after the
QgsApplication exists."""
from qgis.gui import QgsMapCanvas, QgsMessageBar
from qgis.PyQt.QtWidgets import QMainWindow


class Iface:
    def __init__(self):
        self.window, self.bar, self.canvas = QMainWindow(), QgsMessageBar(), QgsMapCanvas()
        self.menus, self.tools, self.docks = [], [], []

    def mainWindow(self):  # noqa: N802 (QGIS API names)
        return self.window

    def messageBar(self):  # noqa: N802
        return self.bar

    def mapCanvas(self):  # noqa: N802
        return self.canvas

    def addPluginToMenu(self, menu, action):  # noqa: N802
        self.menus.append((menu, action))

    def removePluginMenu(self, menu, action):  # noqa: N802
        self.menus.remove((menu, action))

    def addToolBarIcon(self, action):  # noqa: N802
        self.tools.append(action)

    def removeToolBarIcon(self, action):  # noqa: N802
        self.tools.remove(action)

    def addDockWidget(self, area, dock):  # noqa: N802
        self.docks.append(dock)

    def removeDockWidget(self, dock):  # noqa: N802
        self.docks.remove(dock)
