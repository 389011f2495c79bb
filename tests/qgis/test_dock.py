# SPDX-License-Identifier: GPL-2.0-or-later
"""The dock, offscreen: clicks on a QgsMapCanvas plot GDAL's pixels, pinning and CSV export, the fusion task
(progress, result in true colour, cancel), errors in the message bar, settings kept."""
from __future__ import annotations

import csv
import time

import numpy as np
import pytest
from osgeo import gdal

from .conftest import HR_GT, WAVELENGTHS, smooth_reference

pytestmark = pytest.mark.qgis
qgis_core = pytest.importorskip("qgis.core")
qgis_gui = pytest.importorskip("qgis.gui")
from qgis.PyQt import sip  # noqa: E402
from qgis.PyQt.QtCore import QEvent, QPoint, Qt  # noqa: E402

WGS84 = qgis_core.QgsCoordinateReferenceSystem("EPSG:4326")
UTM32 = qgis_core.QgsCoordinateReferenceSystem("EPSG:32632")


def wait_for(condition, seconds: float = 30.0) -> None:
    """Process Qt events until ``condition()`` holds (fails after ``seconds``)."""
    app = qgis_core.QgsApplication.instance()
    end = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < end, "timed out"
        app.processEvents()
        time.sleep(0.01)


@pytest.fixture
def scene(make_pair, make_raster):
    """LRHSI 8 x 8 (20 m), HRMSI 16 x 16 (10 m), reference and 'fused' 16 x 16 (nodata at the first pixel)."""
    lr, hr = make_pair(8)
    reference = make_raster(data=smooth_reference(16, 16), name="reference.tif", wavelengths_nm=WAVELENGTHS,
                            geotransform=HR_GT)
    fused = make_raster(data=smooth_reference(16, 16) * 1.1, name="fused.tif", wavelengths_nm=WAVELENGTHS,
                        geotransform=HR_GT, nodata=-1.0)
    return {"lrhsi": lr, "hrmsi": hr, "reference": reference, "fused": fused}


@pytest.fixture
def dock(qgis_app, scene):
    """A CoFusionDock on a 400 x 400 canvas in WGS 84 (layers are in UTM 32N) showing the scene."""
    from cofusion.cofusion_qgis.dock import CoFusionDock

    project = qgis_core.QgsProject.instance()
    layers = {role: qgis_core.QgsRasterLayer(str(path), role) for role, path in scene.items()}
    project.addMapLayers(list(layers.values()))
    canvas = qgis_gui.QgsMapCanvas()
    canvas.resize(400, 400)
    canvas.setDestinationCrs(WGS84)
    canvas.setLayers(list(layers.values()))
    canvas.setExtent(to_canvas(qgis_core.QgsRectangle(HR_GT[0], HR_GT[3] - 160, HR_GT[0] + 160, HR_GT[3])))
    bar = qgis_gui.QgsMessageBar()
    widget = CoFusionDock(canvas, bar)
    widget.fusion.lrhsi.setLayer(layers["lrhsi"])
    widget.fusion.hrmsi.setLayer(layers["hrmsi"])
    widget.fusion.reference.setLayer(layers["reference"])
    widget.spectra.set_fused(layers["fused"])
    widget.bar = bar
    yield widget
    widget.unload()
    project.removeAllMapLayers()
    for item in (widget, canvas, bar):  # now, not at interpreter exit after the application is gone
        sip.delete(item)


def to_canvas(geometry):
    """A UTM 32N point or rectangle in the canvas CRS (WGS 84)."""
    return qgis_core.QgsCoordinateTransform(UTM32, WGS84, qgis_core.QgsProject.instance()).transform(geometry)


def click(dock, col: float, row: float) -> None:
    """Activate the inspector and click (press and release) on the canvas at HR pixel (col, row) centre."""
    canvas = dock.spectra.canvas
    dock.spectra.inspect_button.setChecked(True)
    assert canvas.mapTool() is dock.spectra.tool
    point = to_canvas(qgis_core.QgsPointXY(HR_GT[0] + (col + 0.5) * 10, HR_GT[3] - (row + 0.5) * 10))
    pixel = canvas.getCoordinateTransform().transform(point)
    position = QPoint(round(pixel.x()), round(pixel.y()))
    for kind in (QEvent.MouseButtonPress, QEvent.MouseButtonRelease):
        event = qgis_gui.QgsMapMouseEvent(canvas, kind, position, Qt.LeftButton, Qt.LeftButton)
        (canvas.mapTool().canvasPressEvent if kind == QEvent.MouseButtonPress
         else canvas.mapTool().canvasReleaseEvent)(event)


def plotted(dock) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The curves on the plot by legend name: (x, y)."""
    return {item.name(): item.getData() for item in dock.spectra.plot.items()}


def gdal_pixel(path, col: int, row: int) -> np.ndarray:
    return gdal.Open(str(path)).ReadAsArray(col, row, 1, 1)[:, 0, 0]


def test_click_plots_gdal_s_pixels_of_every_layer(dock, scene):
    click(dock, 5, 3)
    curves = plotted(dock)
    assert len(curves) == 4, dock.spectra.message.text()
    by_role = {name.split(" @ ")[0]: data for name, data in curves.items()}
    for role, col, row in (("fused", 5, 3), ("reference", 5, 3), ("hrmsi", 5, 3), ("lrhsi", 2, 1)):
        x, y = by_role[role]
        np.testing.assert_array_equal(y, gdal_pixel(scene[role], col, row))
    np.testing.assert_array_equal(by_role["fused"][0], WAVELENGTHS)
    np.testing.assert_array_equal(by_role["hrmsi"][0], [1, 2, 3])  # no wavelengths: band numbers
    axes = dock.spectra.plot.widget.getPlotItem()  # nm and band numbers on axes of their own, never mixed
    assert (axes.getAxis("bottom").labelText, axes.getAxis("bottom").labelUnits) == ("Wavelength", "nm")
    assert axes.getAxis("top").isVisible() and axes.getAxis("top").labelText == "Band number"
    assert "SAM" in dock.spectra.comparison.text() and "RMSE" in dock.spectra.comparison.text()


def test_outside_and_nodata_say_so_instead_of_plotting(dock):
    click(dock, 0, 0)  # nodata in the fused raster only
    assert "fused.tif is nodata" in dock.spectra.message.text()
    assert not any(name.startswith("fused") for name in plotted(dock))
    click(dock, 20, 3)  # east of every raster
    assert plotted(dock) == {} and "outside" in dock.spectra.message.text()


def test_pin_and_export_csv(dock, tmp_path):
    click(dock, 5, 3)
    dock.spectra.pin_button.click()
    click(dock, 9, 12)
    assert len(plotted(dock)) == 8
    out = tmp_path / "curves.csv"
    dock.spectra.export(str(out))
    rows = list(csv.DictReader(out.open()))
    assert len({r["curve"] for r in rows}) == 8 and len(rows) == 2 * (3 * 5 + 3)
    dock.spectra.clear_button.click()
    assert plotted(dock) == {}


def _fuse_in_four_tiles(dock, make_pair, model) -> None:
    """Put a 32 x 32 LR pair in the dock's pickers, with tiles of 32 output pixels (4 tiles: progress has steps to
    show, and a cancel has tiles to stop between), ``model`` and the CPU."""
    lr, hr = make_pair(32)
    for slot, path in ((dock.fusion.lrhsi, lr), (dock.fusion.hrmsi, hr)):
        layer = qgis_core.QgsRasterLayer(str(path), path.stem)
        qgis_core.QgsProject.instance().addMapLayer(layer)
        slot.setLayer(layer)
    dock.fusion.tile.setValue(32)
    dock.fusion.overlap.setValue(0)
    dock.fusion.model.setFilePath(str(model))
    dock.fusion.device.setCurrentText("cpu")


def test_fuse_task_reports_progress_and_adds_a_true_colour_result(dock, make_pair, model, tmp_path, monkeypatch):
    from cofusion.cofusion_qgis.fuse_task import FuseTask

    _fuse_in_four_tiles(dock, make_pair, model)
    dock.fusion.batch.setValue(1)
    dock.fusion.output.setFilePath(str(tmp_path / "result.tif"))
    reported, shown = [], []  # what the core reports to the task; what the panel's bar shows
    report = FuseTask._report
    monkeypatch.setattr(FuseTask, "_report", lambda task, fraction, message: (reported.append((fraction, message)),
                                                                              report(task, fraction, message)))
    dock.fusion.progress.valueChanged.connect(shown.append)
    dock.fusion.start()
    task = dock.fusion.task
    assert isinstance(task, FuseTask) and not dock.fusion.fuse_button.isEnabled()
    wait_for(lambda: dock.fusion.task is None)
    assert dock.fusion.progress.value() == 100, dock.bar.currentItem().text()
    # the core's progress reaches the task tile by tile, rising from 0 to 1; the bar rises to 100 (QGIS passes a
    # task's progress on at most every 100 ms or so, so the bar of a run this short may skip the steps between)
    fractions = [fraction for fraction, _message in reported]
    assert fractions == sorted(fractions) and fractions[0] == 0 and fractions[-1] == 1, reported
    assert [m for _f, m in reported if m.startswith("tile ")] == [f"tile {k} of 4" for k in range(1, 5)]
    assert shown == sorted(shown) and shown[-1] == 100, shown
    layer = dock.spectra.fused.currentLayer()
    assert layer.source() == str(tmp_path / "result.tif")
    renderer = layer.renderer()
    assert (renderer.redBand(), renderer.greenBand(), renderer.blueBand()) == (3, 2, 1)  # 650, 550, 450 nm
    assert renderer.redContrastEnhancement() is not None


def test_cancel_stops_the_task_and_leaves_no_file(qgis_app, make_pair, model, tmp_path):
    from cofusion.cofusion_qgis.fuse_task import FuseTask
    from cofusion.core.service import FusionRequest

    lr, hr = make_pair(32)
    out = tmp_path / "fused.tif"
    task = FuseTask(FusionRequest(str(lr), str(hr), str(out), model=str(model), device="cpu", tile=32, overlap=0))
    outcome = []
    task.canceled.connect(lambda: outcome.append("canceled"))
    task.fused.connect(outcome.append)
    task.progressChanged.connect(lambda percent: percent > 0 and task.cancel())
    qgis_core.QgsApplication.taskManager().addTask(task)
    wait_for(lambda: outcome)
    assert outcome == ["canceled"] and list(tmp_path.glob("*fused*")) == []
    assert task.description() == "CoFusion: fusing: canceled, no file written"  # what QGIS's task list shows
    assert task.status() == qgis_core.QgsTask.Terminated


def test_the_dock_shows_a_cancel_as_a_cancel(dock, make_pair, model, tmp_path):
    _fuse_in_four_tiles(dock, make_pair, model)
    dock.fusion.output.setFilePath(str(tmp_path / "cancelled.tif"))
    dock.fusion.start()
    dock.fusion.task.progressChanged.connect(lambda percent: percent > 0 and dock.fusion.cancel())
    wait_for(lambda: dock.fusion.task is None)
    assert dock.fusion.status.text() == "Canceled: no file was written."
    assert dock.fusion.progress.value() == 0 and dock.fusion.fuse_button.isEnabled()
    assert list(tmp_path.glob("cancelled*")) == []


def test_errors_go_to_the_message_bar_with_the_core_message(dock, tmp_path):
    dock.fusion.model.setFilePath(str(tmp_path / "absent.safetensors"))
    dock.fusion.start()
    wait_for(lambda: dock.fusion.task is None)
    assert "absent.safetensors" in dock.bar.currentItem().text() and dock.fusion.fuse_button.isEnabled()


def test_settings_are_kept(dock, qgis_app):
    from cofusion.cofusion_qgis.fuse_panel import FusePanel

    dock.fusion.batch.setValue(7)
    dock.fusion.device.setCurrentText("cpu")
    dock.fusion.save()
    again = FusePanel(qgis_gui.QgsMessageBar())
    try:
        assert again.batch.value() == 7 and again.device.currentText() == "cpu"
        assert again.reference.currentLayer() is dock.fusion.reference.currentLayer()
    finally:
        again.unload()
        sip.delete(again)


def test_the_fuse_task_keeps_the_cores_warnings_for_the_message_log(qgis_app, make_pair, model, tmp_path):
    from osgeo import gdal

    from cofusion.cofusion_qgis.fuse_task import FuseTask
    from cofusion.core.service import FusionRequest

    lr, hr = make_pair(32)
    ds = gdal.Open(str(lr), gdal.GA_Update)
    for band in range(ds.RasterCount):  # band 2 flagged bad: the model's band 2 is filled in and written nodata
        ds.GetRasterBand(band + 1).SetMetadataItem("bbl", "0" if band == 1 else "1")
    ds = None
    task = FuseTask(FusionRequest(str(lr), str(hr), str(tmp_path / "fused.tif"), model=str(model), device="cpu",
                                  tile=32, overlap=0))
    logged = []
    qgis_core.QgsApplication.messageLog().messageReceived.connect(
        lambda message, tag, level: tag == "CoFusion" and logged.append(message))
    assert task.run()  # the worker's work, here on the calling thread
    task.finished(True)
    assert any("bad bands, left out" in w and "band 2" in w for w in task.warnings), task.warnings
    assert any("filled in by interpolation" in w for w in task.warnings)
    assert logged[-len(task.warnings):] == task.warnings
