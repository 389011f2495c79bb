# SPDX-License-Identifier: GPL-2.0-or-later
"""The QGIS plugin object: what ``classFactory`` returns.

``initProcessing`` registers the Processing provider (qgis_process calls only this); ``initGui`` does that too
and adds the menu entries "CoFusion panel" (also a toolbar button; it toggles the dock, created on first use) and
"Install dependencies…", and when a runtime dependency is missing says so in the message bar with a button that
opens the installer. ``unload`` removes exactly what they added.
"""
from __future__ import annotations

from pathlib import Path

from qgis.core import Qgis, QgsApplication, QgsMessageLog
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import QAction, QPushButton

from . import dependencies
from .i18n import tr
from .provider import CoFusionProvider

MENU = "&CoFusion"
ICON = Path(__file__).resolve().parents[1] / "resources" / "icon.svg"


def site_dir():
    """Where the installer puts the runtime dependencies: beside the plugins of the active QGIS profile."""
    return dependencies.site_dir(QgsApplication.qgisSettingsDirPath())


class CoFusionPlugin:
    """Plugin object QGIS keeps while the plugin is loaded."""

    def __init__(self, iface) -> None:
        self.iface = iface
        self.provider: CoFusionProvider | None = None
        self.action: QAction | None = None
        self.dock_action: QAction | None = None
        self.dock = None  # the CoFusionDock, created when first shown
        dependencies.activate(site_dir())

    def initProcessing(self) -> None:  # noqa: N802 (QGIS API names)
        """Register the Processing provider (once)."""
        if self.provider is None:
            self.provider = CoFusionProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)
        absent = dependencies.missing(dependencies.read_requirements())
        if absent:
            QgsMessageLog.logMessage(
                f"Missing Python packages: {', '.join(r.spec for r in absent)}; the algorithms stay unusable "
                "until they are installed (Plugins > CoFusion > Install dependencies…).", "CoFusion", Qgis.Warning)

    def initGui(self) -> None:  # noqa: N802
        """Called by QGIS when the plugin is enabled."""
        self.initProcessing()
        self.dock_action = QAction(QIcon(str(ICON)), tr("CoFusion panel"), self.iface.mainWindow())
        self.dock_action.setToolTip(tr("Show or hide the CoFusion panel: fusion and spectral-curve inspection"))
        self.dock_action.setCheckable(True)
        self.dock_action.toggled.connect(self.show_dock)
        self.iface.addPluginToMenu(MENU, self.dock_action)
        self.iface.addToolBarIcon(self.dock_action)
        self.action = QAction(self.iface.mainWindow())
        self.action.setText(tr("Install dependencies…"))
        self.action.triggered.connect(self.show_installer)
        self.iface.addPluginToMenu(MENU, self.action)
        absent = dependencies.missing(dependencies.read_requirements())
        if absent:
            bar = self.iface.messageBar()
            message = bar.createMessage("CoFusion", "needs Python packages that QGIS's Python lacks: "
                                        + ", ".join(r.name for r in absent) + ".")
            button = QPushButton("Install…", message)
            button.clicked.connect(self.show_installer)
            message.layout().addWidget(button)
            bar.pushWidget(message, Qgis.Warning)

    def show_installer(self) -> None:
        """Open the dependency installer dialog."""
        from .install_dialog import InstallDialog

        InstallDialog(site_dir(), self.iface.mainWindow()).exec_()

    def show_dock(self, visible: bool) -> None:  # noqa: FBT001 (a toggled slot)
        """Show or hide the dock, creating it on first show (it needs pyqtgraph and the runtime dependencies:
        when one is missing, the message bar says so and the action stays off)."""
        if self.dock is None and visible:
            try:
                from .dock import CoFusionDock
            except ImportError as exc:
                self.iface.messageBar().pushMessage(
                    "CoFusion", tr("The panel needs the Python package '{}'; install the dependencies from "
                                   "Plugins > CoFusion.").format(exc.name), Qgis.Critical)
                self.dock_action.setChecked(False)
                return
            self.dock = CoFusionDock(self.iface.mapCanvas(), self.iface.messageBar(), self.iface.mainWindow())
            self.dock.visibilityChanged.connect(self.dock_action.setChecked)
            self.iface.addDockWidget(Qt.RightDockWidgetArea, self.dock)
        if self.dock is not None:
            self.dock.setVisible(visible)

    def unload(self) -> None:
        """Called by QGIS when the plugin is disabled: remove everything initGui and initProcessing added."""
        if self.dock is not None:
            self.dock.unload()
            self.dock.visibilityChanged.disconnect(self.dock_action.setChecked)
            self.iface.removeDockWidget(self.dock)
            self.dock.deleteLater()
            self.dock = None
        if self.dock_action is not None:
            self.iface.removePluginMenu(MENU, self.dock_action)
            self.iface.removeToolBarIcon(self.dock_action)
            self.dock_action.toggled.disconnect(self.show_dock)
            self.dock_action.deleteLater()
            self.dock_action = None
        if self.action is not None:
            self.iface.removePluginMenu(MENU, self.action)
            self.action.triggered.disconnect(self.show_installer)
            self.action.deleteLater()
            self.action = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
