# SPDX-License-Identifier: GPL-2.0-or-later
"""Processing outputs arrive in the project styled for what they are and named after their inputs, uniquely."""
from __future__ import annotations

import pytest

from .conftest import HR_GT, WAVELENGTHS, smooth_reference

pytestmark = pytest.mark.qgis
qgis_core = pytest.importorskip("qgis.core")


@pytest.fixture
def project(plugin):
    project = qgis_core.QgsProject.instance()
    project.removeAllMapLayers()
    yield project
    project.removeAllMapLayers()


def _load(algorithm: str, parameters: dict) -> dict:
    import processing

    return processing.runAndLoadResults(f"cofusion:{algorithm}", parameters)


def _layers(project) -> dict:
    return {layer.name(): layer for layer in project.mapLayers().values()}


def test_fused_rasters_load_in_true_colour_named_after_their_input_once_per_run(project, make_pair):
    lr, hr = make_pair(12)
    for _run in range(2):
        _load("fuse_classic", {"LRHSI": str(lr), "HRMSI": str(hr), "METHOD": "gsa", "OUTPUT": "TEMPORARY_OUTPUT"})
    layers = _layers(project)
    assert set(layers) == {f"GSA fused – {lr.stem}", f"GSA fused – {lr.stem} (2)"}
    for layer in layers.values():
        renderer = layer.renderer()
        assert renderer.type() == "multibandcolor"
        # 450, 550, 650, 750, 850 nm: red 650 (band 3), green 550 (2), blue 450 (1)
        assert (renderer.redBand(), renderer.greenBand(), renderer.blueBand()) == (3, 2, 1)


def test_a_result_of_an_earlier_run_is_named_by_its_layer(project, make_pair, tmp_path):
    lr, hr = make_pair(12)
    fused = _load("fuse_classic", {"LRHSI": str(lr), "HRMSI": str(hr), "METHOD": "gsa",
                                   "OUTPUT": "TEMPORARY_OUTPUT"})["OUTPUT"]  # a temporary file: OUTPUT.tif
    reference = lr.with_name("ref.tif")
    _load("fuse_classic", {"LRHSI": str(lr), "HRMSI": str(hr), "METHOD": "bicubic", "OUTPUT": str(reference)})
    _load("assess", {"FUSED": fused, "REFERENCE": str(reference), "SCALE": 2, "OUTPUT_TABLE": str(tmp_path / "m.csv"),
                     "OUTPUT_REPORT": str(tmp_path / "r.html"), "OUTPUT_SAM_MAP": "TEMPORARY_OUTPUT"})
    assert f"SAM (degrees) – GSA fused – {lr.stem}" in _layers(project)


def test_the_sam_map_loads_with_a_colour_ramp_and_a_legend(project, run, make_raster, tmp_path):
    reference = make_raster(data=smooth_reference(24, 24), name="reference.tif", wavelengths_nm=WAVELENGTHS,
                            geotransform=HR_GT)
    fused = make_raster(data=smooth_reference(24, 24) * 1.05 + 0.01, name="fused.tif", wavelengths_nm=WAVELENGTHS,
                        geotransform=HR_GT)
    _load("assess", {"FUSED": str(fused), "REFERENCE": str(reference), "SCALE": 2,
                     "OUTPUT_TABLE": str(tmp_path / "m.csv"), "OUTPUT_REPORT": str(tmp_path / "r.html"),
                     "OUTPUT_SAM_MAP": "TEMPORARY_OUTPUT"})
    sam = _layers(project)[f"SAM (degrees) – {fused.stem}"]
    renderer = sam.renderer()
    assert renderer.type() == "singlebandpseudocolor"
    items = renderer.shader().rasterShaderFunction().colorRampItemList()
    assert len(items) >= 2 and len({item.color.name() for item in items}) == len(items)
    assert len(renderer.legendSymbologyItems()) == len(items)
