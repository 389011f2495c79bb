# SPDX-License-Identifier: GPL-2.0-or-later
"""core.wavelengths.assign_wavelengths: a spectrometer's band table given to a raster without wavelengths, as a VRT
or a GeoTIFF copy, with pixels, nodata, scale and georeference kept and a note saying where the values came from."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, osr

from cofusion.core.errors import Canceled, InputError, OutputError
from cofusion.core.raster import read_info, read_raster
from cofusion.core.srf import sensor_wavelengths
from cofusion.core.wavelengths import SOURCE_ITEM, SPECTROMETERS, assign_wavelengths, sensor_bands

NODATA = -32768
SCALE = 0.0001


@pytest.fixture
def enmap_like(make_raster):
    """make(bands=224, **kw): an Int16 cube (reflectance x 10000, scale 0.0001, nodata -32768) without wavelengths."""
    def make(bands: int = 224, name: str = "cube.tif", **kwargs) -> Path:
        data = np.random.default_rng(bands).integers(-500, 10001, (bands, 6, 7)).astype(np.int16)
        path = make_raster(data=data, nodata=NODATA, name=name, **kwargs)
        ds = gdal.Open(str(path), gdal.GA_Update)
        for i in range(bands):
            ds.GetRasterBand(i + 1).SetScale(SCALE)
            ds.GetRasterBand(i + 1).SetOffset(0.0)
        ds = None
        return path

    return make


def _raw(path: Path) -> np.ndarray:
    return gdal.Open(str(path)).ReadAsArray()


def _same_crs(a: str, b: str) -> bool:
    """The same CRS (a VRT holds it as WKT1, which drops the datum ensemble's members)."""
    first, second = osr.SpatialReference(), osr.SpatialReference()
    first.ImportFromWkt(a)
    second.ImportFromWkt(b)
    return bool(first.IsSame(second)) and first.GetAuthorityCode(None) == "32632"


def _note(path: Path) -> str:
    return gdal.Open(str(path)).GetMetadataItem(SOURCE_ITEM)


def test_the_spectrometers_are_the_presets_with_band_tables():
    assert SPECTROMETERS == ("enmap", "prisma", "desis", "emit")


@pytest.mark.parametrize("suffix", [".vrt", ".tif"])
def test_enmap_wavelengths_are_assigned_and_everything_else_is_kept(enmap_like, tmp_path, suffix):
    src = enmap_like()
    out = assign_wavelengths(src, "enmap", tmp_path / f"out{suffix}")
    assert out == tmp_path / f"out{suffix}"
    before, after = read_info(src), read_info(out)
    centres, fwhm = sensor_wavelengths("enmap")
    assert before.wavelengths_nm is None
    assert after.wavelengths_nm == pytest.approx(tuple(centres), abs=1e-9)
    assert after.fwhm_nm == pytest.approx(tuple(fwhm), abs=1e-9)
    assert (after.band_count, after.width, after.height, after.dtype) == (224, 7, 6, "int16")
    assert after.geotransform == before.geotransform and _same_crs(after.crs_wkt, before.crs_wkt)
    assert after.nodata == (float(NODATA),) * 224
    assert after.scale == (SCALE,) * 224 and after.offset == (0.0,) * 224
    np.testing.assert_array_equal(_raw(out), _raw(src))                 # raw values
    np.testing.assert_array_equal(read_raster(out), read_raster(src))   # physical values, raw * scale
    assert after.band_names[0] == "B1 (418.2 nm)" and after.band_names[-1].startswith("B224 (")
    ds = gdal.Open(str(out))  # held: a band outliving its dataset crashes GDAL's bindings
    band = ds.GetRasterBand(10)
    assert band.GetMetadataItem("wavelength_units") == "Nanometers"
    assert float(band.GetMetadataItem("CENTRAL_WAVELENGTH_UM", "IMAGERY")) == pytest.approx(centres[9] / 1000)
    assert float(band.GetMetadataItem("FWHM_UM", "IMAGERY")) == pytest.approx(fwhm[9] / 1000)
    assert _note(out) == ("EnMAP band table (resources/srf/enmap_bands.csv), assigned by CoFusion: not read from "
                          "the file")
    assert ds.GetDriver().ShortName == ("VRT" if suffix == ".vrt" else "GTiff")
    ds = band = None
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["cube.tif", f"out{suffix}"])  # no temporary left


def test_a_vrt_refers_to_the_source_and_writes_no_pixels(enmap_like, tmp_path):
    src = enmap_like()
    out = assign_wavelengths(src, "enmap", tmp_path / "out.vrt")
    text = out.read_text()
    assert '<SourceFilename relativeToVRT="1">cube.tif</SourceFilename>' in text
    assert "<Scale>0.0001</Scale>" in text and "<NoDataValue>-32768</NoDataValue>" in text


def test_a_geotiff_copy_is_tiled_and_compressed(enmap_like, tmp_path):
    out = assign_wavelengths(enmap_like(), "enmap", tmp_path / "out.tif")
    structure = gdal.Open(str(out)).GetMetadata("IMAGE_STRUCTURE")
    assert structure["COMPRESSION"] == "DEFLATE" and structure["PREDICTOR"] == "2"


@pytest.mark.parametrize(("sensor", "bands"), [("enmap:B1-B130", None), ("enmap", "B1-B130"),
                                               ("EnMAP : b1-b130", None), ("enmap", "enmap:B1-B130")])
def test_a_file_of_the_first_130_bands_takes_a_band_range(enmap_like, tmp_path, sensor, bands):
    src = enmap_like(130)
    out = assign_wavelengths(src, sensor, tmp_path / "first.vrt", bands=bands)
    centres, fwhm = sensor_wavelengths("enmap")
    info = read_info(out)
    assert info.wavelengths_nm == pytest.approx(tuple(centres[:130]))
    assert info.fwhm_nm == pytest.approx(tuple(fwhm[:130]))
    assert "bands b1-b130" in _note(out).lower()


def test_a_band_list_picks_the_bands_in_the_files_order(enmap_like, tmp_path):
    out = assign_wavelengths(enmap_like(5), "prisma:B3,B1-B2,B100,B234", tmp_path / "picked.tif")
    centres, _ = sensor_wavelengths("prisma")
    assert read_info(out).wavelengths_nm == pytest.approx(tuple(centres[[2, 0, 1, 99, 233]]))
    assert read_info(out).band_names[0].startswith("B3 (")


def test_a_band_count_mismatch_names_both_counts_and_the_band_list(enmap_like, tmp_path):
    src = enmap_like(130)
    with pytest.raises(InputError, match=r"has 130 bands but 'enmap' gives 224 wavelengths") as error:
        assign_wavelengths(src, "enmap", tmp_path / "out.tif")
    assert "'enmap:B1-B130'" in str(error.value)
    assert not (tmp_path / "out.tif").exists() and len(list(tmp_path.iterdir())) == 1


def test_a_subset_of_a_full_cube_says_to_drop_the_band_list(enmap_like, tmp_path):
    with pytest.raises(InputError, match="224 bands but 'enmap:B1-B130' gives 130.*without a band list"):
        assign_wavelengths(enmap_like(), "enmap:B1-B130", tmp_path / "out.vrt")


def test_a_mismatch_names_the_spectrometer_with_that_many_bands(enmap_like, tmp_path):
    with pytest.raises(InputError, match="234 wavelengths.*enmap has 224 bands"):
        assign_wavelengths(enmap_like(), "prisma", tmp_path / "out.vrt")
    with pytest.raises(InputError, match="more bands than the 224 of EnMAP"):
        assign_wavelengths(enmap_like(234, name="p.tif"), "enmap", tmp_path / "out.vrt")


def test_a_file_with_wavelengths_is_refused_unless_overwrite(make_raster, tmp_path):
    src = make_raster(bands=4, wavelengths_nm=(500.0, 600.0, 700.0, 800.0), fwhm_nm=(10.0,) * 4)
    with pytest.raises(InputError, match=r"already has band wavelengths \(500.0-800.0 nm\).*overwrite"):
        assign_wavelengths(src, "enmap:B1-B4", tmp_path / "out.vrt")
    assert not (tmp_path / "out.vrt").exists()
    out = assign_wavelengths(src, "enmap:B1-B4", tmp_path / "out.vrt", overwrite=True)
    centres, fwhm = sensor_wavelengths("enmap")
    assert read_info(out).wavelengths_nm == pytest.approx(tuple(centres[:4]))
    assert read_info(out).fwhm_nm == pytest.approx(tuple(fwhm[:4]))
    assert _note(out).endswith("; they replace the file's own wavelengths (500.0-800.0 nm)")


def test_an_envi_sources_header_wavelengths_are_replaced_on_overwrite(make_raster, tmp_path):
    tif = make_raster(bands=3, wavelengths_nm=(500.0, 600.0, 700.0))
    envi = tmp_path / "cube.bsq"
    gdal.Translate(str(envi), str(tif), format="ENVI")
    ds = gdal.Open(str(envi), gdal.GA_Update)
    ds.SetMetadata({"wavelength": "{500, 600, 700}", "wavelength_units": "Nanometers"}, "ENVI")
    ds = None
    assert read_info(envi).wavelengths_nm == (500.0, 600.0, 700.0)
    out = assign_wavelengths(envi, "desis:B1-B3", tmp_path / "out.tif", overwrite=True)
    assert read_info(out).wavelengths_nm == pytest.approx(tuple(sensor_wavelengths("desis")[0][:3]))
    assert "wavelength" not in (gdal.Open(str(out)).GetMetadata("ENVI") or {})


def test_sensors_and_band_lists_are_checked(enmap_like, tmp_path):
    src = enmap_like(4)
    with pytest.raises(InputError, match="not an imaging spectrometer preset.*enmap, prisma, desis, emit"):
        assign_wavelengths(src, "sentinel2a", tmp_path / "out.vrt")
    with pytest.raises(InputError, match="given twice"):
        assign_wavelengths(src, "enmap:B1-B4", tmp_path / "out.vrt", bands="B1-B4")
    with pytest.raises(InputError, match="names another sensor than 'enmap'"):
        assign_wavelengths(src, "enmap", tmp_path / "out.vrt", bands="prisma:B1-B4")
    with pytest.raises(InputError, match="Unknown band"):
        assign_wavelengths(src, "emit:B1-B3,B999", tmp_path / "out.vrt")
    assert sensor_bands("emit", "all").subset is None and sensor_bands("Emit").spec == "emit"


def test_outputs_are_vrt_or_geotiff_and_never_the_input(enmap_like, tmp_path):
    src = enmap_like(4)
    with pytest.raises(OutputError, match=r"\.vrt .* or \.tif"):
        assign_wavelengths(src, "enmap:B1-B4", tmp_path / "out.png")
    with pytest.raises(OutputError, match="is also an input"):
        assign_wavelengths(src, "enmap:B1-B4", src)
    with pytest.raises(OutputError, match="does not exist"):
        assign_wavelengths(src, "enmap:B1-B4", tmp_path / "missing" / "out.vrt")


def test_an_existing_output_is_replaced_with_its_stale_sidecar(enmap_like, tmp_path):
    out = tmp_path / "out.tif"
    out.write_bytes(b"old")
    Path(f"{out}.aux.xml").write_text("<PAMDataset/>")
    assign_wavelengths(enmap_like(4), "enmap:B1-B4", out)
    assert read_info(out).band_count == 4 and not Path(f"{out}.aux.xml").exists()


def test_cancel_while_copying_leaves_nothing(enmap_like, tmp_path):
    src = enmap_like()
    calls = []

    def cancel() -> bool:
        calls.append(1)
        return len(calls) > 1  # the check before starting passes, the copy's first progress report cancels

    reports = []
    with pytest.raises(Canceled, match="no output file was written"):
        assign_wavelengths(src, "enmap", tmp_path / "out.tif", progress=lambda f, m: reports.append(f),
                           cancel=cancel)
    assert len(calls) >= 2 and sorted(p.name for p in tmp_path.iterdir()) == ["cube.tif"]
    with pytest.raises(Canceled):
        assign_wavelengths(src, "enmap", tmp_path / "out.vrt", cancel=lambda: True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cube.tif"]


def test_progress_ends_at_one(enmap_like, tmp_path):
    reports = []
    assign_wavelengths(enmap_like(), "enmap", tmp_path / "out.tif", progress=lambda f, m: reports.append((f, m)))
    assert reports[-1] == (1.0, "wrote out.tif") and all(0.0 <= f <= 1.0 for f, _ in reports)


@pytest.mark.parametrize("suffix", [".vrt", ".tif"])
def test_an_alpha_band_gets_no_wavelength_and_the_spectral_bands_get_the_table(tmp_path, suffix):
    """The alpha band is not a spectral band (core.raster): the table's bands go onto the others, in order, even
    when the alpha band comes first."""
    src = tmp_path / "alpha_first.tif"
    ds = gdal.GetDriverByName("GTiff").Create(str(src), 6, 5, 4, gdal.GDT_Float32)
    ds.SetGeoTransform((500000.0, 30.0, 0.0, 5000000.0, 0.0, -30.0))
    ds.GetRasterBand(1).SetColorInterpretation(gdal.GCI_AlphaBand)
    ds.GetRasterBand(1).Fill(255)
    for number in (2, 3, 4):
        ds.GetRasterBand(number).Fill(number / 10)
    ds = None
    out = assign_wavelengths(src, "enmap:B1-B3", tmp_path / f"labelled{suffix}")
    info = read_info(out)
    expected = sensor_bands("enmap:B1-B3")
    assert info.band_count == 3 and info.wavelengths_nm == pytest.approx(expected.centres_nm)
    copy = gdal.Open(str(out))
    assert copy.GetRasterBand(1).GetColorInterpretation() == gdal.GCI_AlphaBand
    assert copy.GetRasterBand(1).GetMetadataItem("wavelength") is None
    np.testing.assert_allclose(read_raster(out)[:, 0, 0], [0.2, 0.3, 0.4], rtol=1e-6)
