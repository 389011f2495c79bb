# SPDX-License-Identifier: GPL-2.0-or-later
"""Bad bands (core.bands) in Wald's simulation and in the assessment: a reference's bad bands are written as nodata
with bbl = 0 in the simulated LRHSI and left out of the HRMSI's response (renormalised); the reference metrics and
QNR skip bands bad in any raster compared and equal those of the good-band subsets."""
from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from cofusion.core.assess import assess_no_reference, assess_reference
from cofusion.core.errors import InputError
from cofusion.core.raster import read_info, read_raster
from cofusion.core.srf import SpectralResponse

pytest.importorskip("torch")
from cofusion.core.simulate_raster import simulate_raster  # noqa: E402 (needs torch)

SCALE = 3
NODATA = -9999.0
#: 12 bands from 420 to 2290 nm (170 nm apart): bands 3 (760 nm) flagged, 6-7 (1270, 1440 nm) nodata everywhere,
#: 10 (1950 nm) constant.
WAVELENGTHS = tuple(420.0 + 170.0 * b for b in range(12))
FLAGGED, NODATA_BANDS, CONSTANT = (2,), (5, 6), (9,)
BAD = (2, 5, 6, 9)
GOOD = tuple(b for b in range(12) if b not in BAD)
HR_GT = (500000.0, 10.0, 0.0, 5000000.0, 0.0, -10.0)
LR_GT = (500000.0, 30.0, 0.0, 5000000.0, 0.0, -30.0)


def _flat(names_and_ranges) -> SpectralResponse:
    """Flat-topped MSI bands: ``[(name, low nm, high nm), ...]`` on a 1 nm grid."""
    grid = np.arange(350.0, 2400.0, 1.0)
    return SpectralResponse(tuple(n for n, _, _ in names_and_ranges), grid,
                            np.stack([((grid >= lo) & (grid <= hi)).astype(float) for _, lo, hi in names_and_ranges]))


#: 'A' covers bands 1-4 (one flagged: a quarter of its weight lost, a warning), 'C' bands 8-9 (all good), 'B' bands
#: 5-7 (two nodata everywhere: two thirds lost, refused).
MSI_A, MSI_B, MSI_C = ("A", 400.0, 1000.0), ("B", 1050.0, 1500.0), ("C", 1550.0, 1850.0)


def _write(make_raster, data, name, *, geotransform=HR_GT, wavelengths=WAVELENGTHS, flagged=(), nodata=NODATA):
    """A float32 GeoTIFF with nodata on every band (pixel (0, 0) nodata) and ``flagged`` bands bbl = 0."""
    path = make_raster(data=np.asarray(data, np.float32), name=name, geotransform=geotransform,
                       wavelengths_nm=wavelengths, nodata=nodata)
    if flagged:
        ds = gdal.Open(str(path), gdal.GA_Update)
        for band in range(ds.RasterCount):
            ds.GetRasterBand(band + 1).SetMetadataItem("bbl", "0" if band in flagged else "1")
        ds = None
    return path


def _reference_data(rows=24, cols=30, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:rows, 0:cols] / max(rows, cols)
    data = np.stack([0.3 + 0.2 * np.sin(3 * x + b) * np.cos(2 * y - b) + 0.02 * b for b in range(12)])
    data = (data + rng.normal(0, 0.01, data.shape)).astype(np.float32)
    data[list(NODATA_BANDS)] = NODATA
    data[list(CONSTANT)] = 0.25
    return data


def _reference(make_raster, name="reference.tif") -> tuple[Path, np.ndarray]:
    data = _reference_data()
    data[2, 5, 7] = NODATA  # nodata in a bad (flagged) band only: the pixel stays valid
    data[0, 10, 12] = NODATA  # nodata in a good band: the pixel is nodata
    return _write(make_raster, data, name, flagged=FLAGGED), data


def _good_subset(make_raster, data, name, *, geotransform=HR_GT, bands=GOOD):
    return _write(make_raster, data[list(bands)], name, geotransform=geotransform,
                  wavelengths=[WAVELENGTHS[b] for b in bands])


# --- simulation --------------------------------------------------------------------------------------------------

def test_bad_bands_of_the_reference_are_nodata_in_the_lrhsi_and_left_out_of_the_hrmsi(make_raster, tmp_path,
                                                                                      caplog):
    reference, data = _reference(make_raster)
    response = _flat([MSI_A, MSI_C])
    with caplog.at_level(logging.INFO, logger="cofusion.core"):
        lr_path, hr_path = simulate_raster(reference, response, SCALE, tmp_path / "lr.tif", tmp_path / "hr.tif")
    text = caplog.text
    assert "4 of 12 bands" in text and "bands 6-7 (1270-1440 nm) nodata everywhere" in text
    assert "band 3 (760 nm) flagged bad (bbl = 0)" in text and "band 10 (1950 nm) constant (0.25)" in text
    # A loses one band with a good neighbour on each side (sampled at the good centres: no gap; 3 % of it lies
    # below the first band); C's first 60 nm lie in the gap of bands 6-7
    assert "MSI band 'A': 3 %" in text and "MSI band 'C': 20 %" in text and "except 1100.0-1610.0 nm" in text

    lr_info, lr = read_info(lr_path), read_raster(lr_path)
    assert lr_info.band_count == 12 and lr_info.wavelengths_nm == WAVELENGTHS
    assert lr_info.bad_band_flags == tuple(b in BAD for b in range(12))
    assert (lr[list(BAD)] == NODATA).all()

    # the good bands equal the simulation of the good bands alone
    subset = _good_subset(make_raster, data, "good.tif")
    sub_lr, sub_hr = simulate_raster(subset, response, SCALE, tmp_path / "sub_lr.tif", tmp_path / "sub_hr.tif")
    np.testing.assert_allclose(lr[list(GOOD)], read_raster(sub_lr), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(read_raster(hr_path), read_raster(sub_hr), rtol=1e-6, atol=1e-7)

    # a pixel is nodata only where a good band is: (0, 0) and (10, 12), not (5, 7) (nodata in the flagged band)
    hr = read_raster(hr_path)
    invalid = (hr == NODATA).all(axis=0)
    assert invalid[0, 0] and invalid[10, 12] and not invalid[5, 7] and invalid.sum() == 2
    assert (hr != NODATA).all(axis=0)[~invalid].all()
    lr_invalid = (lr[list(GOOD)] == NODATA).all(axis=0)
    assert lr_invalid[0, 0] and lr_invalid[10 // SCALE, 12 // SCALE] and lr_invalid.sum() == 2

    # the HRMSI: the response matrix with the bad bands' columns zeroed, each row renormalised
    R = response.matrix(WAVELENGTHS)
    R[:, list(BAD)] = 0.0
    R /= R.sum(axis=1, keepdims=True)
    assert np.allclose(R[0, [0, 1, 3]], 1 / 3) and np.allclose(R[1, [7, 8]], 1 / 2)
    expected = np.einsum("mc,chw->mhw", R[:, list(GOOD)], data[list(GOOD)].astype(np.float64))
    np.testing.assert_allclose(hr[:, ~invalid], expected[:, ~invalid], rtol=1e-5)


def test_a_reference_without_bad_bands_simulates_as_before(make_raster, tmp_path):
    data = _reference_data()
    data[list(NODATA_BANDS) + list(CONSTANT)] = _reference_data(seed=1)[0]  # every band good
    reference = _write(make_raster, data, "clean.tif")
    response = _flat([MSI_A, MSI_B, MSI_C])
    lr_path, hr_path = simulate_raster(reference, response, SCALE, tmp_path / "lr.tif", tmp_path / "hr.tif")
    assert read_info(lr_path).bad_band_flags == (False,) * 12
    R = response.matrix(WAVELENGTHS)
    hr, valid = read_raster(hr_path), (read_raster(reference) != NODATA).all(axis=0)
    assert valid.sum() == valid.size - 1 and (hr[:, ~valid] == NODATA).all()
    np.testing.assert_allclose(hr[:, valid], np.einsum("mc,chw->mhw", R, data)[:, valid], rtol=1e-5)


def test_an_msi_band_mostly_on_bad_bands_is_refused_naming_the_bands_to_keep(make_raster, tmp_path):
    reference, _ = _reference(make_raster)
    out = tmp_path / "out"
    out.mkdir()
    # bands 6-7 are a gap of three band spacings in the good bands' coverage, and B lies mostly in it
    with pytest.raises(InputError, match=r"MSI band 'B' \(response 1050-1500 nm\): 89 % of its response lies "
                                         r"outside the HSI's wavelengths 420.0-2290.0 nm except 1100.0-1610.0 nm.*"
                                         r"\(here A,C"):
        simulate_raster(reference, _flat([MSI_A, MSI_B, MSI_C]), SCALE, out / "lr.tif", out / "hr.tif")
    assert list(out.iterdir()) == []


# --- reference metrics -------------------------------------------------------------------------------------------

def _fused_and_reference(make_raster, rows=24, cols=24):
    """A reference with a constant band 10 (one pixel of it nodata), a fused raster with band 3 flagged and bands
    6-7 nodata everywhere; both nodata at (0, 0)."""
    reference = _reference_data(rows, cols)
    reference[list(NODATA_BANDS)] = _reference_data(rows, cols, seed=2)[0]  # good in the reference
    reference[9, 4, 4] = NODATA  # nodata in a bad band only
    fused = reference + np.random.default_rng(3).normal(0, 0.01, reference.shape).astype(np.float32)
    fused[list(NODATA_BANDS)] = NODATA
    fused[9] = reference[9] + 0.01
    fused[9, 4, 4] = 0.3
    return (_write(make_raster, fused, "fused.tif", flagged=FLAGGED), fused,
            _write(make_raster, reference, "reference.tif"), reference)


def test_reference_metrics_skip_bad_bands_and_equal_those_of_the_good_bands(make_raster, tmp_path, caplog):
    fused_path, fused, ref_path, ref = _fused_and_reference(make_raster)
    with caplog.at_level(logging.WARNING, logger="cofusion.core.assess"):
        result = assess_reference(fused_path, ref_path, SCALE, sam_map_path=tmp_path / "sam.tif")
    assert all(math.isfinite(result.metrics[m]) for m in ("PSNR", "SSIM", "SAM", "ERGAS", "RMSE"))
    assert result.skipped_bands == ((3, "flagged bad (bbl = 0) in the fused raster"),
                                    (6, "nodata everywhere in the fused raster"),
                                    (7, "nodata everywhere in the fused raster"),
                                    (10, "constant (0.25) in the reference"))
    assert result.skipped.startswith("4 of 12 bands") and "bands 6-7 (1270-1440 nm) nodata everywhere in the " \
        "fused raster" in result.skipped and "band 10 (1950 nm) constant (0.25) in the reference" in result.skipped
    assert "over 8 of 12 bands" in caplog.text

    subset = assess_reference(_good_subset(make_raster, fused, "fused_good.tif"),
                              _good_subset(make_raster, ref, "reference_good.tif"), SCALE,
                              sam_map_path=tmp_path / "sam_good.tif")
    assert subset.skipped_bands == () and subset.skipped == "0 of 8 bands"
    assert result.metrics == pytest.approx(subset.metrics, rel=1e-9)
    # (4, 4) is nodata in the bad band 10 only: valid; only (0, 0) is nodata
    assert result.valid_pixels == subset.valid_pixels == 24 * 24 - 1
    assert result.data_range == subset.data_range
    np.testing.assert_array_equal(read_raster(tmp_path / "sam.tif"), read_raster(tmp_path / "sam_good.tif"))


def test_no_band_good_in_both_is_refused(make_raster):
    data = _reference_data(12, 12)[:2]
    fused, reference = data.copy(), data.copy()
    fused[1] = NODATA
    reference[0] = 0.5
    with pytest.raises(InputError, match=r"No band is good in all of the fused raster .* and the reference .*band 1 "
                                         r"\(420 nm\) constant \(0.5\) in the reference; band 2 .* nodata everywhere "
                                         r"in the fused raster.*nothing to assess"):
        assess_reference(_write(make_raster, fused, "f.tif", wavelengths=WAVELENGTHS[:2]),
                         _write(make_raster, reference, "r.tif", wavelengths=WAVELENGTHS[:2]), SCALE)


# --- QNR ---------------------------------------------------------------------------------------------------------

def test_qnr_skips_bad_bands_of_the_fusion_the_lrhsi_and_the_hrmsi(make_raster, caplog):
    rows, cols = 12, 15
    lr = _reference_data(rows, cols)  # bands 6-7 nodata everywhere, 10 constant; band 3 flagged below
    lr[:, 3, 0] = NODATA
    rng = np.random.default_rng(4)
    fused = lr.repeat(SCALE, 1).repeat(SCALE, 2) + rng.normal(0, 0.01, (12, rows * SCALE, cols * SCALE))
    fused[list(NODATA_BANDS) + list(CONSTANT)] = NODATA
    msi = rng.random((5, rows * SCALE, cols * SCALE)).astype(np.float32)
    msi[4] = 0.5  # a constant HRMSI band
    lr_path = _write(make_raster, lr, "lr.tif", geotransform=LR_GT, flagged=FLAGGED)
    fused_path = _write(make_raster, fused, "fused.tif")
    hr_path = _write(make_raster, msi, "hr.tif", wavelengths=None)
    with caplog.at_level(logging.WARNING, logger="cofusion.core.assess"):
        indices = assess_no_reference(fused_path, lr_path, hr_path)
    assert set(indices) == {"D_lambda", "D_s", "QNR"} and all(math.isfinite(v) for v in indices.values())
    assert [band for band, _ in indices.skipped_bands] == [3, 6, 7, 10]
    assert indices.skipped_bands[0] == (3, "flagged bad (bbl = 0) in the LRHSI")
    assert indices.skipped_bands[3] == (10, "nodata everywhere in the fused raster and constant (0.25) in the LRHSI")
    assert indices.skipped_msi_bands == ((5, "constant (0.5) in the HRMSI"),)
    assert "hyperspectral 4 of 12 bands" in indices.skipped and "HRMSI 1 of 5 bands: band 5" in indices.skipped
    assert "QNR of" in caplog.text

    subset = assess_no_reference(_good_subset(make_raster, fused, "fused_good.tif"),
                                 _good_subset(make_raster, lr, "lr_good.tif", geotransform=LR_GT),
                                 _write(make_raster, msi[:4], "hr_good.tif", wavelengths=None))
    assert subset.skipped == "" and subset.skipped_bands == subset.skipped_msi_bands == ()
    assert dict(indices) == pytest.approx(dict(subset), rel=1e-9)


def test_a_reference_larger_than_its_cropped_fusion_is_assessed_over_the_fusion(make_raster, tmp_path):
    # simulate crops a 25 x 31 reference to 24 x 30 (multiples of 3): the fusion is assessed against the part of
    # the uncropped reference it covers, as against the cropped one; a reference off the grid is refused
    data = _reference_data(rows=25, cols=31)
    reference = _write(make_raster, data, "reference.tif")
    cropped = _write(make_raster, data[:, :24, :30], "cropped.tif")
    fused = _write(make_raster, data[:, :24, :30] * np.float32(1.01), "fused.tif")
    whole = assess_reference(fused, reference, SCALE)
    assert whole.metrics == assess_reference(fused, cropped, SCALE).metrics
    shifted = _write(make_raster, data, "shifted.tif", geotransform=(500005.0, *HR_GT[1:]))
    with pytest.raises(InputError, match="must cover the fused raster on the same grid"):
        assess_reference(fused, shifted, SCALE)
