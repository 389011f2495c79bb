# SPDX-License-Identifier: GPL-2.0-or-later
"""The panel's first guess of the layers comes from their roles, not their order, and the dock opens wide enough."""
from __future__ import annotations

import pytest

from .conftest import HR_GT, WAVELENGTHS, smooth_reference

pytestmark = pytest.mark.qgis
qgis_core = pytest.importorskip("qgis.core")


@pytest.fixture
def layers(plugin, make_pair, make_raster):
    """The reference added first (the top-most layer), then the HRMSI, then the LRHSI."""
    lr, hr = make_pair(8)
    reference = make_raster(data=smooth_reference(16, 16), name="reference.tif", wavelengths_nm=WAVELENGTHS,
                            geotransform=HR_GT)
    project = qgis_core.QgsProject.instance()
    project.removeAllMapLayers()
    made = {}
    for role, path in (("reference", reference), ("hrmsi", hr), ("lrhsi", lr)):
        made[role] = qgis_core.QgsRasterLayer(str(path), role)
        project.addMapLayer(made[role])
    yield made
    project.removeAllMapLayers()


def test_the_guess_takes_roles_from_bands_and_pixel_sizes(layers):
    from cofusion.cofusion_qgis.fuse_panel import suggest

    for order in (["reference", "hrmsi", "lrhsi"], ["lrhsi", "reference", "hrmsi"], ["hrmsi", "lrhsi", "reference"]):
        lrhsi, hrmsi, reference = suggest([layers[role] for role in order])
        assert (lrhsi, hrmsi, reference) == (layers["lrhsi"], layers["hrmsi"], layers["reference"]), order
    assert suggest([layers["reference"], layers["hrmsi"]])[2] is None  # one hyperspectral layer: it is the LRHSI


def test_a_new_panel_fills_its_pickers_by_role(layers):
    from qgis.gui import QgsMessageBar

    from cofusion.cofusion_qgis.fuse_panel import FusePanel

    qgis_core.QgsSettings().remove("CoFusion/dock")
    bar = QgsMessageBar()
    panel = FusePanel(bar)
    assert panel.lrhsi.currentLayer() is layers["lrhsi"]
    assert panel.hrmsi.currentLayer() is layers["hrmsi"]
    assert panel.reference.currentLayer() is layers["reference"]
    panel.unload()


def test_the_dock_opens_wide_enough_for_every_button(qgis_app):
    from qgis.gui import QgsMapCanvas, QgsMessageBar
    from qgis.PyQt.QtWidgets import QPushButton

    from cofusion.cofusion_qgis.dock import CoFusionDock

    canvas, bar = QgsMapCanvas(), QgsMessageBar()
    dock = CoFusionDock(canvas, bar)
    dock.resize(dock.minimumWidth(), 900)
    dock.show()
    qgis_app.processEvents()
    viewport = dock.widget().viewport()
    for button in dock.findChildren(QPushButton):
        if button.isVisibleTo(dock):
            right = button.mapTo(viewport, button.rect().topRight()).x()
            assert right <= viewport.width(), (button.text(), right, viewport.width())
    dock.unload()


def test_the_panel_says_what_the_model_is_and_whether_it_fits(plugin, make_pair, model):
    from qgis.gui import QgsMessageBar

    from cofusion.cofusion_qgis.fuse_panel import FusePanel

    repo_sample = __import__("pathlib").Path(__file__).resolve().parents[2] / "resources" / "sample"
    project = qgis_core.QgsProject.instance()
    project.removeAllMapLayers()
    sample = [qgis_core.QgsRasterLayer(str(repo_sample / name), name) for name in ("lrhsi.tif", "hrmsi.tif")]
    project.addMapLayers(sample)
    qgis_core.QgsSettings().remove("CoFusion/dock")
    bar = QgsMessageBar()
    panel = FusePanel(bar)
    panel.lrhsi.setLayer(sample[0])
    panel.hrmsi.setLayer(sample[1])
    text = panel.show_model_info()
    assert text.startswith("The bundled demo model") and "198 hyperspectral bands" in text and "x4" in text
    assert text.endswith("It fits this pair.") and panel.model_info.text() == text
    panel.model.setFilePath(str(model))  # 5 + 3 bands at x2: does not fit the sample, and says why and what to do
    text = panel.model_info.text()
    assert "5 hyperspectral bands (450-850 nm) + 3 multispectral" in text and "does not fit this pair" in text
    assert "Train CoFusion model, mode pair" in text
    panel.unload()
    project.removeAllMapLayers()
