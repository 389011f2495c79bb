# SPDX-License-Identifier: GPL-2.0-or-later
"""core.raster: reading info, pixels and wavelengths from every convention, and the atomic GeoTIFF writer."""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, osr

from cofusion.core import raster
from cofusion.core.errors import Canceled, InputError, OutputError
from cofusion.core.raster import (
    PIXEL_GEOTRANSFORM,
    RasterReader,
    RasterWriter,
    read_info,
    read_raster,
    write_raster,
)
from cofusion.core.window import Window

GT = (500000.0, 30.0, 0.0, 5000000.0, 0.0, -30.0)


def _utm_wkt(epsg: int = 32632) -> str:
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    return srs.ExportToWkt()


def _same_crs(wkt_a: str, wkt_b: str) -> bool:
    a, b = osr.SpatialReference(), osr.SpatialReference()
    a.ImportFromWkt(wkt_a)
    b.ImportFromWkt(wkt_b)
    return bool(a.IsSame(b))


def _gtiff(path: Path, bands: int, band_items=None, imagery_items=None, dataset_items=None,
           envi_domain=None) -> Path:
    """A float32 GeoTIFF 8 x 8 whose metadata are set item by item (lists: one dict per band)."""
    ds = gdal.GetDriverByName("GTiff").Create(str(path), 8, 8, bands, gdal.GDT_Float32)
    for i in range(bands):
        band = ds.GetRasterBand(i + 1)
        band.Fill(float(i))
        for key, value in (band_items[i] if band_items else {}).items():
            band.SetMetadataItem(key, value)
        for key, value in (imagery_items[i] if imagery_items else {}).items():
            band.SetMetadataItem(key, value, "IMAGERY")
    for key, value in (dataset_items or {}).items():
        ds.SetMetadataItem(key, value)
    if envi_domain:
        ds.SetMetadata(envi_domain, "ENVI")
    ds = None
    return path


# ------------------------------------------------------------------------------------------ info and pixels


def test_read_info_describes_a_synthetic_raster(make_raster):
    wl = [450.0, 560.0, 665.0, 842.0]
    path = make_raster(4, 12, 20, dtype="uint16", geotransform=GT, nodata=0, wavelengths_nm=wl,
                       fwhm_nm=[20, 35, 30, 115])
    info = read_info(path)
    assert (info.width, info.height, info.band_count) == (20, 12, 4)
    assert info.geotransform == GT
    assert _same_crs(info.crs_wkt, _utm_wkt())
    assert info.dtype == "uint16"
    assert info.nodata == (0.0,) * 4
    assert info.wavelengths_nm == pytest.approx(wl)
    assert info.fwhm_nm == pytest.approx([20, 35, 30, 115])
    assert info.band_names == ("band 1", "band 2", "band 3", "band 4")
    assert info.pixel_size == (30.0, 30.0)
    assert info.window == Window(0, 0, 20, 12)
    assert info.path == str(path)


def test_read_info_without_crs_geotransform_or_wavelengths(make_raster):
    path = make_raster(2, 5, 6, epsg=None, geotransform=PIXEL_GEOTRANSFORM)
    info = read_info(path)
    assert info.crs_wkt == ""
    assert info.geotransform == PIXEL_GEOTRANSFORM
    assert info.wavelengths_nm is None and info.fwhm_nm is None
    assert info.nodata == (None, None)


def test_read_returns_float32_bands_of_a_window(make_raster):
    data = np.arange(3 * 10 * 12, dtype=np.int16).reshape(3, 10, 12)
    with RasterReader(make_raster(data=data)) as reader:
        out = reader.read(Window(2, 3, 5, 4), bands=[2, 0])
    assert out.dtype == np.float32 and out.shape == (2, 4, 5)
    np.testing.assert_array_equal(out, data[[2, 0], 3:7, 2:7])


def test_read_raster_returns_the_whole_raster(make_raster):
    data = np.random.default_rng(1).random((3, 7, 9)).astype(np.float32)
    np.testing.assert_array_equal(read_raster(make_raster(data=data)), data)


def test_read_valid_masks_nodata_and_non_finite_pixels(make_raster):
    data = np.ones((3, 4, 5), dtype=np.float32)
    data[1, 2, 3] = np.nan   # one band not finite
    data[2, 1, 1] = -9999.0  # one band nodata
    data[0, 3, 4] = np.inf
    with RasterReader(make_raster(data=data)) as reader:
        reader_nodata_free = reader.read_valid(reader.info.window)[1]
    path = make_raster(data=data, nodata=-9999.0)  # also puts nodata at (0, 0)
    with RasterReader(path) as reader:
        values, valid = reader.read_valid(reader.info.window)
    expected = np.ones((4, 5), dtype=bool)
    expected[2, 3] = expected[1, 1] = expected[3, 4] = expected[0, 0] = False
    np.testing.assert_array_equal(valid, expected)
    assert values.shape == (3, 4, 5) and values.dtype == np.float32
    assert reader_nodata_free[1, 1] and not reader_nodata_free[2, 3]  # -9999 is data where it is not nodata


def test_read_valid_compares_integer_nodata(make_raster):
    path = make_raster(2, 3, 3, dtype="uint16", nodata=65535)
    with RasterReader(path) as reader:
        _, valid = reader.read_valid(reader.info.window)
    assert not valid[0, 0] and valid.sum() == 8


@pytest.mark.parametrize("window", [Window(-1, 0, 2, 2), Window(0, 0, 9, 2), Window(5, 5, 4, 4),
                                    Window(0, 0, 0, 3)])
def test_read_rejects_a_window_outside_the_raster(make_raster, window):
    with RasterReader(make_raster(1, 8, 8)) as reader, pytest.raises(InputError, match="not inside"):
        reader.read(window)


@pytest.mark.parametrize("bands", [[3], [-1], []])
def test_read_rejects_bad_band_indices(make_raster, bands):
    with RasterReader(make_raster(3, 4, 4)) as reader, pytest.raises(InputError, match="band indices"):
        reader.read(Window(0, 0, 4, 4), bands)


def test_missing_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_info(tmp_path / "nope.tif")


def test_a_file_gdal_cannot_read_is_an_input_error(tmp_path):
    path = tmp_path / "notes.tif"
    path.write_text("this is not an image")
    with pytest.raises(InputError, match="not a raster GDAL can read"):
        read_info(path)


def test_a_truncated_file_fails_on_read_with_an_input_error(tmp_path):
    path = tmp_path / "cut.tif"
    write_raster(path, np.random.default_rng(0).random((3, 300, 300)).astype(np.float32))
    os.truncate(path, path.stat().st_size // 2)
    with RasterReader(path) as reader, pytest.raises(InputError, match="truncated or corrupt"):
        reader.read(reader.info.window)


@pytest.mark.parametrize("exceptions_on", [False, True])
def test_errors_are_input_errors_in_either_gdal_exception_mode(tmp_path, exceptions_on):
    path = tmp_path / "junk.tif"
    path.write_bytes(b"\x00" * 100)
    was_on = gdal.GetUseExceptions()
    (gdal.UseExceptions if exceptions_on else gdal.DontUseExceptions)()
    try:
        with pytest.raises(InputError, match="not a raster GDAL can read"):
            read_info(path)
    finally:
        (gdal.UseExceptions if was_on else gdal.DontUseExceptions)()
    assert gdal.GetUseExceptions() == was_on


@pytest.mark.parametrize("exceptions_on", [False, True])
def test_a_gdal_message_of_several_lines_becomes_one_line(exceptions_on):
    """GDAL 3.10 (Debian 13, QGIS 3.40) appends the errors behind an error as lines "May be caused by: ..."."""
    def fail():
        gdal.Error(gdal.CE_Failure, 1, "band 1: IReadBlock failed.\nMay be caused by: TIFFReadEncodedStrip() "
                                       "failed.\nMay be caused by: Read error at scanline 4.")
        return None

    was_on = gdal.GetUseExceptions()
    (gdal.UseExceptions if exceptions_on else gdal.DontUseExceptions)()
    try:
        with pytest.raises(InputError) as caught:
            raster._gdal(fail, InputError, "reading a.tif", "check it")
    finally:
        (gdal.UseExceptions if was_on else gdal.DontUseExceptions)()
    assert str(caught.value) == ("reading a.tif: band 1: IReadBlock failed; May be caused by: TIFFReadEncodedStrip() "
                                 "failed; May be caused by: Read error at scanline 4. check it.")


# ----------------------------------------------------------------------------------------------- wavelengths


def test_shared_scenes_report_wavelengths_in_nm(shared_data):
    info = read_info(shared_data / "aviris_jasper_ridge.tif")
    assert info.band_count == 198 and len(info.wavelengths_nm) == 198 and len(info.fwhm_nm) == 198
    # AVIRIS covers 366-2496 nm; the 198 kept channels start near 395 nm and end near 2448 nm.
    assert 360 < info.wavelengths_nm[0] < 420 and 2400 < info.wavelengths_nm[-1] < 2500
    assert np.all(np.diff(info.wavelengths_nm) > 0)
    assert all(5 < f < 20 for f in info.fwhm_nm)
    cave = read_info(shared_data / "cave_balloons.tif")
    assert cave.wavelengths_nm == pytest.approx(np.arange(400, 591, 10))
    assert cave.crs_wkt == "" and cave.dtype == "uint16"


def test_enmap_style_micrometres_come_back_in_nm(tmp_path):
    wl_um = np.linspace(0.4187, 2.4459, 224)
    items = [{"wavelength": f"{w:.6f}", "wavelength_units": "Micrometers", "fwhm": "0.0081"} for w in wl_um]
    info = read_info(_gtiff(tmp_path / "enmap.tif", 224, band_items=items))
    assert info.wavelengths_nm == pytest.approx(wl_um * 1000, abs=1e-3)
    assert info.fwhm_nm == pytest.approx([8.1] * 224)


@pytest.mark.parametrize(("unit", "factor"), [
    ("Nanometers", 1.0), ("nm", 1.0), ("nanometres", 1.0), ("Micrometers", 1e-3), ("um", 1e-3),
    ("\u00b5m", 1e-3), ("\u03bcm", 1e-3), ("microns", 1e-3), ("Millimeters", 1e-6), ("MM", 1e-6),
])
def test_every_accepted_unit_is_converted_to_nm(tmp_path, unit, factor):
    wl = [490.0, 560.0, 665.0]
    items = [{"wavelength": repr(w * factor), "wavelength_units": unit, "fwhm": repr(10 * factor)} for w in wl]
    info = read_info(_gtiff(tmp_path / "u.tif", 3, band_items=items))
    assert info.wavelengths_nm == pytest.approx(wl)
    assert info.fwhm_nm == pytest.approx([10.0] * 3)


@pytest.mark.parametrize(("values", "factor"), [([450.0, 2400.0], 1.0), ([0.45, 2.4], 1000.0),
                                                ([0.00045, 0.0024], 1e6), ([8.5, 12.0], 1000.0)])
def test_a_missing_unit_is_inferred_from_the_values(tmp_path, values, factor):
    items = [{"wavelength": repr(v)} for v in values]
    info = read_info(_gtiff(tmp_path / "nounit.tif", 2, band_items=items))
    assert info.wavelengths_nm == pytest.approx([v * factor for v in values])


def test_a_dataset_level_unit_applies_to_bands_without_one(tmp_path):
    items = [{"wavelength": "450"}, {"wavelength": "0.56", "wavelength_units": "um"}]
    info = read_info(_gtiff(tmp_path / "mixed.tif", 2, band_items=items,
                            dataset_items={"wavelength_units": "Nanometers"}))
    assert info.wavelengths_nm == pytest.approx([450.0, 560.0])


def test_an_unknown_unit_names_the_unit_and_the_accepted_ones(tmp_path):
    items = [{"wavelength": "5000", "wavelength_units": "Wavenumber"}] * 2
    with pytest.raises(InputError, match=r"'Wavenumber'.*Nanometers.*Micrometers.*Millimeters"):
        read_info(_gtiff(tmp_path / "wn.tif", 2, band_items=items))


def test_a_value_that_is_not_a_number_is_an_input_error(tmp_path):
    items = [{"wavelength": "450"}, {"wavelength": "green"}]
    with pytest.raises(InputError, match="not a number"):
        read_info(_gtiff(tmp_path / "nan.tif", 2, band_items=items))


def test_wavelengths_for_only_some_bands_are_unknown(tmp_path, caplog):
    items = [{"wavelength": "450", "wavelength_units": "nm"}, {}, {"wavelength": "650", "wavelength_units": "nm"}]
    with caplog.at_level(logging.WARNING, logger="cofusion.core.raster"):
        info = read_info(_gtiff(tmp_path / "partial.tif", 3, band_items=items))
    assert info.wavelengths_nm is None
    assert "2 of 3 bands" in caplog.text


def test_envi_file_with_header_wavelengths_and_fwhm(tmp_path, monkeypatch):
    path = tmp_path / "scene.img"
    ds = gdal.GetDriverByName("ENVI").Create(str(path), 6, 5, 3, gdal.GDT_Float32)
    ds.SetMetadata({"wavelength": "{ 0.45, 0.55, 0.65 }", "fwhm": "{ 0.01, 0.012, 0.014 }",
                    "wavelength_units": "Micrometers"}, "ENVI")
    for i in range(3):
        ds.GetRasterBand(i + 1).Fill(i)
    ds = None
    assert "wavelength = { 0.45, 0.55, 0.65 }" in (tmp_path / "scene.hdr").read_text()
    parsed = []
    spectral = pytest.importorskip("spectral")  # core.raster imports it only for an ENVI header
    spy_reader = spectral.envi.read_envi_header
    monkeypatch.setattr(spectral.envi, "read_envi_header", lambda f: parsed.append(f) or spy_reader(f))
    info = read_info(path)
    assert parsed == [str(tmp_path / "scene.hdr")]
    assert info.wavelengths_nm == pytest.approx([450.0, 550.0, 650.0])
    # GDAL exposes no FWHM as band metadata: it comes from the .hdr
    assert info.fwhm_nm == pytest.approx([10.0, 12.0, 14.0])
    np.testing.assert_array_equal(read_raster(path)[:, 0, 0], [0, 1, 2])


def test_envi_header_without_unit_and_wrong_count(tmp_path, caplog):
    path = tmp_path / "scene.img"
    gdal.GetDriverByName("ENVI").Create(str(path), 4, 4, 2, gdal.GDT_Byte)
    (tmp_path / "scene.hdr").write_text(textwrap.dedent("""\
        ENVI
        samples = 4
        lines = 4
        bands = 2
        header offset = 0
        file type = ENVI Standard
        data type = 1
        interleave = bsq
        byte order = 0
        wavelength = { 500.5, 600.25 }
        fwhm = { 5, 6, 7 }
        """))
    with caplog.at_level(logging.WARNING, logger="cofusion.core.raster"):
        info = read_info(path)
    assert info.wavelengths_nm == pytest.approx([500.5, 600.25])
    assert info.fwhm_nm is None and "3 FWHM values for 2 bands" in caplog.text


def test_envi_header_keys_in_other_cases_are_read(tmp_path):
    """Headers written by other tools capitalise keys; GDAL's 'ENVI' domain drops those (why SPy reads the .hdr)."""
    pytest.importorskip("spectral")
    path = tmp_path / "caps.img"
    gdal.GetDriverByName("ENVI").Create(str(path), 4, 4, 3, gdal.GDT_Float32)
    (tmp_path / "caps.hdr").write_text(textwrap.dedent("""\
        ENVI
        samples = 4
        lines = 4
        bands = 3
        header offset = 0
        file type = ENVI Standard
        data type = 4
        interleave = bsq
        byte order = 0
        Wavelength Units = Micrometers
        Wavelength = {
         0.45,
         0.55, 0.65 }
        FWHM = { 0.01, 0.01,
        0.02 }
        ; a comment
        """))
    assert "fwhm" not in (gdal.Open(str(path)).GetMetadata("ENVI") or {})  # what GDAL alone would give
    info = read_info(path)
    assert info.wavelengths_nm == pytest.approx([450.0, 550.0, 650.0])
    assert info.fwhm_nm == pytest.approx([10.0, 10.0, 20.0])


def test_envi_domain_of_a_geotiff_is_read(tmp_path):
    envi = {"wavelength": "{400,500,600}", "wavelength_units": "nm", "fwhm": "{ 9, 9, 9 }"}
    info = read_info(_gtiff(tmp_path / "envi_domain.tif", 3, envi_domain=envi))
    assert info.wavelengths_nm == pytest.approx([400, 500, 600])
    assert info.fwhm_nm == pytest.approx([9, 9, 9])


def test_imagery_domain_only_is_read(tmp_path):
    items = [{"CENTRAL_WAVELENGTH_UM": "0.49", "FWHM_UM": "0.065"}, {"CENTRAL_WAVELENGTH_UM": "0.56",
                                                                     "FWHM_UM": "0.035"}]
    info = read_info(_gtiff(tmp_path / "imagery.tif", 2, imagery_items=items))
    assert info.wavelengths_nm == pytest.approx([490.0, 560.0])
    assert info.fwhm_nm == pytest.approx([65.0, 35.0])


def test_band_metadata_take_precedence_and_fwhm_falls_back(tmp_path):
    band_items = [{"wavelength": "500", "wavelength_units": "nm"}, {"wavelength": "600", "wavelength_units": "nm"}]
    imagery = [{"CENTRAL_WAVELENGTH_UM": "0.9", "FWHM_UM": "0.02"}, {"CENTRAL_WAVELENGTH_UM": "1.0",
                                                                    "FWHM_UM": "0.03"}]
    info = read_info(_gtiff(tmp_path / "both.tif", 2, band_items=band_items, imagery_items=imagery))
    assert info.wavelengths_nm == pytest.approx([500.0, 600.0])
    assert info.fwhm_nm == pytest.approx([20.0, 30.0])



def test_a_bad_lower_source_only_costs_the_fwhm(tmp_path, caplog):
    band_items = [{"wavelength": "500", "wavelength_units": "nm"}, {"wavelength": "600", "wavelength_units": "nm"}]
    imagery = [{"CENTRAL_WAVELENGTH_UM": "0.5", "FWHM_UM": "wide"}] * 2
    with caplog.at_level(logging.WARNING, logger="cofusion.core.raster"):
        info = read_info(_gtiff(tmp_path / "bad_fwhm.tif", 2, band_items=band_items, imagery_items=imagery))
    assert info.wavelengths_nm == pytest.approx([500.0, 600.0]) and info.fwhm_nm is None
    assert "FWHM stay unknown" in caplog.text


# ----------------------------------------------------------------------------------------------------- writer


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_written_output_reads_back_with_plain_gdal(tmp_path):
    data = np.random.default_rng(2).random((3, 40, 50)).astype(np.float32)
    wl, fwhm = [450.0, 560.5, 2448.435], [10.0, 11.0, 12.0]
    out = tmp_path / "out.tif"
    write_raster(out, data, geotransform=GT, crs_wkt=_utm_wkt(), nodata=-9999.0, wavelengths_nm=wl, fwhm_nm=fwhm)
    assert _files(tmp_path) == ["out.tif"]  # no temporary file or sidecar left
    ds = gdal.Open(str(out))
    assert ds.GetGeoTransform() == GT
    assert _same_crs(ds.GetProjection(), _utm_wkt())
    assert ds.GetMetadata("IMAGE_STRUCTURE")["COMPRESSION"] == "DEFLATE"
    assert ds.GetMetadata("IMAGE_STRUCTURE")["PREDICTOR"] == "3"
    assert ds.GetMetadata("IMAGE_STRUCTURE")["INTERLEAVE"] == "BAND"
    for i in range(3):
        band = ds.GetRasterBand(i + 1)
        assert band.GetNoDataValue() == -9999.0
        assert band.GetBlockSize() == [256, 256]
        assert float(band.GetMetadataItem("wavelength")) == pytest.approx(wl[i])
        assert band.GetMetadataItem("wavelength_units") == "Nanometers"
        assert float(band.GetMetadataItem("fwhm")) == pytest.approx(fwhm[i])
        assert float(band.GetMetadataItem("CENTRAL_WAVELENGTH_UM", "IMAGERY")) == pytest.approx(wl[i] / 1000)
        assert float(band.GetMetadataItem("FWHM_UM", "IMAGERY")) == pytest.approx(fwhm[i] / 1000)
        np.testing.assert_array_equal(band.ReadAsArray(), data[i])
    assert ds.GetRasterBand(2).GetDescription() == "band 2 (560.5 nm)"
    info = read_info(out)
    assert info.wavelengths_nm == pytest.approx(wl) and info.fwhm_nm == pytest.approx(fwhm)


def test_integer_output_uses_predictor_2_and_band_names(tmp_path):
    data = np.arange(2 * 5 * 6, dtype=np.uint16).reshape(2, 5, 6)
    out = tmp_path / "int.tif"
    write_raster(out, data, band_names=["blue", "nir"], nodata=65535)
    ds = gdal.Open(str(out))
    assert ds.GetMetadata("IMAGE_STRUCTURE")["PREDICTOR"] == "2"
    assert ds.GetRasterBand(1).DataType == gdal.GDT_UInt16
    assert [ds.GetRasterBand(i + 1).GetDescription() for i in range(2)] == ["blue", "nir"]
    info = read_info(out)
    assert info.dtype == "uint16" and info.band_names == ("blue", "nir") and info.nodata == (65535.0, 65535.0)
    np.testing.assert_array_equal(read_raster(out), data)


def test_writing_in_blocks_assembles_the_raster(tmp_path):
    data = np.random.default_rng(3).random((2, 300, 270)).astype(np.float32)
    out = tmp_path / "blocks.tif"
    with RasterWriter(out, width=270, height=300, band_count=2, geotransform=GT, crs_wkt="") as writer:
        for row in range(0, 300, 128):
            for col in range(0, 270, 100):
                writer.write(data[:, row:row + 128, col:col + 100], col, row)
    np.testing.assert_array_equal(read_raster(out), data)


def test_temporary_file_is_hidden_beside_the_target_and_target_replaced_at_the_end(tmp_path):
    out = tmp_path / "out.tif"
    write_raster(out, np.zeros((1, 4, 4), np.float32))
    Path(f"{out}.aux.xml").write_text("<PAMDataset><Metadata><MDI key='stale'>1</MDI></Metadata></PAMDataset>")
    with RasterWriter(out, width=4, height=4, band_count=1, geotransform=GT, crs_wkt="") as writer:
        writer.write(np.ones((1, 4, 4), np.float32), 0, 0)
        temps = [name for name in _files(tmp_path) if name not in ("out.tif", "out.tif.aux.xml")]
        assert len(temps) == 1 and temps[0].startswith(".") and ".tmp" in temps[0]
        assert read_raster(out).max() == 0  # the old output is untouched until the end
    assert _files(tmp_path) == ["out.tif"]  # the stale sidecar went with the old file
    assert read_raster(out).min() == 1


@pytest.mark.parametrize("error", [Canceled("stop"), KeyboardInterrupt()])
def test_an_exception_inside_the_with_leaves_no_file(tmp_path, error):
    with pytest.raises(type(error)), RasterWriter(tmp_path / "out.tif", width=4, height=4, band_count=1,
                                                  geotransform=GT, crs_wkt="") as writer:
        writer.write(np.ones((1, 4, 4), np.float32), 0, 0)
        raise error
    assert _files(tmp_path) == []


def test_a_cancel_request_after_the_last_write_still_cancels(tmp_path):
    """The caller's loop checked cancel before its last batch; a request during it must not let the file land."""
    out = tmp_path / "out.tif"
    write_raster(out, np.full((1, 3, 3), 7, np.float32))
    requested = []
    with pytest.raises(Canceled, match="unchanged"), RasterWriter(
            out, width=3, height=3, band_count=1, geotransform=GT, crs_wkt="",
            cancel=lambda: bool(requested)) as writer:
        writer.write(np.zeros((1, 3, 3), np.float32), 0, 0)
        requested.append(True)  # arrives while the last pixels are written
    assert _files(tmp_path) == ["out.tif"]
    assert read_raster(out).min() == 7
    with RasterWriter(out, width=3, height=3, band_count=1, geotransform=GT, crs_wkt="",
                      cancel=lambda: False) as writer:
        writer.write(np.zeros((1, 3, 3), np.float32), 0, 0)
    assert read_raster(out).max() == 0


def test_an_exception_inside_the_with_keeps_the_existing_target(tmp_path):
    out = tmp_path / "out.tif"
    write_raster(out, np.full((1, 3, 3), 7, np.float32))
    with pytest.raises(Canceled), RasterWriter(out, width=3, height=3, band_count=1, geotransform=GT,
                                               crs_wkt="") as writer:
        writer.write(np.zeros((1, 3, 3), np.float32), 0, 0)
        raise Canceled("stop")
    assert _files(tmp_path) == ["out.tif"]
    assert read_raster(out).min() == 7


def test_a_failed_write_is_an_output_error_about_disk_space(tmp_path):
    """A file size limit (RLIMIT_FSIZE) makes the disk 'full' for a child process only."""
    code = textwrap.dedent(f"""
        import os, resource, signal
        import numpy as np
        from cofusion.core.errors import OutputError
        from cofusion.core.raster import write_raster
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
        try:
            write_raster({str(tmp_path / "out.tif")!r}, np.random.default_rng(0).random((4, 512, 512), np.float32))
        except OutputError as exc:
            print("OutputError:", exc)
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "OutputError:" in result.stdout and "free space" in result.stdout
    assert _files(tmp_path) == []


def test_writer_rejects_bad_arrays_and_positions(tmp_path):
    with RasterWriter(tmp_path / "o.tif", width=4, height=4, band_count=2, geotransform=GT, crs_wkt="") as w:
        with pytest.raises(ValueError, match="expected an array"):
            w.write(np.zeros((3, 2, 2)), 0, 0)
        with pytest.raises(ValueError, match="does not fit"):
            w.write(np.zeros((2, 2, 2)), 3, 0)
        w.write(np.zeros((2, 4, 4)), 0, 0)
    with pytest.raises(ValueError, match="wavelengths_nm has 1 entries for 2 bands"):
        RasterWriter(tmp_path / "o.tif", width=4, height=4, band_count=2, geotransform=GT, crs_wkt="",
                     wavelengths_nm=[500])
    with pytest.raises(ValueError, match="cannot be written"):
        RasterWriter(tmp_path / "o.tif", width=4, height=4, band_count=2, geotransform=GT, crs_wkt="",
                     dtype="complex64")
    with pytest.raises(ValueError, match="not a value of uint8"):
        RasterWriter(tmp_path / "o.tif", width=4, height=4, band_count=2, geotransform=GT, crs_wkt="",
                     dtype="uint8", nodata=-1)


def test_an_invalid_crs_fails_at_creation_and_leaves_nothing(tmp_path):
    with pytest.raises(OutputError, match="Check the CRS"), RasterWriter(
            tmp_path / "o.tif", width=2, height=2, band_count=1, geotransform=GT, crs_wkt="not a CRS"):
        pass
    assert _files(tmp_path) == []




def test_the_internal_tile_divides_the_writers_step():
    from cofusion.core.raster import INTERNAL_TILE, internal_tile

    assert internal_tile(256) == 256 and internal_tile(288) == 288  # x4's and x3's default tile steps
    assert internal_tile(576) == 288 and internal_tile(2000) == 400  # at most MAX_INTERNAL_TILE (512)
    assert internal_tile(24) == INTERNAL_TILE and internal_tile(8) == INTERNAL_TILE  # no multiple of 16 divides


def test_a_writer_writes_the_internal_tiles_asked_for(tmp_path):
    out = tmp_path / "t.tif"
    with RasterWriter(out, width=100, height=60, band_count=2, geotransform=(0, 1, 0, 0, 0, -1), crs_wkt="",
                      tile=48) as writer:
        writer.write(np.ones((2, 60, 100), np.float32), 0, 0)
    assert gdal.Open(str(out)).GetRasterBand(1).GetBlockSize() == [48, 48]
    with pytest.raises(ValueError, match="multiple of 16"):
        RasterWriter(tmp_path / "u.tif", width=10, height=10, band_count=1, geotransform=(0, 1, 0, 0, 0, -1),
                     crs_wkt="", tile=40)


def test_a_writer_given_a_thread_count_compresses_on_that_many(monkeypatch, tmp_path):
    """A fusion's --threads (a batch task's share of the cores) bounds GDAL's compression threads too."""
    from cofusion.core import raster

    assert "NUM_THREADS=ALL_CPUS" in raster.geotiff_options("float32")
    assert "NUM_THREADS=1" in raster.geotiff_options("float32", 256, 1)
    created = []
    real = raster.geotiff_options
    monkeypatch.setattr(raster, "geotiff_options", lambda *a: created.append(a) or real(*a))
    with raster.RasterWriter(tmp_path / "t.tif", width=32, height=32, band_count=2,
                             geotransform=(0.0, 1.0, 0.0, 0.0, 0.0, -1.0), crs_wkt="", threads=2) as writer:
        writer.write(np.zeros((2, 32, 32), np.float32), 0, 0)
    assert created == [("float32", raster.INTERNAL_TILE, 2)]
