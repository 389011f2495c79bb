# SPDX-License-Identifier: GPL-2.0-or-later
"""The spectral-inspection part of the dock: a map tool, the plot, pin / clear / export, SAM and RMSE.

The map tool (a QgsMapToolEmitPoint) hands each click, in the canvas CRS, to ``inspect``, which reads the spectra
of the fused layer and of the fusion inputs (``layers()`` of the fusion panel) at that point and plots them; a
point without a spectrum in some layer says so under the plot.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from qgis.core import QgsApplication, QgsMapLayerProxyModel, QgsPointXY, QgsRasterLayer
from qgis.gui import QgsMapCanvas, QgsMapLayerComboBox, QgsMapToolEmitPoint, QgsVertexMarker
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QColor, QIcon
from qgis.PyQt.QtWidgets import QComboBox, QFormLayout, QHBoxLayout, QLabel, QToolButton, QVBoxLayout, QWidget

from ..core.spectrum import write_csv
from .i18n import tr
from .inspector import format_point, fused_vs_reference, spectra_at
from .spectra_plot import FUSED, SpectraPlot

ICONS = Path(__file__).resolve().parents[1] / "resources" / "icons"


class SpectraPanel(QWidget):
    """The inspector: ``layers()`` gives the input layers by role (lrhsi, hrmsi, reference; None when unset)."""

    def __init__(self, canvas: QgsMapCanvas, layers: Callable[[], dict[str, QgsRasterLayer | None]],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.canvas, self.layers = canvas, layers
        self.fused = QgsMapLayerComboBox()
        self.fused.setFilters(QgsMapLayerProxyModel.RasterLayer)
        self.fused.setAllowEmptyLayer(True)
        self.fused.setLayer(None)
        self.fused.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.fused.setMinimumContentsLength(8)
        self.fused.setToolTip(tr("The fused raster whose spectra are plotted (the last fusion's result)."))
        self.tool = QgsMapToolEmitPoint(canvas)
        self.tool.setCursor(Qt.CursorShape.CrossCursor)
        self.tool.canvasClicked.connect(self.inspect)
        self.marker: QgsVertexMarker | None = None

        self.inspect_button = self._button(QIcon(str(ICONS / "spectrum.svg")), tr("Inspect spectra"),
                                           tr("Click on the map to plot the spectra at that point"))
        self.inspect_button.setCheckable(True)
        self.inspect_button.toggled.connect(self.activate)
        canvas.mapToolSet.connect(self._tool_changed)
        self.pin_button = self._button(QIcon(str(ICONS / "pin.svg")), tr("Pin"),
                                       tr("Keep these curves while other points are clicked"))
        self.clear_button = self._button(QgsApplication.getThemeIcon("/mActionDeleteSelected.svg"), tr("Clear"),
                                         tr("Remove all curves"))
        self.export_button = self._button(QgsApplication.getThemeIcon("/mActionFileSave.svg"), tr("Export…"),
                                          tr("Save the curves on the plot to a CSV file"))
        self.plot = SpectraPlot()
        self.pin_button.clicked.connect(self.plot.pin)
        self.clear_button.clicked.connect(self.clear)
        self.export_button.clicked.connect(self.ask_export)
        self.comparison = QLabel(" ")
        self.comparison.setToolTip(tr("Spectral angle (degrees) and root-mean-square error of the fused curve "
                                      "against the reference curve"))
        self.message = QLabel(tr("Choose 'Inspect spectra' and click on the map."))
        self.message.setWordWrap(True)

        form = QFormLayout()
        form.addRow(tr("Fused"), self.fused)
        buttons = QHBoxLayout()
        for button in (self.inspect_button, self.pin_button, self.clear_button, self.export_button):
            buttons.addWidget(button)
        buttons.addStretch()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.comparison)
        layout.addWidget(self.message)

    @staticmethod
    def _button(icon: QIcon, text: str, tooltip: str) -> QToolButton:
        button = QToolButton()
        button.setIcon(icon)
        button.setText(text)
        button.setToolTip(tooltip)
        button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        button.setAutoRaise(True)
        return button

    def activate(self, on: bool) -> None:  # noqa: FBT001 (a toggled slot)
        """Make the map tool the canvas's tool (or give the canvas back its previous tool)."""
        if on:
            self.canvas.setMapTool(self.tool)
        elif self.canvas.mapTool() is self.tool:
            self.canvas.unsetMapTool(self.tool)

    def _tool_changed(self, new_tool, _old_tool=None) -> None:
        self.inspect_button.setChecked(new_tool is self.tool)

    def set_fused(self, layer: QgsRasterLayer) -> None:
        """Plot ``layer`` as the fused raster from now on."""
        self.fused.setLayer(layer)

    def inspect(self, point: QgsPointXY, _button=None) -> None:
        """Plot the spectra at ``point`` (canvas CRS); say which layers have none there."""
        layers = {FUSED: self.fused.currentLayer(), **self.layers()}
        if not any(layers.values()):
            self.message.setText(tr("Choose the layers to inspect first."))
            return
        crs = self.canvas.mapSettings().destinationCrs()
        curves, messages = spectra_at(point, crs, layers)
        self._mark(point)
        self.plot.show_point(curves)
        scores = fused_vs_reference(curves)
        self.comparison.setText(tr("Fused vs reference: SAM {:.2f}°, RMSE {:.4g}").format(*scores)
                                if scores else " ")
        self.message.setText(" ".join(messages) if messages else
                             tr("{}: {} curves.").format(format_point(point, crs), len(curves)))

    def _mark(self, point: QgsPointXY) -> None:
        if self.marker is None:
            self.marker = QgsVertexMarker(self.canvas)
            self.marker.setColor(QColor("#D55E00"))
            self.marker.setIconType(QgsVertexMarker.ICON_CROSS)
            self.marker.setIconSize(14)
            self.marker.setPenWidth(3)
        self.marker.setCenter(point)

    def clear(self) -> None:
        """Remove every curve and the point marker."""
        self.plot.clear()
        self.comparison.setText(" ")
        self._remove_marker()

    def _remove_marker(self) -> None:
        if self.marker is not None:
            self.canvas.scene().removeItem(self.marker)
            self.marker = None

    def ask_export(self) -> None:
        """Ask for a CSV file and export the curves to it."""
        from qgis.PyQt.QtWidgets import QFileDialog

        path, _ = QFileDialog.getSaveFileName(self, tr("Export spectra"), "", tr("CSV (*.csv)"))
        if path:
            self.export(path)

    def export(self, path: str) -> None:
        """Write every curve on the plot to the CSV file ``path``."""
        curves = self.plot.curves()
        if not curves:
            self.message.setText(tr("No curves to export."))
            return
        write_csv(path, curves)
        self.message.setText(tr("Exported {} curves to {}.").format(len(curves), path))

    def unload(self) -> None:
        """Give the canvas back its tool, remove the marker, disconnect from the canvas."""
        self.activate(False)
        self.canvas.mapToolSet.disconnect(self._tool_changed)
        self._remove_marker()
