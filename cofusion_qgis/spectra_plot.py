# SPDX-License-Identifier: GPL-2.0-or-later
"""The spectral-curve plot of the dock: a pyqtgraph PlotWidget with the curves of the points clicked on the map,
a legend table and a hover read-out, drawn the way EnMAP-Box's spectral profile view draws them.

- One colour per point (``POINT_COLORS``, colour-blind-safe Okabe-Ito colours, in turn) and one line style per
  layer role (``STYLES``: fused solid, LRHSI dashed, reference dotted, HRMSI dash-dot with markers at its bands'
  centres); the legend is a small table, rows the points (with their colour swatch), columns the layers (with
  their line-style sample), a cell the curve's sample (empty where the point has no spectrum in that layer).
- The y axis names what the values are (``value_label`` of ``Spectrum.unit``: reflectance, the raster's unit,
  'value (raster units)').
- Lines break (``connect="finite"`` on NaN, ``core.spectrum.plot_arrays``) at bands that are not usable (bad or
  nodata) and across wavelength jumps (removed water-vapour windows).
- Wavelengths and band numbers are never mixed on one axis. Curves of a layer without wavelengths go to a
  second view box with its own x axis on top, "Band number", sharing the y axis (the values are of the same kind);
  the nm curves keep their wavelengths on the bottom axis. Plotting everything by band number instead would
  throw away the wavelengths of the hyperspectral curves, whose band numbers do not line up with a
  multispectral raster's; when no curve has wavelengths, the bottom axis itself is the band-number axis.

The last clicked point is replaced by the next click until ``pin()`` keeps it; ``clear()`` removes every point,
curve and read-out; ``curves()`` lists what is drawn, for CSV export; ``points()`` the points, for the map
footprints and the spectral library.

Plot items are never removed from the plot: they are kept in a pool per view box, given new data, and hidden when
unused. (Removing a pyqtgraph item inside QGIS prints "unable to convert a QVariant back to a Python object" from
``GraphicsObject.itemChange``, pyqtgraph issue #774, for every item; the same holds for pyqtgraph's legend, so the
legend is a Qt table under the plot.)
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyqtgraph as pg
from qgis.PyQt.QtCore import QPointF, QSize, Qt
from qgis.PyQt.QtGui import QColor, QIcon, QPainter, QPen, QPixmap
from qgis.PyQt.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..core.spectrum import Curve, plot_arrays
from .i18n import tr

#: Role ids of the curves of one point, in drawing order.
FUSED, LRHSI, REFERENCE, HRMSI = "fused", "lrhsi", "reference", "hrmsi"
#: Column titles of the roles in the legend table.
TITLES = {FUSED: "Fused", LRHSI: "LRHSI", REFERENCE: "Reference", HRMSI: "HRMSI"}
#: Line style of each role (another role: ``OTHER_STYLE``).
STYLES = {FUSED: Qt.PenStyle.SolidLine, LRHSI: Qt.PenStyle.DashLine, REFERENCE: Qt.PenStyle.DotLine,
          HRMSI: Qt.PenStyle.DashDotLine}
OTHER_STYLE = Qt.PenStyle.DashDotDotLine
#: Roles drawn with markers at the band positions as well (a multispectral raster's few broad bands).
MARKERS = {HRMSI: "o"}
#: Colours of the points, in turn (Okabe-Ito; yellow left out: unreadable on white).
POINT_COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
LINE_WIDTH = 2
ICON_SIZE = (30, 12)  # of a line sample in the legend
MAIN, BANDS = "main", "bands"  # the view boxes: the plot's own (bottom axis) and the band-number one (top axis)


@dataclass
class PlotPoint:
    """A clicked point: ``number`` (1-based, 'P1' in the legend), ``where`` (its coordinates as text), its
    curves by role, its colour, and whether it is pinned."""

    number: int
    where: str
    curves: list[tuple[str, Curve]]
    color: str
    pinned: bool = False
    extra: dict = field(default_factory=dict)  # what the panel keeps with the point (map point, CRS)

    @property
    def name(self) -> str:
        return f"P{self.number}"


def style_of(role: str) -> Qt.PenStyle:
    """The line style of ``role``."""
    return STYLES.get(role, OTHER_STYLE)


def title_of(role: str) -> str:
    return tr(TITLES.get(role, role))


def value_label(units: list[str]) -> str:
    """The y-axis label for curves whose values are in ``units`` (``Spectrum.unit`` each): 'Reflectance' (or
    'Reflectance × 10000'), 'Value (<unit>)' for a raster's own unit, 'Value (raster units)' when not known;
    different units are joined with ' / '."""
    labels = []
    for unit in dict.fromkeys(units):
        if unit.startswith("reflectance"):
            labels.append(tr("Reflectance") + unit[len("reflectance"):])
        elif unit:
            labels.append(tr("Value ({})").format(unit))
        else:
            labels.append(tr("Value (raster units)"))
    return " / ".join(labels) or tr("Value")


def line_icon(color: str, style: Qt.PenStyle, marker: str | None = None) -> QIcon:
    """A sample of a curve: a line of ``style`` in ``color`` (and a marker in its middle), ``ICON_SIZE``."""
    size = QSize(*ICON_SIZE)
    pixmap = QPixmap(size)
    pixmap.fill(QColor(Qt.GlobalColor.transparent))
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(QPen(QColor(color), LINE_WIDTH, style))
    middle = size.height() // 2
    painter.drawLine(1, middle, size.width() - 2, middle)
    if marker:
        painter.setBrush(QColor(color))
        painter.setPen(QPen(QColor("black"), 1))
        painter.drawEllipse(QPointF(size.width() / 2, middle), 3.5, 3.5)
    painter.end()
    return QIcon(pixmap)


def swatch_icon(color: str, size: int = 12) -> QIcon:
    """A square of ``color``: a point's swatch."""
    pixmap = QPixmap(size, size)
    pixmap.fill(QColor(color))
    return QIcon(pixmap)


class SpectraPlot(QWidget):
    """The plot, its legend table and its hover read-out; curves come in as ``core.spectrum.Curve`` with a role."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        pg.setConfigOptions(antialias=True)
        self.widget = pg.PlotWidget(background="w")
        self.widget.setMinimumHeight(180)
        self.widget.showGrid(x=True, y=True, alpha=0.3)
        plot_item = self.widget.getPlotItem()
        self.box = plot_item.vb
        # the curves by band number, when others have wavelengths: under the plot's own box (z -1), which gets
        # the mouse (zoom and pan move both boxes' y, linked, and the plot's x); no menu or mouse of its own
        self.band_box = pg.ViewBox(enableMouse=False, enableMenu=False)
        self.band_box.setZValue(-1)
        plot_item.scene().addItem(self.band_box)
        plot_item.getAxis("top").linkToView(self.band_box)
        self.band_box.setYLink(self.box)
        self.box.sigResized.connect(self._fit_band_box)
        for side in ("bottom", "top"):
            plot_item.getAxis(side).enableAutoSIPrefix(False)  # nm stay nm (not 'knm')
        plot_item.hideAxis("top")
        self.widget.setLabel("left", tr("Value"))

        self.legend = QTableWidget(0, 0)
        self.legend.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.legend.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.legend.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.legend.setIconSize(QSize(*ICON_SIZE))
        self.legend.setShowGrid(False)
        self.legend.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.legend.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.legend.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.legend.setToolTip(tr("Points (rows, in their colour) by layers (columns, in their line style)"))
        self.legend.hide()
        self.readout = QLabel(" ")
        self.readout.setToolTip(tr("Wavelength (or band number) and value under the mouse pointer"))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.widget)
        layout.addWidget(self.legend)
        layout.addWidget(self.readout)
        self.pinned: list[PlotPoint] = []
        self.current: PlotPoint | None = None
        self.pools: dict[str, list[pg.PlotDataItem]] = {MAIN: [], BANDS: []}
        self.drawn: list[tuple[pg.PlotDataItem, PlotPoint, str, Curve]] = []
        self.uses_band_axis = False
        self.widget.scene().sigMouseMoved.connect(self._hover)

    # ------------------------------------------------------------------------------------------------- points

    def show_point(self, curves: list[tuple[str, Curve]], where: str = "", **extra) -> PlotPoint | None:
        """Replace the curves of the last (unpinned) point with ``curves`` (role, curve) at ``where`` (text);
        pinned points stay. ``extra``: kept with the point (``PlotPoint.extra``). Returns the new point (None
        when ``curves`` is empty: the last point is removed)."""
        number = len(self.pinned) + 1
        self.current = PlotPoint(number, where, list(curves), POINT_COLORS[(number - 1) % len(POINT_COLORS)],
                                 extra=dict(extra)) if curves else None
        self._redraw()
        return self.current

    def pin(self) -> None:
        """Keep the last point on the plot while others are clicked."""
        if self.current is None:
            return
        self.current.pinned = True
        self.pinned.append(self.current)
        self.current = None
        self._redraw()

    def clear(self) -> None:
        """Remove every point, pinned ones included, and the read-out."""
        self.current, self.pinned = None, []
        self._redraw()
        self.readout.setText(" ")

    def points(self) -> list[PlotPoint]:
        """The points on the plot: pinned first, then the last one."""
        return self.pinned + ([self.current] if self.current is not None else [])

    def curves(self) -> list[Curve]:
        """Every curve drawn: pinned first, then the last point's."""
        return [curve for point in self.points() for _, curve in point.curves]

    def items(self) -> list[pg.PlotDataItem]:
        """The plot items that show a curve (the visible ones of the pools), in drawing order."""
        return [item for item, *_ in self.drawn]

    def roles(self) -> list[str]:
        """The layer roles on the plot, in order of first appearance: the legend's columns."""
        return list(dict.fromkeys(role for point in self.points() for role, _ in point.curves))

    # ---------------------------------------------------------------------------------------------- drawing

    def _fit_band_box(self) -> None:
        self.band_box.setGeometry(self.box.sceneBoundingRect())
        self.band_box.linkedViewChanged(self.box, self.band_box.YAxis)

    def _item(self, pool: str, index: int) -> pg.PlotDataItem:
        items = self.pools[pool]
        while len(items) <= index:
            if pool == MAIN:
                items.append(self.widget.plot())
            else:
                item = pg.PlotDataItem()
                self.band_box.addItem(item)
                items.append(item)
        return items[index]

    def _redraw(self) -> None:
        styled = [(point, role, curve) for point in self.points() for role, curve in point.curves]
        in_nm = [curve.spectrum.in_nm for _, _, curve in styled]
        self.uses_band_axis = any(in_nm) and not all(in_nm)
        used = {MAIN: 0, BANDS: 0}
        self.drawn = []
        for point, role, curve in styled:
            pool = BANDS if self.uses_band_axis and not curve.spectrum.in_nm else MAIN
            item = self._item(pool, used[pool])
            used[pool] += 1
            self._draw(item, point, role, curve)
            self.drawn.append((item, point, role, curve))
        for pool, items in self.pools.items():
            for item in items[used[pool]:]:
                item.setData([], [])
                item.hide()
        self._label_axes(styled, in_nm)
        self._fit_ranges()
        self._fill_legend()

    @staticmethod
    def _draw(item: pg.PlotDataItem, point: PlotPoint, role: str, curve: Curve) -> None:
        x, y = plot_arrays(curve.spectrum)
        pen = pg.mkPen(point.color, width=LINE_WIDTH, style=style_of(role))
        marker = MARKERS.get(role)
        item.setData(x, y, pen=pen, connect="finite", name=curve.label, symbol=marker, symbolSize=8,
                     symbolBrush=point.color if marker else None, symbolPen="k" if marker else None)
        item.show()

    def _label_axes(self, styled: list, in_nm: list[bool]) -> None:
        plot_item = self.widget.getPlotItem()
        if any(in_nm):
            self.widget.setLabel("bottom", tr("Wavelength"), units="nm")
        else:
            self.widget.setLabel("bottom", tr("Band number"), units=None)
        if self.uses_band_axis:
            plot_item.showAxis("top")
            self.widget.setLabel("top", tr("Band number"), units=None)
            self._fit_band_box()
        else:
            plot_item.hideAxis("top")
        self.widget.setLabel("left", value_label([curve.spectrum.unit for _, _, curve in styled]))

    def _fit_ranges(self) -> None:
        """Fit x of each view box to its curves and y to every curve (the band box's y follows the plot's)."""
        if not self.uses_band_axis:
            self.box.enableAutoRange()
            return
        ys = [item.getData()[1] for item, *_ in self.drawn]
        finite = np.concatenate([y[np.isfinite(y)] for y in ys]) if ys else np.array([])
        if finite.size:
            low, high = float(finite.min()), float(finite.max())
            if high == low:
                low, high = low - 0.5, high + 0.5
            self.box.setYRange(low, high, padding=0.05)
        self.box.enableAutoRange(x=True)
        self.band_box.enableAutoRange(x=True)

    def _fill_legend(self) -> None:
        points, roles = self.points(), self.roles()
        table = self.legend
        table.clear()
        table.setRowCount(len(points))
        table.setColumnCount(len(roles))
        for column, role in enumerate(roles):
            header = QTableWidgetItem(line_icon("#555555", style_of(role), MARKERS.get(role)), title_of(role))
            names = dict.fromkeys(c.label.split(" @ ")[0] for p in points for r, c in p.curves if r == role)
            header.setToolTip(", ".join(names))
            table.setHorizontalHeaderItem(column, header)
        for row, point in enumerate(points):
            header = QTableWidgetItem(swatch_icon(point.color), point.name)
            header.setToolTip(point.where + ("" if point.pinned else tr(" (not pinned)")))
            table.setVerticalHeaderItem(row, header)
            by_role = dict(point.curves)
            for column, role in enumerate(roles):
                curve = by_role.get(role)
                if curve is None:
                    cell = QTableWidgetItem("–")
                    cell.setToolTip(tr("No spectrum of this layer at {}").format(point.where))
                else:
                    cell = QTableWidgetItem(line_icon(point.color, style_of(role), MARKERS.get(role)), "")
                    cell.setToolTip(curve.label)
                table.setItem(row, column, cell)
        table.setVisible(bool(points))
        if points:  # as tall as its rows, up to four; then it scrolls
            table.resizeRowsToContents()
            height = table.horizontalHeader().sizeHint().height() + 2 * table.frameWidth()
            height += sum(table.rowHeight(r) for r in range(min(len(points), 4)))
            table.setFixedHeight(height)

    # ---------------------------------------------------------------------------------------------- read-out

    def _hover(self, position: QPointF) -> None:
        """Show the wavelength (or band number) and value under the pointer."""
        if not self.widget.sceneBoundingRect().contains(position) or not self.drawn:
            return
        point = self.box.mapSceneToView(position)
        in_nm = any(curve.spectrum.in_nm for *_, curve in self.drawn)
        parts = [f"λ = {point.x():.1f} nm" if in_nm else f"{tr('band')} = {point.x():.1f}"]
        if self.uses_band_axis:
            parts.append(f"{tr('band')} = {self.band_box.mapSceneToView(position).x():.1f}")
        parts.append(f"{tr('value')} = {point.y():.4g}")
        self.readout.setText("   ".join(parts))
