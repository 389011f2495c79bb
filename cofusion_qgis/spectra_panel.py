# SPDX-License-Identifier: GPL-2.0-or-later
"""The spectral-inspection part of the dock: a map tool, the plot, pin / clear / export / spectral library, SAM
and RMSE.

The map tool (a QgsMapToolEmitPoint) hands each click, in the canvas CRS, to ``inspect``, which reads the spectra
of the fused layer and of the fusion inputs (``layers()`` of the fusion panel) at that point and plots them; a
point without a spectrum in some layer says so under the plot. The LRHSI pixel a point's curves were read from is
drawn on the map (a QgsRubberBand polygon in the point's colour) while the point is on the plot; Clear removes the
curves, the read-outs, the marker and the footprints, and so does unloading the dock (footprints, marker).
"Add to spectral library" appends the curves on the plot to the memory layer "CoFusion spectra"
(``spectral_library``).
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from qgis.core import Qgis, QgsApplication, QgsMapLayerProxyModel, QgsPointXY, QgsRasterLayer, QgsWkbTypes
from qgis.gui import QgsMapCanvas, QgsMapLayerComboBox, QgsMapToolEmitPoint, QgsRubberBand, QgsVertexMarker
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QColor, QIcon
from qgis.PyQt.QtWidgets import QComboBox, QFormLayout, QHBoxLayout, QLabel, QToolButton, QVBoxLayout, QWidget

from ..core.spectrum import write_csv
from .i18n import tr
from .inspector import footprint, format_point, fused_vs_reference, spectra_at
from .spectra_plot import FUSED, LRHSI, PlotPoint, SpectraPlot
from .spectral_library import LAYER_NAME, add_to_library

ICONS = Path(__file__).resolve().parents[1] / "resources" / "icons"
#: The polygon geometry type of a rubber band: Qgis.GeometryType from QGIS 3.30, QgsWkbTypes' before.
POLYGON = Qgis.GeometryType.Polygon if hasattr(Qgis, "GeometryType") else QgsWkbTypes.PolygonGeometry
#: Opacity (0..255) of a footprint's fill.
FOOTPRINT_FILL_ALPHA = 40


def hint_text() -> str:
    """What the message under the plot says while nothing is plotted."""
    return tr("Choose 'Inspect spectra' and click on the map.")


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
        self.library_button = self._button(QgsApplication.getThemeIcon("/mActionCreateMemory.svg"),
                                           tr("Add to spectral library"),
                                           tr("Append the curves on the plot to the memory layer '{}' (one point "
                                              "feature per curve, the spectrum as EnMAP-Box profile JSON)")
                                           .format(LAYER_NAME))
        self.plot = SpectraPlot()
        self.footprints: list[tuple[PlotPoint, QgsRubberBand]] = []
        self.pin_button.clicked.connect(self.pin)
        self.clear_button.clicked.connect(self.clear)
        self.export_button.clicked.connect(self.ask_export)
        self.library_button.clicked.connect(self.add_to_library)
        self.comparison = QLabel(" ")
        self.comparison.setToolTip(tr("Spectral angle (degrees) and root-mean-square error of the fused curve "
                                      "against the reference curve"))
        self.message = QLabel(hint_text())
        self.message.setWordWrap(True)

        form = QFormLayout()
        form.addRow(tr("Fused"), self.fused)
        buttons = QHBoxLayout()
        for button in (self.inspect_button, self.pin_button, self.clear_button, self.export_button):
            buttons.addWidget(button)
        buttons.addStretch()
        library = QHBoxLayout()  # a row of its own: the dock is narrow
        library.addWidget(self.library_button)
        library.addStretch()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addLayout(library)
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
        extra = {"point": QgsPointXY(point), "crs": crs}
        lr_curve, lr_layer = dict(curves).get(LRHSI), layers.get(LRHSI)
        if lr_curve is not None and lr_layer is not None:
            extra["footprint"] = (footprint(lr_curve), lr_layer.crs())
        self.plot.show_point(curves, format_point(point, crs), **extra)
        self._sync_footprints()
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

    def pin(self) -> None:
        """Keep the last point's curves (and its footprint) while other points are clicked."""
        self.plot.pin()
        self._sync_footprints()

    def clear(self) -> None:
        """Remove every curve, the read-outs (hover, SAM / RMSE, message), the point marker and the footprints."""
        self.plot.clear()
        self.comparison.setText(" ")
        self.message.setText(hint_text())
        self._remove_marker()
        self._sync_footprints()

    def _sync_footprints(self) -> None:
        """One rubber band per point on the plot that has an LRHSI pixel, in the point's colour; the rubber bands
        of points no longer on the plot are removed."""
        points = self.plot.points()
        kept = []
        for point, band in self.footprints:
            if any(point is p for p in points):
                kept.append((point, band))
            else:
                self.canvas.scene().removeItem(band)
        self.footprints = kept
        for point in points:
            geometry, crs = point.extra.get("footprint", (None, None))
            if geometry is None or any(point is p for p, _ in self.footprints):
                continue
            band = QgsRubberBand(self.canvas, POLYGON)
            band.setToGeometry(geometry, crs)
            color = QColor(point.color)
            band.setStrokeColor(color)
            color.setAlpha(FOOTPRINT_FILL_ALPHA)
            band.setFillColor(color)
            band.setWidth(2)
            self.footprints.append((point, band))

    def _remove_footprints(self) -> None:
        for _, band in self.footprints:
            self.canvas.scene().removeItem(band)
        self.footprints = []

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

    def add_to_library(self) -> None:
        """Append the curves on the plot to the spectral library layer (made and added to the project if need be)."""
        layer, added = add_to_library(self.plot.points())
        if layer is None or not added:
            self.message.setText(tr("No curves to add to the spectral library."))
            return
        self.message.setText(tr("Added {} spectra to '{}' ({} in all).").format(added, layer.name(),
                                                                              layer.featureCount()))

    def unload(self) -> None:
        """Give the canvas back its tool, remove the marker and the footprints, disconnect from the canvas."""
        self.activate(False)
        self.canvas.mapToolSet.disconnect(self._tool_changed)
        self._remove_marker()
        self._remove_footprints()
