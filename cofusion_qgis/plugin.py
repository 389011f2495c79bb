# SPDX-License-Identifier: GPL-2.0-or-later
"""The QGIS plugin object: what ``classFactory`` returns.

``initProcessing`` registers the Processing provider (qgis_process calls only this); ``initGui`` does that too
and adds the menu entries "CoFusion panel" (also a toolbar button; it toggles the dock, created on first use) and
"Install dependencies…", and when a runtime dependency is missing says so in the message bar with a button that
opens the installer (one dialog, not modal, kept while the plugin is loaded). After a successful installation the
message goes and the dock's notice is checked again. ``unload`` removes exactly what they added.

The installer's folder (``site_dir``) is put on ``sys.path`` after QGIS's own paths (``dependencies.activate``),
so a package QGIS has is never loaded from it.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

from qgis.core import Qgis, QgsApplication, QgsMessageLog
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import QAction, QPushButton

from . import dependencies
from .environment import site_dir
from .i18n import tr
from .provider import CoFusionProvider

MENU = "&CoFusion"
ICON = Path(__file__).resolve().parents[1] / "resources" / "icon.svg"


class CoFusionPlugin:
    """Plugin object QGIS keeps while the plugin is loaded."""

    def __init__(self, iface) -> None:
        self.iface = iface
        self.provider: CoFusionProvider | None = None
        self.action: QAction | None = None
        self.dock_action: QAction | None = None
        self.dock = None  # the CoFusionDock, created when first shown
        self.installer = None  # the InstallDialog, created when first asked for
        self.missing_message = None  # the message bar item saying what is missing
        dependencies.activate(site_dir())

    def initProcessing(self) -> None:  # noqa: N802 (QGIS API names)
        """Register the Processing provider (once)."""
        if self.provider is None:
            self.provider = CoFusionProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)
            self.provider.attach_models()  # its algorithms are in the registry only now
        absent = dependencies.missing(dependencies.runtime())
        if absent:
            QgsMessageLog.logMessage(
                f"Missing Python packages: {', '.join(r.name for r in absent)}; the algorithms that need them stay "
                "unusable until they are installed (Plugins > CoFusion > Install dependencies…).", "CoFusion",
                Qgis.Warning)

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
        absent = dependencies.missing(dependencies.runtime())
        if absent:
            bar = self.iface.messageBar()
            message = bar.createMessage("CoFusion", tr("needs Python packages that QGIS's Python lacks: {}.")
                                        .format(", ".join(r.name for r in absent)))
            button = QPushButton(tr("Install…"), message)
            button.clicked.connect(self.show_installer)
            message.layout().addWidget(button)
            bar.pushWidget(message, Qgis.Warning)
            self.missing_message = message

    def show_installer(self) -> None:
        """Open the dependency installer dialog (the same one each time: an installation keeps running while it
        is hidden)."""
        if self.installer is None:
            from .install_dialog import InstallDialog

            self.installer = InstallDialog(site_dir(), self.iface.mainWindow())
            self.installer.installed.connect(self.dependencies_installed)
        self.installer.show()
        self.installer.raise_()
        self.installer.activateWindow()

    def dependencies_installed(self) -> None:
        """After an installation: drop the message bar warning when nothing is missing any more, update the
        dock's notice."""
        if not dependencies.missing(dependencies.runtime()) and self.missing_message is not None:
            with contextlib.suppress(RuntimeError):  # the user may have closed (deleted) the message
                self.iface.messageBar().popWidget(self.missing_message)
            self.missing_message = None
        if self.dock is not None:
            self.dock.refresh_dependencies()

    def show_dock(self, visible: bool) -> None:  # noqa: FBT001 (a toggled slot)
        """Show or hide the dock, creating it on first show. It opens without the packages QGIS lacks (its notice
        names them, with a button to the installer); should it still fail to import, the message bar says which
        package and offers the installer, and the action stays off."""
        if self.dock is None and visible:
            try:
                from .dock import CoFusionDock
            except ImportError as exc:
                bar = self.iface.messageBar()
                message = bar.createMessage("CoFusion", tr("The panel cannot open: {}.").format(
                    tr("the Python package '{}' is missing").format(exc.name) if exc.name else exc))
                button = QPushButton(tr("Install dependencies…"), message)
                button.clicked.connect(self.show_installer)
                message.layout().addWidget(button)
                bar.pushWidget(message, Qgis.Critical)
                self.dock_action.setChecked(False)
                return
            self.dock = CoFusionDock(self.iface.mapCanvas(), self.iface.messageBar(), self.iface.mainWindow())
            self.dock.visibilityChanged.connect(self.dock_action.setChecked)
            self.dock.install_requested.connect(self.show_installer)
            self.iface.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dock)
        if self.dock is not None:
            self.dock.setVisible(visible)

    def unload(self) -> None:
        """Called by QGIS when the plugin is disabled: remove everything initGui and initProcessing added."""
        if self.installer is not None:
            self.installer.shutdown()
            self.installer.installed.disconnect(self.dependencies_installed)
            self.installer.deleteLater()
            self.installer = None
        if self.missing_message is not None:
            with contextlib.suppress(RuntimeError):
                self.iface.messageBar().popWidget(self.missing_message)
            self.missing_message = None
        if self.dock is not None:
            self.dock.unload()
            self.dock.visibilityChanged.disconnect(self.dock_action.setChecked)
            self.dock.install_requested.disconnect(self.show_installer)
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
