# SPDX-License-Identifier: GPL-2.0-or-later
"""The CoFusion dock widget: the fusion panel above the spectral inspector, in a scroll area so the dock stays
usable on a small screen. The panels do the work; the dock wires the fusion result into the inspector.

The dock opens without the runtime packages QGIS lacks (PyTorch, safetensors, spectral; pyqtgraph for the plot):
a notice at its top names what is missing and what needs it, with a button that emits ``install_requested`` (the
plugin opens the installer); ``refresh_dependencies`` re-checks after an installation and hides the notice.
"""
from __future__ import annotations

from qgis.gui import QgsDockWidget, QgsMapCanvas, QgsMessageBar
from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtWidgets import QFrame, QGroupBox, QLabel, QPushButton, QScrollArea, QVBoxLayout, QWidget

from . import dependencies
from .fuse_panel import FusePanel
from .i18n import tr

try:  # the inspector plots with pyqtgraph, which some QGIS installations lack
    from .spectra_panel import SpectraPanel
    from .spectra_plot import HRMSI, LRHSI, REFERENCE
except ImportError as exc:  # the dock opens without it and says so
    SpectraPanel, PLOT_ERROR = None, exc
    HRMSI, LRHSI, REFERENCE = "hrmsi", "lrhsi", "reference"
else:
    PLOT_ERROR = None

#: What each runtime package is needed for, in the notice.
NEEDED_FOR = {"torch": "for fusion and training", "safetensors": "for model files", "spectral": "for ENVI headers",
              "pyqtgraph": "for the spectra plot", "scipy": "for the classical methods", "pywt": "for the network",
              "numpy": "for everything", "osgeo": "for everything"}


def missing_text(absent) -> str:
    """The notice for the missing requirements ``absent``: one line each with what it is needed for."""
    lines = [f"• {r.title} – {tr(NEEDED_FOR.get(r.module, 'CoFusion'))}" for r in absent]
    return tr("Python packages missing from QGIS:") + "\n" + "\n".join(lines)


#: The dock's narrowest width in pixels, when its content needs less.
MIN_WIDTH = 280

class CoFusionDock(QgsDockWidget):
    """Fusion (layers, model, advanced settings, Fuse/Cancel/progress) and spectral inspection in one dock."""

    install_requested = pyqtSignal()

    def __init__(self, canvas: QgsMapCanvas, message_bar: QgsMessageBar, parent: QWidget | None = None) -> None:
        super().__init__(tr("CoFusion"), parent)
        self.setObjectName("CoFusionDock")
        self.notice = QFrame()
        self.notice.setFrameShape(QFrame.Shape.StyledPanel)
        self.notice.setObjectName("CoFusionMissingNotice")
        self.notice_text = QLabel()
        self.notice_text.setWordWrap(True)
        self.notice_text.setMinimumWidth(1)  # wraps to the dock's width instead of widening it
        self.install_button = QPushButton(tr("Install dependencies…"))
        self.install_button.setToolTip(tr("Open the installer: it downloads the missing packages with pip into "
                                          "your QGIS profile, without touching QGIS's own packages."))
        self.install_button.clicked.connect(self.install_requested)
        notice_layout = QVBoxLayout(self.notice)
        notice_layout.addWidget(self.notice_text)
        notice_layout.addWidget(self.install_button)

        self.fusion = FusePanel(message_bar, canvas)
        if SpectraPanel is not None:
            self.spectra = SpectraPanel(canvas, self.input_layers)
            self.fusion.fused.connect(self.spectra.set_fused)
        else:
            self.spectra = QLabel(tr("The spectra plot needs the Python package 'pyqtgraph' ({}).")
                                  .format(PLOT_ERROR))
            self.spectra.setWordWrap(True)

        body = QWidget()
        layout = QVBoxLayout(body)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.notice)
        for title, panel in ((tr("Fusion"), self.fusion), (tr("Spectra"), self.spectra)):
            box = QGroupBox(title)
            QVBoxLayout(box).addWidget(panel)
            layout.addWidget(box)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(body)
        self.setWidget(scroll)
        # wide enough that every button (Fuse, Cancel, Export…) shows without scrolling sideways
        self.setMinimumWidth(max(MIN_WIDTH, body.minimumSizeHint().width()
                                 + scroll.verticalScrollBar().sizeHint().width() + 2 * scroll.frameWidth()))
        self.refresh_dependencies()

    def refresh_dependencies(self) -> list:
        """Check the runtime packages again; show the notice while any is missing. Returns the missing ones."""
        absent = dependencies.missing(dependencies.runtime())
        self.notice_text.setText(missing_text(absent) if absent else "")
        self.notice.setVisible(bool(absent))
        return absent

    def input_layers(self) -> dict:
        """The fusion panel's layers by inspector role (None where unset)."""
        return {LRHSI: self.fusion.lrhsi.currentLayer(), REFERENCE: self.fusion.reference.currentLayer(),
                HRMSI: self.fusion.hrmsi.currentLayer()}

    def unload(self) -> None:
        """Stop a running fusion, give the canvas its tool back and disconnect (before the dock is deleted)."""
        self.fusion.save()
        self.fusion.unload()
        if SpectraPanel is not None:
            self.spectra.unload()
