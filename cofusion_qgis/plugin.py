# SPDX-License-Identifier: GPL-2.0-or-later
"""The QGIS plugin object: what ``classFactory`` returns.

``initProcessing`` registers the Processing provider (qgis_process calls only this); ``initGui`` does that too
and adds the menu entry "Install dependencies…", and when a runtime dependency is missing says so in the message
bar with a button that opens the installer. ``unload`` removes exactly what they added.
"""
from __future__ import annotations

from qgis.core import Qgis, QgsApplication, QgsMessageLog
from qgis.PyQt.QtWidgets import QAction, QPushButton

from . import dependencies
from .provider import CoFusionProvider

MENU = "&CoFusion"


def site_dir():
    """Where the installer puts the runtime dependencies: beside the plugins of the active QGIS profile."""
    return dependencies.site_dir(QgsApplication.qgisSettingsDirPath())


class CoFusionPlugin:
    """Plugin object QGIS keeps while the plugin is loaded."""

    def __init__(self, iface) -> None:
        self.iface = iface
        self.provider: CoFusionProvider | None = None
        self.action: QAction | None = None
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
        self.action = QAction(self.iface.mainWindow())
        self.action.setText("Install dependencies…")
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

    def unload(self) -> None:
        """Called by QGIS when the plugin is disabled: remove everything initGui and initProcessing added."""
        if self.action is not None:
            self.iface.removePluginMenu(MENU, self.action)
            self.action.triggered.disconnect(self.show_installer)
            self.action.deleteLater()
            self.action = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
