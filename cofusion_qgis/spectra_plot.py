# SPDX-License-Identifier: GPL-2.0-or-later
"""The spectral-curve plot of the dock: a pyqtgraph PlotWidget with the curves of the last clicked point, pinned
curves of earlier points, a legend and a hover read-out.

Plot items are never removed from the plot: they are kept in a pool, given new data, and hidden when unused.
(Removing a pyqtgraph item inside QGIS prints "unable to convert a QVariant back to a Python object" from
``GraphicsObject.itemChange``, pyqtgraph issue #774, for every item; the same holds for pyqtgraph's legend, so
the legend is a label under the plot.)

The curves of the last point are drawn in one colour per role (fused, LRHSI, reference as lines, HRMSI as
markers at its bands' centre wavelengths); ``pin()`` keeps them (thinner, one colour per pinned point) while new
points are clicked; ``clear()`` removes everything; ``curves()`` lists what is drawn, for CSV export.
"""
from __future__ import annotations

import pyqtgraph as pg
from qgis.PyQt.QtCore import QPointF, Qt
from qgis.PyQt.QtWidgets import QLabel, QVBoxLayout, QWidget

from ..core.spectrum import Curve
from .i18n import tr

#: Role ids of the curves of one point, in drawing order.
FUSED, LRHSI, REFERENCE, HRMSI = "fused", "lrhsi", "reference", "hrmsi"
#: Pen colour of each role (colour-blind-safe Okabe-Ito colours).
COLORS = {FUSED: "#D55E00", LRHSI: "#0072B2", REFERENCE: "#000000", HRMSI: "#009E73"}
#: Colours of pinned points, in turn.
PIN_COLORS = ("#E69F00", "#56B4E9", "#CC79A7", "#F0E442", "#999999")
#: Legend symbol of each role (a line for the others).
SYMBOLS = {REFERENCE: "╍╍", HRMSI: "●"}


def axis_label(in_nm: list[bool]) -> tuple[str, str]:
    """The x-axis label and unit for curves with (True) or without (False) wavelengths."""
    if in_nm and all(in_nm):
        return tr("Wavelength"), "nm"
    if not any(in_nm):
        return tr("Band number"), ""
    return tr("Wavelength (nm) or band number"), ""


class SpectraPlot(QWidget):
    """The plot and its hover read-out; curves come in as ``core.spectrum.Curve`` with a role."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        pg.setConfigOptions(antialias=True)
        self.widget = pg.PlotWidget(background="w")
        self.widget.setMinimumHeight(180)
        self.widget.showGrid(x=True, y=True, alpha=0.3)
        self.widget.setLabel("left", tr("Value"))
        self.widget.getAxis("bottom").enableAutoSIPrefix(False)  # nm stay nm (not 'knm')
        self.legend = QLabel(" ")
        self.legend.setWordWrap(True)
        self.legend.setTextFormat(Qt.TextFormat.RichText)
        self.readout = QLabel(" ")
        self.readout.setToolTip(tr("Wavelength and value under the mouse pointer"))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.widget)
        layout.addWidget(self.legend)
        layout.addWidget(self.readout)
        self.current: list[tuple[str, Curve]] = []
        self.pinned: list[tuple[str, Curve, str]] = []  # role, curve, colour
        self.pool: list[pg.PlotDataItem] = []
        self.widget.scene().sigMouseMoved.connect(self._hover)

    def show_point(self, curves: list[tuple[str, Curve]]) -> None:
        """Replace the curves of the last point with ``curves`` (role, curve); pinned curves stay."""
        self.current = list(curves)
        self._redraw()

    def pin(self) -> None:
        """Keep the curves of the last point on the plot (in a colour of their own)."""
        if not self.current:
            return
        color = PIN_COLORS[len({c for _, _, c in self.pinned}) % len(PIN_COLORS)]
        self.pinned += [(role, curve, color) for role, curve in self.current]
        self.current = []
        self._redraw()

    def clear(self) -> None:
        """Remove every curve, pinned ones included."""
        self.current, self.pinned = [], []
        self._redraw()

    def curves(self) -> list[Curve]:
        """Every curve drawn: pinned first, then the last point's."""
        return [curve for _, curve, _ in self.pinned] + [curve for _, curve in self.current]

    def items(self) -> list[pg.PlotDataItem]:
        """The plot items that show a curve (the visible ones of the pool), in drawing order."""
        return [item for item in self.pool if item.isVisible()]

    def _redraw(self) -> None:
        styled = [(role, curve, color, 1) for role, curve, color in self.pinned]
        styled += [(role, curve, COLORS[role], 2) for role, curve in self.current]
        while len(self.pool) < len(styled):
            self.pool.append(self.widget.plot())
        for item, (role, curve, color, width) in zip(self.pool, styled):  # the pool may be longer
            self._draw(item, role, curve, color, width)
        for item in self.pool[len(styled):]:
            item.setData([], [])
            item.hide()
        self.legend.setText("<br>".join(
            f'<span style="color:{color}">{SYMBOLS.get(role, "━━")}</span> {curve.label}'
            for role, curve, color, _ in styled) or " ")
        label, unit = axis_label([c.spectrum.in_nm for c in self.curves()])
        self.widget.setLabel("bottom", label, units=unit or None)

    @staticmethod
    def _draw(item: pg.PlotDataItem, role: str, curve: Curve, color: str, width: int) -> None:
        x, y = curve.spectrum.positions, curve.spectrum.values
        if role == HRMSI:
            item.setData(x, y, pen=None, symbol="o", symbolSize=9, symbolBrush=color, symbolPen="k", name=curve.label)
        else:
            style = Qt.PenStyle.DashLine if role == REFERENCE else Qt.PenStyle.SolidLine
            item.setData(x, y, pen=pg.mkPen(color, width=width, style=style), symbol=None, name=curve.label)
        item.show()

    def _hover(self, position: QPointF) -> None:
        """Show the x (nm or band) and value under the pointer."""
        box = self.widget.getPlotItem().vb
        if not self.widget.sceneBoundingRect().contains(position) or not self.curves():
            return
        point = box.mapSceneToView(position)
        _, unit = axis_label([c.spectrum.in_nm for c in self.curves()])
        self.readout.setText(f"x = {point.x():.1f} {unit}   {tr('value')} = {point.y():.4g}")
