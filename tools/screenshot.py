# SPDX-License-Identifier: GPL-2.0-or-later
"""Startup script for the QGIS desktop (``qgis --code tools/screenshot.py``, see ``make screenshot``): opens the
sample scene, runs the fusion in the CoFusion dock, clicks a point with the spectral inspector, pins it, clicks a
second one (the spectra view with two pinned points: a colour each, their LR pixels on the map) and saves a
screenshot of the main window; then two more beside it: ``<name>_toolbox.png``, the Processing toolbox searched
for "pansharpening", and ``<name>_processing.png``, a GSA fusion and an assessment's SAM map run from Processing
and loaded as QGIS loads results (true colour; a colour ramp with its legend), named after their input.

Environment: COFUSION_SCREENSHOT (the PNG to write), COFUSION_SAMPLE (the folder of the sample scene),
COFUSION_MODEL (a checkpoint; empty: the bundled model), COFUSION_OUTPUT (the fused GeoTIFF; default: a file in a
new temporary folder). Exits QGIS with status 0 when the PNG is written, 1 on any failure (the reason on stderr).
"""
from __future__ import annotations

import os
import sys
import tempfile
import traceback
from pathlib import Path

import qgis.utils
from qgis.core import QgsPointXY, QgsProject, QgsRasterLayer, QgsRectangle
from qgis.gui import QgsMapMouseEvent
from qgis.PyQt.QtCore import QEvent, QPoint, Qt, QTimer

SAMPLE = Path(os.environ["COFUSION_SAMPLE"])  # qgis --code runs this with exec(): no __file__
SCREENSHOT = Path(os.environ["COFUSION_SCREENSHOT"]).resolve()
#: The inspected points (EPSG:32610, inside the sample scene, in different LR pixels) and the seconds QGIS gets
#: before giving up.
POINTS = (QgsPointXY(560490.0, 4142150.0), QgsPointXY(560250.0, 4142650.0))
TIMEOUT_S = 540
iface = qgis.utils.iface


def fail(message: str) -> None:
    print(f"screenshot: {message}", file=sys.stderr, flush=True)
    os._exit(1)  # noqa: SLF001 (leave QGIS at once, without its exit dialogs)


def guarded(step):
    """``step`` that ends QGIS with status 1 and the traceback when it raises."""
    def run(*args):
        try:
            step(*args)
        except Exception:  # noqa: BLE001
            fail(traceback.format_exc())
    return run


@guarded
def start() -> None:
    """Enable the plugin, open the sample layers in true colour, fill the dock and start the fusion."""
    if "cofusion" not in qgis.utils.active_plugins:
        qgis.utils.loadPlugin("cofusion") and qgis.utils.startPlugin("cofusion")
    plugin = qgis.utils.plugins["cofusion"]
    from cofusion.cofusion_qgis.rendering import apply_true_color
    from cofusion.core.raster import read_info

    layers = {}
    for name in ("hrmsi", "reference", "lrhsi"):
        path = str(SAMPLE / f"{name}.tif")
        layer = QgsRasterLayer(path, name)
        if not layer.isValid():
            fail(f"cannot open {path}")
        apply_true_color(layer, read_info(path).wavelengths_nm)
        layers[name] = QgsProject.instance().addMapLayer(layer)
    for name in ("hrmsi", "reference"):
        QgsProject.instance().layerTreeRoot().findLayer(layers[name].id()).setItemVisibilityChecked(False)
    window = iface.mainWindow()
    window.resize(1280, 800)
    plugin.dock_action.setChecked(True)
    dock = plugin.dock
    window.resizeDocks([dock], [520], Qt.Horizontal)
    dock.fusion.lrhsi.setLayer(layers["lrhsi"])
    dock.fusion.hrmsi.setLayer(layers["hrmsi"])
    dock.fusion.reference.setLayer(layers["reference"])
    dock.fusion.model.setFilePath(os.environ.get("COFUSION_MODEL", ""))
    out = os.environ.get("COFUSION_OUTPUT") or str(Path(tempfile.mkdtemp()) / "fused.tif")
    dock.fusion.output.setFilePath(out)
    dock.fusion.device.setCurrentText("cpu")
    dock.fusion.fused.connect(lambda layer: QTimer.singleShot(1000, lambda: inspect(dock)))
    dock.fusion.start()
    if dock.fusion.task is None:
        fail(f"the fusion did not start: {dock.fusion.message_bar.currentItem().text()}")
    dock.fusion.task.failed.connect(lambda message: fail(f"the fusion failed: {message}"))


@guarded
def inspect(dock) -> None:
    """Zoom to the scene and click ``POINTS`` with the spectral inspector, pinning each."""
    canvas = iface.mapCanvas()
    extent = QgsRectangle(dock.spectra.fused.currentLayer().extent())
    extent.scale(1.05)
    canvas.setExtent(extent)
    canvas.refresh()
    dock.spectra.inspect_button.setChecked(True)
    for point in POINTS:
        pixel = canvas.getCoordinateTransform().transform(point)
        position = QPoint(round(pixel.x()), round(pixel.y()))
        dock.spectra.tool.canvasPressEvent(  # QgsMapToolEmitPoint emits canvasClicked on the press
            QgsMapMouseEvent(canvas, QEvent.Type.MouseButtonPress, position, Qt.MouseButton.LeftButton,
                             Qt.MouseButton.LeftButton))
        if dock.spectra.plot.current is None:
            fail(f"no curve at {point.x()}, {point.y()}: {dock.spectra.message.text()}")
        dock.spectra.pin_button.click()
    if len(dock.spectra.plot.points()) != len(POINTS):
        fail(f"{len(dock.spectra.plot.points())} points pinned instead of {len(POINTS)}")
    scroll = dock.widget().verticalScrollBar()
    scroll.setValue(scroll.maximum())  # the plot, on a screen too small for the whole dock
    QTimer.singleShot(3000, save)


def grab(path: Path) -> None:
    """The main window into the PNG ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not iface.mainWindow().grab().save(str(path), "PNG", 9):
        fail(f"cannot write {path}")
    print(f"screenshot: wrote {path}", flush=True)


@guarded
def save() -> None:
    """Grab the spectra view, then search the toolbox."""
    grab(SCREENSHOT)
    toolbox = qgis.utils.plugins["processing"].toolbox
    toolbox.setVisible(True)
    toolbox.searchBox.setText("pansharpening")
    QTimer.singleShot(2000, show_toolbox)


@guarded
def show_toolbox() -> None:
    """Grab the searched toolbox, then run Processing and show its styled results."""
    grab(SCREENSHOT.with_name(f"{SCREENSHOT.stem}_toolbox.png"))
    import processing

    for layer in QgsProject.instance().mapLayers().values():
        QgsProject.instance().layerTreeRoot().findLayer(layer.id()).setItemVisibilityChecked(False)
    sample = {name: str(SAMPLE / f"{name}.tif") for name in ("lrhsi", "hrmsi", "reference")}
    fused = processing.runAndLoadResults("cofusion:fuse_classic", {
        "LRHSI": sample["lrhsi"], "HRMSI": sample["hrmsi"], "METHOD": "gsa", "OUTPUT": "TEMPORARY_OUTPUT"})
    folder = Path(tempfile.mkdtemp())
    processing.runAndLoadResults("cofusion:assess", {
        "FUSED": fused["OUTPUT"], "REFERENCE": sample["reference"], "SCALE": 4,
        "OUTPUT_TABLE": str(folder / "metrics.csv"), "OUTPUT_REPORT": str(folder / "report.html"),
        "OUTPUT_SAM_MAP": "TEMPORARY_OUTPUT"})
    QTimer.singleShot(3000, show_processing)


@guarded
def show_processing() -> None:
    """Grab the styled Processing results and quit."""
    names = [layer.name() for layer in QgsProject.instance().mapLayers().values()]
    if not any(name.startswith("SAM (degrees)") for name in names):
        fail(f"the SAM map was not loaded: {names}")
    grab(SCREENSHOT.with_name(f"{SCREENSHOT.stem}_processing.png"))
    os._exit(0)  # noqa: SLF001 (QGIS 3.22 may abort while tearing down the Python plugins under Xvfb)


QTimer.singleShot(TIMEOUT_S * 1000, lambda: fail(f"gave up after {TIMEOUT_S} s"))
QTimer.singleShot(2000, start)
