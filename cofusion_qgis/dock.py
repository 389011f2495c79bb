# SPDX-License-Identifier: GPL-2.0-or-later
"""The CoFusion dock widget: the fusion panel above the spectral inspector, in a scroll area so the dock stays
usable on a small screen. The panels do the work; the dock wires the fusion result into the inspector."""
from __future__ import annotations

from qgis.gui import QgsDockWidget, QgsMapCanvas, QgsMessageBar
from qgis.PyQt.QtWidgets import QFrame, QGroupBox, QScrollArea, QVBoxLayout, QWidget

from .fuse_panel import FusePanel
from .i18n import tr
from .spectra_panel import SpectraPanel
from .spectra_plot import HRMSI, LRHSI, REFERENCE


class CoFusionDock(QgsDockWidget):
    """Fusion (layers, model, advanced settings, Fuse/Cancel/progress) and spectral inspection in one dock."""

    def __init__(self, canvas: QgsMapCanvas, message_bar: QgsMessageBar, parent: QWidget | None = None) -> None:
        super().__init__(tr("CoFusion"), parent)
        self.setObjectName("CoFusionDock")
        self.fusion = FusePanel(message_bar)
        self.spectra = SpectraPanel(canvas, self.input_layers)
        self.fusion.fused.connect(self.spectra.set_fused)

        body = QWidget()
        layout = QVBoxLayout(body)
        layout.setContentsMargins(4, 4, 4, 4)
        for title, panel in ((tr("Fusion"), self.fusion), (tr("Spectra"), self.spectra)):
            box = QGroupBox(title)
            QVBoxLayout(box).addWidget(panel)
            layout.addWidget(box)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.NoFrame)
        scroll.setWidget(body)
        self.setWidget(scroll)
        self.setMinimumWidth(280)

    def input_layers(self) -> dict:
        """The fusion panel's layers by inspector role (None where unset)."""
        return {LRHSI: self.fusion.lrhsi.currentLayer(), REFERENCE: self.fusion.reference.currentLayer(),
                HRMSI: self.fusion.hrmsi.currentLayer()}

    def unload(self) -> None:
        """Stop a running fusion, give the canvas its tool back and disconnect (before the dock is deleted)."""
        self.fusion.save()
        self.fusion.unload()
        self.spectra.unload()
