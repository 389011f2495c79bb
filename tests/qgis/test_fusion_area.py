# SPDX-License-Identifier: GPL-2.0-or-later
"""The dock fuses the whole scene, the map extent or the selected features' extent, and copies the same fusion as a
qgis_process command that gives the same pixels."""
from __future__ import annotations

import shlex

import numpy as np
import pytest

from cofusion.core.window import Window

from .conftest import HR_GT

pytestmark = pytest.mark.qgis
qgis_core = pytest.importorskip("qgis.core")
qgis_gui = pytest.importorskip("qgis.gui")
UTM = "EPSG:32632"


@pytest.fixture
def panel(plugin, make_pair, model, tmp_path):
    """A panel on a 32 x 32 LRHSI / 64 x 64 HRMSI pair (10 m output pixels), with a canvas in UTM 32N."""
    from cofusion.cofusion_qgis.fuse_panel import FusePanel

    lr, hr = make_pair(32)
    project = qgis_core.QgsProject.instance()
    project.removeAllMapLayers()
    layers = [qgis_core.QgsRasterLayer(str(path), path.stem) for path in (lr, hr)]
    project.addMapLayers(layers)
    canvas = qgis_gui.QgsMapCanvas()
    canvas.resize(200, 200)
    canvas.setDestinationCrs(qgis_core.QgsCoordinateReferenceSystem(UTM))
    qgis_core.QgsSettings().remove("CoFusion/dock")
    bar = qgis_gui.QgsMessageBar()
    widget = FusePanel(bar, canvas)
    widget.lrhsi.setLayer(layers[0])
    widget.hrmsi.setLayer(layers[1])
    widget.model.setFilePath(str(model))
    widget.device.setCurrentText("cpu")
    widget.output.setFilePath(str(tmp_path / "dock.tif"))
    yield widget
    widget.unload()
    project.removeAllMapLayers()
    from qgis.PyQt import sip

    for item in (widget, canvas, bar):  # now, not at interpreter exit after the application is gone
        sip.delete(item)


def _choose(panel, key: str) -> None:
    panel.area.setCurrentIndex(panel.area.findData(key))


def test_the_whole_scene_has_no_region(panel):
    _choose(panel, "whole")
    assert panel.request().region is None


def test_the_map_extent_becomes_the_output_pixels_under_it(panel):
    x0, y0 = HR_GT[0], HR_GT[3]
    panel.canvas.setExtent(qgis_core.QgsRectangle(x0 + 100, y0 - 300, x0 + 300, y0 - 100))
    _choose(panel, "map")
    region = panel.request().region
    extent = panel.canvas.extent()  # the canvas keeps its aspect ratio: it may show a little more
    expected = Window(int(np.floor((extent.xMinimum() - x0) / 10)), int(np.floor((y0 - extent.yMaximum()) / 10)),
                      0, 0)
    assert (region.col, region.row) == (max(0, expected.col), max(0, expected.row))
    assert region.col_end == min(64, int(np.ceil((extent.xMaximum() - x0) / 10)))
    assert region.row_end == min(64, int(np.ceil((y0 - extent.yMinimum()) / 10)))


def test_the_selected_polygons_extent_is_fused_and_no_selection_says_so(panel):
    x0, y0 = HR_GT[0], HR_GT[3]
    layer = qgis_core.QgsVectorLayer(f"Polygon?crs={UTM}", "aoi", "memory")
    feature = qgis_core.QgsFeature()
    feature.setGeometry(qgis_core.QgsGeometry.fromRect(qgis_core.QgsRectangle(x0 + 50, y0 - 200, x0 + 205, y0 - 40)))
    layer.dataProvider().addFeatures([feature])
    qgis_core.QgsProject.instance().addMapLayer(layer)
    _choose(panel, "selection")
    with pytest.raises(qgis_core.QgsProcessingException, match="No feature is selected"):
        panel.request()
    layer.selectAll()
    assert panel.request().region == Window(5, 4, 16, 16)  # columns 5..20 (x 50..205), rows 4..19 (y -40..-200)


def test_the_copied_command_makes_the_same_pixels(panel, run, tmp_path):
    from cofusion.core.raster import read_raster
    from cofusion.core.service import fuse

    x0, y0 = HR_GT[0], HR_GT[3]
    panel.canvas.setExtent(qgis_core.QgsRectangle(x0 + 100, y0 - 400, x0 + 500, y0 - 100))
    _choose(panel, "map")
    command = panel.copy_command()
    from qgis.PyQt.QtWidgets import QApplication

    assert QApplication.clipboard().text() == command
    words = shlex.split(command)
    assert words[:4] == ["qgis_process", "run", "cofusion:fuse", "--"]
    parameters = dict(word.split("=", 1) for word in words[4:])
    assert parameters["REGION"].endswith(f"[{UTM}]") and parameters["OUTPUT"] == str(tmp_path / "dock.tif")
    parameters["OUTPUT"] = str(tmp_path / "from_command.tif")
    run("fuse", parameters)
    request = panel.request()
    fuse(request)
    assert read_raster(parameters["OUTPUT"]).tobytes() == read_raster(request.out).tobytes()
    assert read_raster(request.out).shape[1:] == (request.region.height, request.region.width)
