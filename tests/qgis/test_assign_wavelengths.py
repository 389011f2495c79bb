# SPDX-License-Identifier: GPL-2.0-or-later
"""``cofusion:assign_wavelengths`` through processing.run: a sensor's band table given to a raster without
wavelengths, as a GeoTIFF or a VRT, with the refusals as Processing errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from cofusion.core.raster import read_info, read_raster
from cofusion.core.srf import sensor_wavelengths
from cofusion.core.wavelengths import SOURCE_ITEM

pytestmark = pytest.mark.qgis
qgis_core = pytest.importorskip("qgis.core")


@pytest.fixture
def cube(make_raster):
    """make(bands): an Int16 cube with scale 0.0001 and nodata -32768, without wavelengths."""
    def make(bands: int) -> Path:
        data = np.random.default_rng(0).integers(0, 10001, (bands, 5, 6)).astype(np.int16)
        path = make_raster(data=data, nodata=-32768, name=f"cube{bands}.tif")
        ds = gdal.Open(str(path), gdal.GA_Update)
        for i in range(bands):
            ds.GetRasterBand(i + 1).SetScale(0.0001)
        ds = None
        return path

    return make


def test_the_algorithm_sits_with_align_to_grid(plugin):
    registry = qgis_core.QgsApplication.processingRegistry()
    algorithm = registry.algorithmById("cofusion:assign_wavelengths")
    assert algorithm.groupId() == registry.algorithmById("cofusion:align_to_grid").groupId() == "fusion"
    assert algorithm.parameterDefinition("SENSOR").options() == ["enmap", "prisma", "desis", "emit"]


@pytest.mark.parametrize("suffix", [".tif", ".vrt"])
def test_enmap_wavelengths_are_assigned(run, cube, tmp_path, suffix):
    src = cube(224)
    result = run("assign_wavelengths", {"INPUT": str(src), "SENSOR": "enmap", "OUTPUT": str(tmp_path / f"o{suffix}")})
    out = Path(result["OUTPUT"])
    assert out == tmp_path / f"o{suffix}"
    info = read_info(out)
    assert info.wavelengths_nm == pytest.approx(tuple(sensor_wavelengths("enmap")[0]))
    assert info.scale == (0.0001,) * 224 and info.nodata == (-32768.0,) * 224 and info.dtype == "int16"
    np.testing.assert_array_equal(read_raster(out), read_raster(src))
    assert "assigned by CoFusion" in gdal.Open(str(out)).GetMetadataItem(SOURCE_ITEM)


def test_a_band_list_fits_a_partial_cube(run, cube, tmp_path):
    result = run("assign_wavelengths", {"INPUT": str(cube(130)), "SENSOR": "enmap", "BANDS": "B1-B130",
                                        "OUTPUT": str(tmp_path / "first.tif")})
    assert read_info(result["OUTPUT"]).wavelengths_nm == pytest.approx(tuple(sensor_wavelengths("enmap")[0][:130]))


def test_a_count_mismatch_is_a_processing_error_with_both_counts(run, cube, tmp_path):
    with pytest.raises(qgis_core.QgsProcessingException, match="130 bands but 'prisma' gives 234 wavelengths"):
        run("assign_wavelengths", {"INPUT": str(cube(130)), "SENSOR": "prisma", "OUTPUT": str(tmp_path / "o.tif")})
    assert not (tmp_path / "o.tif").exists()


def test_existing_wavelengths_need_overwrite(run, make_raster, tmp_path):
    src = make_raster(bands=3, wavelengths_nm=(500.0, 600.0, 700.0))
    params = {"INPUT": str(src), "SENSOR": "emit", "BANDS": "B1-B3", "OUTPUT": str(tmp_path / "o.vrt")}
    with pytest.raises(qgis_core.QgsProcessingException, match="already has band wavelengths.*OVERWRITE"):
        run("assign_wavelengths", params)
    out = run("assign_wavelengths", {**params, "OVERWRITE": True})["OUTPUT"]
    assert read_info(out).wavelengths_nm == pytest.approx(tuple(sensor_wavelengths("emit")[0][:3]))

