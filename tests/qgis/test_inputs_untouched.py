# SPDX-License-Identifier: GPL-2.0-or-later
"""Inputs given as files are never modified: not by loading them as QGIS layers (QGIS computes a new layer's
statistics for its default style and GDAL writes them into a VRT's own file), not by an output that is a VRT's
source."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from osgeo import gdal

from .conftest import smooth_reference

pytestmark = pytest.mark.qgis
qgis_core = pytest.importorskip("qgis.core")


def _vrt(source: Path) -> Path:
    vrt = source.with_suffix(".vrt")  # gdal_translate -of VRT: keeps the band metadata (wavelengths)
    assert gdal.Translate(str(vrt), str(source), format="VRT") is not None
    return vrt


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture
def vrt_pair(make_pair, tmp_path) -> tuple[Path, Path]:
    lr, hr = make_pair(12)
    return _vrt(lr), _vrt(hr)


def test_algorithms_leave_vrt_inputs_and_their_sources_byte_for_byte(run, vrt_pair, model, make_raster, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    before = _digest(tmp_path)
    lr, hr = (str(p) for p in vrt_pair)
    fused = run("fuse_classic", {"LRHSI": lr, "HRMSI": hr, "METHOD": "gsa", "OUTPUT": str(out / "gsa.tif")})
    run("fuse", {"LRHSI": lr, "HRMSI": hr, "MODEL": str(model), "OUTPUT": str(out / "net.tif"), "TILE_SIZE": 32,
                 "OVERLAP": 0, "DEVICE": "cpu"})
    run("assess_qnr", {"FUSED": fused["OUTPUT"], "LRHSI": lr, "HRMSI": hr, "OUTPUT_TABLE": str(out / "qnr.csv")})
    run("align_to_grid", {"LRHSI": lr, "HRMSI": hr, "OUTPUT": str(out / "aligned.tif")})
    assert _digest(tmp_path) == before
    assert gdal.Info(lr, format="json")["bands"][0].get("metadata", {}).get("", {}).get("STATISTICS_MEAN") is None


def test_reference_vrt_is_left_as_it_was_by_simulation(run, make_raster, tmp_path):
    from .conftest import HR_GT, WAVELENGTHS

    reference = _vrt(make_raster(data=smooth_reference(16, 16), name="reference.tif", wavelengths_nm=WAVELENGTHS,
                                 geotransform=HR_GT))
    out = tmp_path / "out"
    out.mkdir()
    before = _digest(tmp_path)
    run("simulate", {"REFERENCE": str(reference), "SRF": "sentinel2a", "SCALE": 2,
                     "OUTPUT_LRHSI": str(out / "lr.tif"), "OUTPUT_HRMSI": str(out / "hr.tif")})
    assert _digest(tmp_path) == before


def test_an_output_over_a_vrt_source_is_refused_and_nothing_changes(run, vrt_pair, tmp_path):
    lr_source = vrt_pair[0].with_suffix(".tif")
    before = _digest(tmp_path)
    with pytest.raises(qgis_core.QgsProcessingException, match=f"read to open the input {vrt_pair[0]}"):
        run("fuse_classic", {"LRHSI": str(vrt_pair[0]), "HRMSI": str(vrt_pair[1]), "METHOD": "gsa",
                             "OUTPUT": str(lr_source)})
    assert _digest(tmp_path) == before
