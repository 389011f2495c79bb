# SPDX-License-Identifier: GPL-2.0-or-later
"""What the raster reader must understand, not half-understand: GDAL's masks, alpha bands, complex pixels,
subdataset names and paths that are no regular file.

- a per-dataset mask (an internal TIFF mask, a .msk sidecar), an explicit per-band mask and a dataset's
  NODATA_VALUES make pixels invalid in ``read_masked`` / ``read_valid``, so band screening ignores them and the
  fusion writes them as nodata; a mask that only repeats the nodata value is not read at all;
- an alpha band is no spectral band: it is left out of the band count and every per-band field, band indices skip
  it wherever it is in the file, and its 0 pixels are nodata in a fused output, which has no alpha band;
- complex pixels are refused with one line naming the file, the type and the fix;
- a subdataset name (``NETCDF:"f.nc":cube``, as the reader's own hint gives it) opens; a missing file still "does
  not exist";
- a FIFO, a device or a socket is refused at once (GDAL would block on a FIFO); a folder GDAL cannot read gives a
  clear error, a folder GDAL reads as one raster (DIMAP here, a Sentinel-2 .SAFE in the wild) opens.
"""
from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, osr

from cofusion.core.bands import NO_DATA, screen_bands
from cofusion.core.classic_raster import fuse_classic_raster
from cofusion.core.errors import InputError
from cofusion.core.fuse import fuse_raster
from cofusion.core.raster import RasterReader, read_info, read_raster
from cofusion.core.window import Window

from .conftest import HR_GT, HR_SIZE, HSI, LR_GT, LR_SIZE, MSI, SCALE, WAVELENGTHS, Scene, run_core

RNG = np.random.default_rng(7)
LR_DATA = RNG.uniform(0.1, 1.0, (HSI, LR_SIZE, LR_SIZE)).astype(np.float32)
HR_DATA = RNG.uniform(0.1, 1.0, (MSI, HR_SIZE, HR_SIZE)).astype(np.float32)
COMPLEX_TYPES = {"CInt16": gdal.GDT_CInt16, "CInt32": gdal.GDT_CInt32, "CFloat32": gdal.GDT_CFloat32,
                 "CFloat64": gdal.GDT_CFloat64}


def _hole(rows: int, cols: int, top: int, left: int, height: int, width: int) -> np.ndarray:
    """A uint8 mask of `rows` x `cols`, 255 but for a `height` x `width` hole of 0 at (`top`, `left`)."""
    mask = np.full((rows, cols), 255, np.uint8)
    mask[top:top + height, left:left + width] = 0
    return mask


def _tiff(
    path: Path,
    data: np.ndarray,
    geotransform: Sequence[float],
    *,
    alpha_at: int | None = None,
    alpha: np.ndarray | None = None,
    dataset_mask: np.ndarray | None = None,
    band_masks: dict[int, np.ndarray] | None = None,
    sidecar: bool = False,
    wavelengths: Sequence[float] | None = None,
    options: Sequence[str] = (),
    metadata: dict[str, str] | None = None,
    envi: dict[str, str] | None = None,
    gdal_type: int | None = None,
) -> Path:
    """A GeoTIFF written with plain GDAL: the spectral bands `data` (B, rows, cols); an alpha band (color
    interpretation Alpha) at 0-based file position `alpha_at` holding `alpha` (default all opaque, 255); a
    per-dataset mask; explicit masks of spectral bands (0-based index -> mask); masks in a .msk sidecar when
    `sidecar`, else internal; EnMAP-Box wavelengths on the spectral bands; dataset metadata and ENVI domain."""
    bands, rows, cols = data.shape
    count = bands + (alpha_at is not None)
    if gdal_type is None:
        from osgeo import gdal_array

        gdal_type = gdal_array.NumericTypeCodeToGDALTypeCode(data.dtype)
    numbers = [n for n in range(1, count + 1) if alpha_at is None or n != alpha_at + 1]
    previous = gdal.GetConfigOption("GDAL_TIFF_INTERNAL_MASK")
    gdal.SetConfigOption("GDAL_TIFF_INTERNAL_MASK", "NO" if sidecar else "YES")
    try:
        ds = gdal.GetDriverByName("GTiff").Create(str(path), cols, rows, count, gdal_type, list(options))
        ds.SetGeoTransform(tuple(geotransform))
        srs = osr.SpatialReference()
        srs.ImportFromEPSG(32632)
        ds.SetSpatialRef(srs)
        for k, number in enumerate(numbers):
            band = ds.GetRasterBand(number)
            band.WriteArray(data[k])
            if wavelengths is not None:
                band.SetMetadataItem("wavelength", str(wavelengths[k]))
                band.SetMetadataItem("wavelength_units", "Nanometers")
        if alpha_at is not None:
            band = ds.GetRasterBand(alpha_at + 1)
            band.SetColorInterpretation(gdal.GCI_AlphaBand)
            band.WriteArray(np.full((rows, cols), 255, np.uint8) if alpha is None else alpha)
        if metadata:
            for key, value in metadata.items():
                ds.SetMetadataItem(key, value)
        if envi:
            ds.SetMetadata(envi, "ENVI")
        if dataset_mask is not None:
            assert ds.CreateMaskBand(gdal.GMF_PER_DATASET) == gdal.CE_None
            ds.GetRasterBand(1).GetMaskBand().WriteArray(dataset_mask)
        for index, mask in (band_masks or {}).items():
            band = ds.GetRasterBand(numbers[index])
            assert band.CreateMaskBand(0) == gdal.CE_None
            band.GetMaskBand().WriteArray(mask)
        ds.FlushCache()
        ds = None
    finally:
        gdal.SetConfigOption("GDAL_TIFF_INTERNAL_MASK", previous)
    return path


@dataclass
class _Predictor:
    """A predictor of the engine's protocol: the LRHSI upsampled plus the mean of the HRMSI's bands."""

    scale: int = SCALE
    hsi_bands: int = HSI
    msi_bands: int = MSI
    align: int = SCALE
    hsi_fill: np.ndarray = field(default_factory=lambda: np.zeros(HSI, np.float32))
    msi_fill: np.ndarray = field(default_factory=lambda: np.zeros(MSI, np.float32))

    def __call__(self, lr: np.ndarray, hr: np.ndarray) -> np.ndarray:
        return lr.repeat(self.scale, axis=2).repeat(self.scale, axis=3) + hr.mean(axis=1, keepdims=True)


def _expected(lr: np.ndarray = LR_DATA, hr: np.ndarray = HR_DATA) -> np.ndarray:
    return lr.repeat(SCALE, axis=1).repeat(SCALE, axis=2) + hr.mean(axis=0, keepdims=True)


def _fuse(lr: Path, hr: Path, out: Path) -> np.ndarray:
    fuse_raster(lr, hr, out, _Predictor(), tile=32, overlap=0)
    return read_raster(out)


def _lr_under_hr(lr_mask: np.ndarray) -> np.ndarray:
    """An LR-pixel mask as the HR pixels under it."""
    return lr_mask.repeat(SCALE, axis=0).repeat(SCALE, axis=1)


def _no_alpha_band(path: Path, bands: int) -> None:
    ds = gdal.Open(str(path))
    assert ds.RasterCount == bands
    assert all(ds.GetRasterBand(n).GetColorInterpretation() != gdal.GCI_AlphaBand for n in range(1, bands + 1))


def _one_line(message: str, *parts: str) -> None:
    assert "\n" not in message, message
    for part in parts:
        assert part in message, (part, message)


# ------------------------------------------------------------------------------------------------------- masks


@pytest.mark.parametrize("sidecar", [False, True], ids=["internal_mask", "msk_sidecar"])
def test_a_per_dataset_mask_makes_pixels_invalid_in_every_band(tmp_path, sidecar):
    mask = _hole(HR_SIZE, HR_SIZE, 4, 8, 6, 10)
    hr = _tiff(tmp_path / "hr.tif", HR_DATA, HR_GT, dataset_mask=mask, sidecar=sidecar)
    assert (tmp_path / "hr.tif.msk").exists() == sidecar
    with RasterReader(hr) as reader:
        assert reader.info.band_count == MSI
        data, band_valid = reader.read_masked(reader.info.window)
        np.testing.assert_array_equal(data, HR_DATA)  # masked pixels keep their values; only validity changes
        np.testing.assert_array_equal(band_valid, np.broadcast_to(mask != 0, band_valid.shape))
        window = Window(6, 2, 12, 9)  # straddles the hole: the mask is read for this window only
        _, sub_valid = reader.read_masked(window, [2, 0])
        np.testing.assert_array_equal(sub_valid, np.broadcast_to(mask[2:11, 6:18] != 0, (2, 9, 12)))
        _, valid = reader.read_valid(window)
        np.testing.assert_array_equal(valid, mask[2:11, 6:18] != 0)


@pytest.mark.parametrize("masked", ["hr", "lr"])
@pytest.mark.parametrize("sidecar", [False, True], ids=["internal_mask", "msk_sidecar"])
def test_masked_pixels_are_nodata_in_the_fused_output(tmp_path, masked, sidecar):
    hr_mask, lr_mask = _hole(HR_SIZE, HR_SIZE, 4, 8, 6, 10), _hole(LR_SIZE, LR_SIZE, 9, 1, 3, 4)
    lr = _tiff(tmp_path / "lr.tif", LR_DATA, LR_GT, wavelengths=WAVELENGTHS,
               dataset_mask=lr_mask if masked == "lr" else None, sidecar=sidecar)
    hr = _tiff(tmp_path / "hr.tif", HR_DATA, HR_GT, dataset_mask=hr_mask if masked == "hr" else None,
               sidecar=sidecar)
    out = _fuse(lr, hr, tmp_path / "fused.tif")
    expected_valid = (hr_mask if masked == "hr" else _lr_under_hr(lr_mask)) != 0
    assert out.shape == (HSI, HR_SIZE, HR_SIZE)
    np.testing.assert_array_equal(np.isfinite(out).all(axis=0), expected_valid)
    assert np.isnan(out[:, ~expected_valid]).all()  # the LRHSI has no nodata value: the output's is NaN
    np.testing.assert_allclose(out[:, expected_valid], _expected()[:, expected_valid], rtol=1e-6)


def test_an_explicit_per_band_mask_masks_that_band_only(tmp_path):
    band_mask = _hole(LR_SIZE, LR_SIZE, 0, 0, 5, 16)
    lr = _tiff(tmp_path / "lr.tif", LR_DATA, LR_GT, wavelengths=WAVELENGTHS, band_masks={1: band_mask}, sidecar=True)
    ds = gdal.Open(str(lr))
    assert [ds.GetRasterBand(n).GetMaskFlags() for n in range(1, HSI + 1)] == [
        gdal.GMF_ALL_VALID, 0, gdal.GMF_ALL_VALID, gdal.GMF_ALL_VALID, gdal.GMF_ALL_VALID]  # the case under test
    ds = None
    with RasterReader(lr) as reader:
        _, band_valid = reader.read_masked(reader.info.window)
        np.testing.assert_array_equal(band_valid[1], band_mask != 0)
        assert band_valid[[0, 2, 3, 4]].all()
        _, only_band_1 = reader.read_masked(Window(0, 3, 16, 4), [1])
        np.testing.assert_array_equal(only_band_1[0], band_mask[3:7] != 0)
    hr = _tiff(tmp_path / "hr.tif", HR_DATA, HR_GT)
    out = _fuse(lr, hr, tmp_path / "fused.tif")
    np.testing.assert_array_equal(np.isfinite(out).all(axis=0), _lr_under_hr(band_mask) != 0)


def test_band_screening_ignores_masked_pixels(tmp_path):
    """A band masked everywhere is 'nodata everywhere'; a band whose masked pixels hold other values is constant."""
    data = LR_DATA.copy()
    data[3] = 0.5
    data[3, :2] = 99.0  # outliers under the dataset mask
    dataset_mask = _hole(LR_SIZE, LR_SIZE, 0, 0, 2, LR_SIZE)
    lr = _tiff(tmp_path / "lr.tif", data, LR_GT, wavelengths=WAVELENGTHS, dataset_mask=dataset_mask, sidecar=True,
               band_masks={})
    with RasterReader(lr) as reader:
        screen = screen_bands(reader)
    assert screen.reasons == (None, None, None, "constant (0.5)", None)
    lr_all_masked = _tiff(tmp_path / "lr2.tif", LR_DATA, LR_GT, wavelengths=WAVELENGTHS, sidecar=True,
                          band_masks={2: np.zeros((LR_SIZE, LR_SIZE), np.uint8)})
    with RasterReader(lr_all_masked) as reader:
        assert screen_bands(reader).reasons == (None, None, NO_DATA, None, None)


def test_a_dataset_nodata_tuple_masks_only_pixels_equal_in_every_band(tmp_path):
    data = np.ones((3, 4, 4), np.uint16)
    data[:, 0, 0] = 0  # every band at NODATA_VALUES: nodata
    data[1, 1, 1] = 0  # one band only: valid (GDAL's meaning of NODATA_VALUES)
    path = _tiff(tmp_path / "nv.tif", data, HR_GT, metadata={"NODATA_VALUES": "0 0 0"})
    with RasterReader(path) as reader:
        assert reader.info.nodata == (None, None, None)
        _, band_valid = reader.read_masked(reader.info.window)
    expected = np.ones((4, 4), bool)
    expected[0, 0] = False
    np.testing.assert_array_equal(band_valid, np.broadcast_to(expected, band_valid.shape))


def test_a_mask_is_read_only_when_it_says_more_than_the_nodata_value(tmp_path, make_raster, monkeypatch):
    reads: list[int] = []
    original = gdal.Band.GetMaskBand

    def counting(band):
        reads.append(1)
        return original(band)

    monkeypatch.setattr(gdal.Band, "GetMaskBand", counting)

    def mask_reads(path: Path) -> int:
        reads.clear()
        with RasterReader(path) as reader:
            reader.read_masked(reader.info.window)
        return len(reads)

    assert mask_reads(make_raster(3, 8, 8)) == 0  # all valid
    assert mask_reads(make_raster(3, 8, 8, nodata=0.0)) == 0  # nodata only: the comparison covers it
    rgba = _tiff(tmp_path / "rgba.tif", HR_DATA.astype(np.uint8), HR_GT, alpha_at=3,
                 options=["PHOTOMETRIC=RGB", "ALPHA=YES"])
    assert mask_reads(rgba) == 0  # GDAL's mask is the alpha band, read directly
    per_dataset = _tiff(tmp_path / "pd.tif", HR_DATA, HR_GT, dataset_mask=_hole(HR_SIZE, HR_SIZE, 0, 0, 1, 1))
    assert mask_reads(per_dataset) == 1  # one mask for the three bands
    per_band = _tiff(tmp_path / "pb.tif", LR_DATA, LR_GT, sidecar=True,
                     band_masks={0: _hole(LR_SIZE, LR_SIZE, 0, 0, 1, 1), 4: _hole(LR_SIZE, LR_SIZE, 1, 1, 1, 1)})
    assert mask_reads(per_band) == 2


# ------------------------------------------------------------------------------------------------------- alpha


def _alpha_hole() -> np.ndarray:
    alpha = np.full((HR_SIZE, HR_SIZE), 255, np.uint8)
    alpha[10:20, 3:9] = 0
    return alpha


def test_rgba_hrmsi_alpha_is_the_mask_not_a_band(tmp_path, caplog):
    rgb = (HR_DATA * 1000).astype(np.uint16)
    alpha = _alpha_hole()
    hr = _tiff(tmp_path / "rgba.tif", rgb, HR_GT, alpha_at=3, alpha=alpha.astype(np.uint16),
               options=["PHOTOMETRIC=RGB", "ALPHA=YES"])
    with caplog.at_level(logging.INFO, logger="cofusion.core.raster"):
        info = read_info(hr)
    assert "band 4 is an alpha band" in caplog.text
    assert info.band_count == 3 and info.dtype == "uint16"
    assert len(info.nodata) == len(info.scale) == len(info.offset) == len(info.band_names) == 3
    with RasterReader(hr) as reader:
        data, band_valid = reader.read_masked(info.window)
        np.testing.assert_array_equal(data, rgb.astype(np.float32))
        np.testing.assert_array_equal(band_valid, np.broadcast_to(alpha != 0, band_valid.shape))
        with pytest.raises(InputError, match="3 bands"):
            reader.read(info.window, [3])  # the alpha band has no index
    lr = _tiff(tmp_path / "lr.tif", LR_DATA, LR_GT, wavelengths=WAVELENGTHS)
    fused = _fuse(lr, hr, tmp_path / "fused.tif")
    _no_alpha_band(tmp_path / "fused.tif", HSI)
    np.testing.assert_array_equal(np.isfinite(fused).all(axis=0), alpha != 0)
    np.testing.assert_allclose(fused[:, alpha != 0], _expected(hr=rgb.astype(np.float32))[:, alpha != 0], rtol=1e-6)
    classic = tmp_path / "classic.tif"
    fuse_classic_raster(lr, hr, classic, "gsa")
    _no_alpha_band(classic, HSI)
    np.testing.assert_array_equal(np.isfinite(read_raster(classic)).all(axis=0), alpha != 0)


def test_an_alpha_band_that_is_not_the_last_band(tmp_path, caplog):
    """GDAL itself only takes the last band of 2 or 4 as the mask; the reader finds alpha anywhere."""
    alpha = _alpha_hole()
    hr = _tiff(tmp_path / "hr.tif", HR_DATA, HR_GT, alpha_at=0, alpha=alpha.astype(np.float32))
    lr_alpha = np.full((LR_SIZE, LR_SIZE), 255, np.uint8)
    lr_alpha[0, :3] = 0
    lr = _tiff(tmp_path / "lr.tif", LR_DATA, LR_GT, alpha_at=2, alpha=lr_alpha.astype(np.float32),
               wavelengths=WAVELENGTHS)
    with caplog.at_level(logging.INFO, logger="cofusion.core.raster"):
        hr_info, lr_info = read_info(hr), read_info(lr)
    assert "hr.tif: band 1 is an alpha band" in caplog.text and "lr.tif: band 3 is an alpha band" in caplog.text
    assert (hr_info.band_count, lr_info.band_count) == (MSI, HSI)
    assert lr_info.wavelengths_nm == pytest.approx(WAVELENGTHS)
    assert lr_info.band_names == ("band 1", "band 2", "band 3", "band 4", "band 5")  # numbered as spectral bands
    with RasterReader(hr) as reader:
        np.testing.assert_array_equal(reader.read(hr_info.window, [0]), HR_DATA[:1])  # file band 2
        np.testing.assert_array_equal(reader.read(hr_info.window), HR_DATA)
    with RasterReader(lr) as reader:
        np.testing.assert_array_equal(reader.read(lr_info.window, [2, 3]), LR_DATA[2:4])  # file bands 4, 5
    out = _fuse(lr, hr, tmp_path / "fused.tif")
    _no_alpha_band(tmp_path / "fused.tif", HSI)
    expected_valid = (alpha != 0) & _lr_under_hr(lr_alpha != 0)
    np.testing.assert_array_equal(np.isfinite(out).all(axis=0), expected_valid)
    np.testing.assert_allclose(out[:, expected_valid], _expected()[:, expected_valid], rtol=1e-6)
    assert read_info(tmp_path / "fused.tif").wavelengths_nm == pytest.approx(WAVELENGTHS)


def test_file_level_lists_that_count_the_alpha_band_are_matched_to_the_spectral_bands(tmp_path):
    """An ENVI bad band list or wavelength list with one entry per file band (alpha included) is read for the
    spectral bands; one entry per spectral band is read as it is."""
    envi = {"wavelength": "{ 450, 550, 0, 650, 750, 850 }", "wavelength_units": "Nanometers",
            "bbl": "{ 1, 0, 1, 1, 1, 1 }"}
    path = _tiff(tmp_path / "all.tif", LR_DATA, LR_GT, alpha_at=2, envi=envi)
    info = read_info(path)
    assert info.band_count == HSI and info.wavelengths_nm == pytest.approx(WAVELENGTHS)
    assert info.bad_band_flags == (False, True, False, False, False)
    spectral = {"wavelength": "{ 450, 550, 650, 750, 850 }", "bbl": "{ 1, 1, 1, 1, 0 }"}
    info = read_info(_tiff(tmp_path / "spectral.tif", LR_DATA, LR_GT, alpha_at=2, envi=spectral))
    assert info.wavelengths_nm == pytest.approx(WAVELENGTHS)
    assert info.bad_band_flags == (False, False, False, False, True)


def test_a_raster_of_alpha_bands_only_is_refused(tmp_path):
    path = _tiff(tmp_path / "alpha.tif", np.zeros((0, 4, 4), np.uint8), HR_GT, alpha_at=0, gdal_type=gdal.GDT_Byte)
    with pytest.raises(InputError) as caught:
        read_info(path)
    _one_line(str(caught.value), str(path), "alpha band", "give the image raster")


# ----------------------------------------------------------------------------------------------------- complex


@pytest.mark.parametrize("type_name", list(COMPLEX_TYPES))
def test_complex_pixels_are_refused_with_one_line(tmp_path, type_name):
    path = tmp_path / f"{type_name}.tif"
    ds = gdal.GetDriverByName("GTiff").Create(str(path), HR_SIZE, HR_SIZE, MSI, COMPLEX_TYPES[type_name])
    ds.SetGeoTransform(HR_GT)
    ds.GetRasterBand(1).WriteArray(np.full((HR_SIZE, HR_SIZE), 3 + 4j))
    ds = None
    with pytest.raises(InputError) as caught:
        RasterReader(path)
    _one_line(str(caught.value), str(path), type_name, "complex", "real values", "gdal_calc.py", "intensity")


def test_a_complex_hrmsi_is_refused_before_any_output(tmp_path, make_raster, tiny_model):
    hr = tmp_path / "hr.tif"
    ds = gdal.GetDriverByName("GTiff").Create(str(hr), HR_SIZE, HR_SIZE, MSI, gdal.GDT_CFloat32)
    ds.SetGeoTransform(HR_GT)
    ds = None
    (tmp_path / "out").mkdir()
    scene = Scene(lr=make_raster(HSI, LR_SIZE, LR_SIZE, geotransform=LR_GT, wavelengths_nm=WAVELENGTHS), hr=hr,
                  model=tiny_model, out=tmp_path / "out" / "fused.tif")
    outcome = run_core(scene, None)
    assert outcome.error is InputError
    _one_line(outcome.message, str(hr), "CFloat32", "real values")
    assert not list((tmp_path / "out").iterdir())


# ------------------------------------------------------------------------------------------- names and paths


def test_a_netcdf_subdataset_name_opens(tmp_path):
    if gdal.GetDriverByName("netCDF") is None:
        pytest.skip("GDAL has no netCDF driver")
    nc = tmp_path / "cube.nc"
    values = RNG.uniform(0, 1, (2, 6, 8)).astype(np.float32)
    ds = gdal.GetDriverByName("netCDF").Create(str(nc), 8, 6, 2, gdal.GDT_Float32)
    for k in range(2):
        ds.GetRasterBand(k + 1).WriteArray(values[k])
    ds = None
    with pytest.raises(InputError) as caught:
        read_info(nc)  # two variables: subdatasets, no bands of its own
    message = str(caught.value)
    _one_line(message, "open one of them, e.g. NETCDF:")
    hinted = message.split("e.g. ", 1)[1].rstrip(".")
    info = read_info(hinted)  # the hint's own advice works
    assert (info.band_count, info.width, info.height) == (1, 8, 6)
    np.testing.assert_array_equal(read_raster(f'NETCDF:"{nc}":Band2'), values[1:])
    with pytest.raises(InputError, match="does not exist"):
        read_info(f'NETCDF:"{tmp_path / "absent.nc"}":Band1')
    with pytest.raises(InputError, match="cannot open this subdataset.*check the path and the subdataset name"):
        read_info(f'NETCDF:"{nc}":nosuchvariable')


def test_a_missing_plain_file_still_does_not_exist(tmp_path):
    missing = tmp_path / "absent.tif"
    with pytest.raises(InputError) as caught:
        read_info(missing)
    assert str(caught.value) == f"{missing}: the file does not exist; check the path."


def test_a_vsimem_path_opens():
    path = "/vsimem/cofusion_reader_semantics.tif"
    ds = gdal.GetDriverByName("GTiff").Create(path, 5, 4, 2, gdal.GDT_Float32)
    ds.GetRasterBand(2).Fill(7.0)
    ds = None
    try:
        data = read_raster(path)
        assert data.shape == (2, 4, 5) and (data[1] == 7.0).all()
    finally:
        gdal.Unlink(path)


_FIFO_SCRIPT = """
import sys
from cofusion.core.errors import InputError
from cofusion.core.grid import check_inputs
from cofusion.core.raster import read_info
fifo, lr, out = sys.argv[1:]
for call in (lambda: read_info(fifo), lambda: check_inputs(lr, fifo, out), lambda: check_inputs(fifo, lr, out)):
    try:
        call()
    except InputError as exc:
        print(exc)
    else:
        print("accepted")
"""


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs (Windows)")
def test_a_fifo_is_refused_at_once(tmp_path, make_raster):
    fifo = tmp_path / "pipe.tif"
    os.mkfifo(fifo)
    lr = make_raster(HSI, LR_SIZE, LR_SIZE, geotransform=LR_GT, wavelengths_nm=WAVELENGTHS)
    # in a child process: a regression would block in GDAL's open() forever, which no signal here interrupts
    result = subprocess.run([sys.executable, "-c", _FIFO_SCRIPT, str(fifo), str(lr), str(tmp_path / "out.tif")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines == [f"{fifo} is not a regular file (a pipe or device); give a raster file."] * 3, result.stdout


def _socket_file(tmp_path: Path) -> Path:
    if not hasattr(socket, "AF_UNIX"):
        pytest.skip("no Unix sockets")
    path = tmp_path / "s.tif"
    if len(str(path)) > 100:
        pytest.skip("path too long for a Unix socket")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.close()  # the socket file stays
    return path


@pytest.mark.parametrize("kind", ["char_device", "socket"])
def test_other_non_regular_files_are_refused(tmp_path, kind):
    if kind == "char_device":
        path = Path("/dev/null")
        if not path.exists() or not path.is_char_device():
            pytest.skip("no /dev/null")
    else:
        path = _socket_file(tmp_path)
    with pytest.raises(InputError) as caught:
        read_info(path)
    assert str(caught.value) == f"{path} is not a regular file (a pipe or device); give a raster file."


def test_a_folder_that_is_no_raster_gives_a_clear_error(tmp_path, make_raster, tiny_model):
    folder = tmp_path / "scene"
    folder.mkdir()
    (folder / "readme.txt").write_text("not a raster")
    with pytest.raises(InputError) as caught:
        read_info(folder)
    _one_line(str(caught.value), f"{folder} is a folder GDAL cannot read as a raster", "give the raster file inside it")
    (tmp_path / "out").mkdir()
    scene = Scene(lr=folder, hr=make_raster(MSI, HR_SIZE, HR_SIZE, geotransform=HR_GT), model=tiny_model,
                  out=tmp_path / "out" / "fused.tif")
    outcome = run_core(scene, None)
    assert outcome.error is InputError and "is a folder GDAL cannot read as a raster" in outcome.message


def test_a_folder_gdal_reads_as_a_raster_opens(tmp_path):
    if gdal.GetDriverByName("DIMAP") is None:
        pytest.skip("GDAL has no DIMAP driver")
    folder = tmp_path / "product"
    folder.mkdir()
    _tiff(folder / "IMAGERY.TIF", HR_DATA[:, :8, :8], HR_GT)
    (folder / "METADATA.DIM").write_text(
        '<?xml version="1.0" encoding="ISO-8859-1"?>\n<Dimap_Document name="METADATA.DIM">\n'
        ' <Metadata_Id><METADATA_FORMAT version="1.1">DIMAP</METADATA_FORMAT></Metadata_Id>\n'
        ' <Raster_Dimensions><NCOLS>8</NCOLS><NROWS>8</NROWS><NBANDS>3</NBANDS></Raster_Dimensions>\n'
        ' <Data_Access><DATA_FILE_FORMAT>GEOTIFF</DATA_FILE_FORMAT>'
        '<Data_File><DATA_FILE_PATH href="IMAGERY.TIF"/></Data_File></Data_Access>\n</Dimap_Document>\n')
    info = read_info(folder)
    assert (info.band_count, info.width, info.height) == (3, 8, 8)
    np.testing.assert_array_equal(read_raster(folder), HR_DATA[:, :8, :8])
