# SPDX-License-Identifier: GPL-2.0-or-later
"""Classical fusion baselines: shapes, exactness on trivial scenes, behaviour on a real crop, input errors."""
import numpy as np
import pytest

from cofusion.core.classic import METHODS, fuse_classic, gsa, upsample_bicubic
from cofusion.core.degrade import simulate, spatial_degrade
from cofusion.core.errors import InputError
from cofusion.core.metrics import psnr
from cofusion.core.raster import RasterReader
from cofusion.core.srf import parse_srf
from cofusion.core.window import Window

FUSION = [m for m in METHODS if m != "bicubic"]


def _smooth(bands: int, h: int, w: int, seed: int) -> np.ndarray:
    """``(bands, h, w)`` float32 sums of slow sinusoids around 0.5 (a detail-free scene)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    waves = [0.5 + 0.2 * np.sin(2 * np.pi * (a * x + b * y) + p) for a, b, p in rng.uniform(0, 0.5, (bands, 3))]
    return np.stack(waves).astype(np.float32)


def _response(msi: int, hsi: int, seed: int) -> np.ndarray:
    """A random positive ``(msi, hsi)`` response matrix, rows summing to 1."""
    r = np.random.default_rng(seed).uniform(0.1, 1.0, (msi, hsi))
    return r / r.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize(("c_hsi", "c_msi", "scale"), [(1, 1, 2), (5, 3, 4), (7, 1, 8), (3, 4, 2), (2, 6, 4)])
def test_shapes_and_dtype_for_any_band_count_and_scale(method, c_hsi, c_msi, scale):
    rng = np.random.default_rng(0)
    lr = rng.uniform(0.1, 1.0, (c_hsi, 6, 5))
    hr = rng.uniform(0.1, 1.0, (c_msi, 6 * scale, 5 * scale))
    out = fuse_classic(method, lr, hr, scale)
    assert out.shape == (c_hsi, 6 * scale, 5 * scale)
    assert out.dtype == np.float32
    assert np.isfinite(out).all()


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("scale", [2, 3, 4, 5, 8])
def test_constant_scene_is_reproduced(method, scale):
    lr = np.broadcast_to(np.linspace(0.2, 0.9, 4, dtype=np.float32)[:, None, None], (4, 3, 4))
    hr = np.broadcast_to(np.array([0.3, 0.7], np.float32)[:, None, None], (2, 3 * scale, 4 * scale))
    expected = np.broadcast_to(lr[:, :1, :1], (4, 3 * scale, 4 * scale))
    np.testing.assert_allclose(fuse_classic(method, lr, hr, scale), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("scale", [2, 3, 4, 5, 8])
def test_without_high_resolution_detail_the_methods_stay_close_to_bicubic(scale):
    lr = _smooth(6, 12, 12, seed=scale)
    projected = np.einsum("mc,chw->mhw", _response(3, 6, seed=scale), lr).astype(np.float32)
    hr = upsample_bicubic(projected, scale)  # the MSI knows nothing the LR HSI does not
    texture = 0.05 * np.random.default_rng(scale).standard_normal(hr.shape).astype(np.float32)
    up = upsample_bicubic(lr, scale)
    for method in FUSION:
        rms = np.sqrt(np.mean((fuse_classic(method, lr, hr, scale) - up) ** 2))
        rms_with_detail = np.sqrt(np.mean((fuse_classic(method, lr, hr + texture, scale) - up) ** 2))
        assert rms < 0.005, method  # 1 % of the signal level 0.5
        assert rms_with_detail > 4 * rms, method  # and the MSI's detail does get through


def test_bicubic_keeps_pixel_centre_alignment():
    """LR pixel k covers HR pixels [k s, (k + 1) s): on a ramp, their mean is k (Keys' a = -0.75 kernel is
    not exact on ramps, but its error is odd-symmetric about each LR pixel centre)."""
    ramp = np.arange(8, dtype=np.float32)[None, None, :].repeat(8, axis=1)  # value = LR column index
    for scale in (2, 3, 4, 8):
        up = upsample_bicubic(ramp, scale)
        block_means = up[0, 0].reshape(8, scale).mean(axis=1)
        np.testing.assert_allclose(block_means[2:6], np.arange(2, 6), atol=1e-5)  # away from replicated edges


def test_gsa_with_one_band_is_the_textbook_gsa():
    """Aiazzi et al. 2007: intensity fitted at LR, gain cov(MS_k, I) / var(I), fused = MS_k + g_k (P - I)."""
    scale = 4
    rng = np.random.default_rng(3)
    lr, pan = rng.uniform(0.1, 1.0, (4, 8, 8)), rng.uniform(0.1, 1.0, (1, 32, 32))
    up = upsample_bicubic(lr, scale).astype(np.float64)
    design = np.hstack([lr.reshape(4, -1).T, np.ones((64, 1))])
    alpha = np.linalg.lstsq(design, spatial_degrade(pan, scale).reshape(-1), rcond=None)[0]
    intensity_lr = design @ alpha
    gains = [np.cov(band.ravel(), intensity_lr)[0, 1] / np.var(intensity_lr, ddof=1) for band in lr]
    intensity = np.einsum("c,chw->hw", alpha[:4], up) + alpha[4]
    expected = up + np.array(gains)[:, None, None] * (pan[0] - intensity)
    np.testing.assert_allclose(gsa(lr, pan, scale), expected, atol=1e-4)


@pytest.mark.parametrize("method", ["sfim", "mtf_glp_hpm"])
def test_high_pass_modulation_survives_a_black_band(method):
    rng = np.random.default_rng(4)
    lr = rng.uniform(0.1, 1.0, (3, 8, 8)).astype(np.float32)
    lr[1] = 0.0  # its synthetic pan and low-passed pan are 0: the division must not blow up
    out = fuse_classic(method, lr, rng.uniform(0.1, 1.0, (2, 32, 32)), 4)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out[1], 0.0, atol=1e-6)


def test_real_crop_fusion_beats_bicubic(shared_data):
    path = shared_data / "cave_balloons.tif"
    with RasterReader(path) as reader:
        reference = reader.read(Window(384, 128, 128, 128)) / np.float32(65535)
        wavelengths = reader.info.wavelengths_nm
    scale = 4
    lr, hr = simulate(reference, parse_srf("sentinel2a:B1,B2,B3").matrix(wavelengths), scale)
    scores = {m: psnr(reference, np.clip(fuse_classic(m, lr, hr, scale), 0, 1)) for m in METHODS}
    assert scores["gsa"] > scores["bicubic"] + 5, scores
    assert scores["mtf_glp_hpm"] > scores["bicubic"] + 5, scores
    assert scores["sfim"] > scores["bicubic"], scores
    assert scores["blend"] > scores["bicubic"] + 5, scores


def test_local_regression_recovers_edges_between_materials():
    # Stripes of three materials, 48 HR pixels wide, with edges off the LR grid: every window of the local fit
    # holds at most two materials, whose spectra are affine in the MSI, also in the bands the one MSI band does
    # not see. One global set of GSA gains cannot follow three materials; the local regression can.
    spectra = np.array([[0.2, 0.3, 0.4, 0.5, 0.6, 0.7], [0.8, 0.6, 0.3, 0.2, 0.4, 0.1],
                        [0.1, 0.5, 0.6, 0.9, 0.2, 0.3]], np.float32)
    material = ((np.arange(192) + 6) // 48) % 3
    reference = np.broadcast_to(spectra[material].T[:, None, :], (6, 96, 192)).copy()
    response = np.array([[0.0, 0.0, 0.5, 0.5, 0.0, 0.0]], np.float32)
    lr, hr = simulate(reference, response, 4)
    inside = (slice(None), slice(16, -16), slice(16, -16))
    scores = {m: psnr(reference[inside], fuse_classic(m, lr, hr, 4)[inside]) for m in ("llr", "gsa")}
    assert scores["llr"] > scores["gsa"] + 10, scores


def test_the_blend_is_the_mean_of_gsa_and_llr_made_consistent_with_the_lrhsi():
    from cofusion.core.degrade import spatial_degrade

    rng = np.random.default_rng(3)
    reference = rng.random((6, 64, 64)).astype(np.float32)
    lr, hr = simulate(reference, rng.random((3, 6)).astype(np.float32) / 6, 4)
    mean = 0.5 * (fuse_classic("gsa", lr, hr, 4) + fuse_classic("llr", lr, hr, 4))
    blended = fuse_classic("blend", lr, hr, 4)
    mismatch = {name: float(np.abs(spatial_degrade(image, 4) - lr).mean())
                for name, image in (("mean", mean), ("blend", blended))}
    assert mismatch["blend"] < 0.5 * mismatch["mean"], mismatch  # back-projection: it reproduces the LRHSI
    assert np.abs(blended - mean).mean() < np.abs(mean).mean() * 0.05  # and stays the mean otherwise


def test_unknown_method_lists_the_known_ones():
    with pytest.raises(InputError, match="gsa, sfim, mtf_glp_hpm"):
        fuse_classic("brovey", np.ones((2, 4, 4)), np.ones((1, 8, 8)), 2)


@pytest.mark.parametrize(("lr_shape", "hr_shape", "scale", "message"), [
    ((2, 4, 4), (1, 8, 9), 2, "exactly scale x lr_hsi"),
    ((2, 4, 4), (1, 16, 16), 2, "exactly scale x lr_hsi"),
    ((4, 4), (1, 8, 8), 2, r"lr_hsi must be an array of shape \(bands, rows, cols\)"),
    ((2, 4, 4), (8, 8), 2, r"hr_msi must be an array of shape \(bands, rows, cols\)"),
    ((0, 4, 4), (1, 8, 8), 2, r"lr_hsi must be an array of shape"),
    ((2, 4, 4), (1, 8, 8), 0, "positive integer"),
    ((2, 4, 4), (1, 8, 8), 2.0, "positive integer"),
])
@pytest.mark.parametrize("method", list(METHODS))
def test_bad_inputs_are_refused(method, lr_shape, hr_shape, scale, message):
    with pytest.raises(InputError, match=message):
        fuse_classic(method, np.ones(lr_shape), np.ones(hr_shape), scale)


def test_non_finite_values_are_refused():
    lr = np.ones((2, 4, 4))
    lr[0, 1, 1] = np.nan
    with pytest.raises(InputError, match="nodata"):
        fuse_classic("gsa", lr, np.ones((1, 8, 8)), 2)


def _detail(path) -> tuple[dict, list]:
    """The fused raster's dataset metadata and its bands' COFUSION_DETAIL items (None where a band has none)."""
    from osgeo import gdal

    ds = gdal.Open(str(path))
    return ds.GetMetadata(), [ds.GetRasterBand(b + 1).GetMetadataItem("COFUSION_DETAIL") for b in range(ds.RasterCount)]


def test_a_classical_fusion_marks_the_bands_outside_the_hrmsi_coverage_extrapolated(make_raster, tmp_path):
    from cofusion.core.band_support import fusion_support, read_marking
    from cofusion.core.classic_raster import fuse_classic_raster
    from cofusion.core.raster import read_info

    wavelengths = tuple(400.0 + 100.0 * k for k in range(22))  # 400-2500 nm
    lr = make_raster(22, 8, 8, wavelengths_nm=wavelengths, fwhm_nm=(10.0,) * 22,
                     geotransform=(500000.0, 40.0, 0.0, 5000000.0, 0.0, -40.0))
    hr = make_raster(3, 32, 32, geotransform=(500000.0, 10.0, 0.0, 5000000.0, 0.0, -10.0))  # an RGB, no metadata
    marked = fuse_classic_raster(lr, hr, tmp_path / "rgb.tif", "gsa", srf="rgb")
    metadata, detail = _detail(marked)
    # the generic RGB responds at half its peak from 415 to 650 nm: 500 and 600 nm measured, 400 and 700-2500 not
    assert detail == ["extrapolated", "measured", "measured"] + ["extrapolated"] * 19
    assert "415-650 nm" in metadata["COFUSION_DETAIL_RULE"] and "rgb" in metadata["COFUSION_DETAIL_RULE"]
    split = fusion_support(read_info(lr), read_info(hr), srf="rgb")
    assert read_marking(marked) == (split.dataset_metadata(), split.band_metadata())  # what the writer was given
    # no SRF and no band metadata in the HRMSI: no band marked, and the dataset says why
    unmarked = fuse_classic_raster(lr, hr, tmp_path / "unknown.tif", "gsa")
    metadata, detail = _detail(unmarked)
    assert detail == [None] * 22 and read_marking(unmarked)[1] == [{}] * 22
    assert metadata["COFUSION_DETAIL_RULE"].startswith("No band is marked measured or extrapolated: the HRMSI's "
                                                       "spectral response is unknown")
    with pytest.raises(InputError, match="The SRF has 4 bands"):
        fuse_classic_raster(lr, hr, tmp_path / "s2.tif", "gsa", srf="sentinel2a")
    assert not (tmp_path / "s2.tif").exists()


@pytest.mark.parametrize("method", ["gsa", "blend", "bicubic"])
def test_an_area_of_a_classical_raster_fusion_is_the_same_pixels_of_a_whole_run(method, make_raster, tmp_path):
    """24 x 24 LR pixels at x4: an area whose block, read with its margin of 16 LR pixels, is the whole scene (LR
    columns and rows 8-15) is the whole run's pixels, on the LR grid or not; elsewhere too for bicubic (nothing
    fitted), while the fitted methods fit their weights on the part of the scene the block reads. Every area is
    georeferenced at its corner; an area outside the grid is refused."""
    from osgeo import gdal

    from cofusion.core.classic_raster import fuse_classic_raster
    from cofusion.core.raster import read_info, read_raster

    lr = make_raster(5, 24, 24, geotransform=(500000.0, 40.0, 0.0, 5000000.0, 0.0, -40.0))
    hr = make_raster(3, 96, 96, geotransform=(500000.0, 10.0, 0.0, 5000000.0, 0.0, -10.0))
    whole = read_raster(fuse_classic_raster(lr, hr, tmp_path / "whole.tif", method))
    for (col, row, width, height), read_whole in (((32, 32, 32, 32), True), ((33, 35, 30, 21), True),
                                                  ((0, 0, 96, 96), True), ((93, 90, 3, 6), False)):
        out = fuse_classic_raster(lr, hr, tmp_path / f"area_{col}_{row}.tif", method,
                                  region=Window(col, row, width, height))
        area = read_raster(out)
        assert area.shape == (5, height, width) and gdal.Open(str(out)).RasterCount == 5
        if read_whole or method == "bicubic":
            np.testing.assert_array_equal(area, whole[:, row:row + height, col:col + width])
        assert read_info(out).geotransform == (500000.0 + 10.0 * col, 10.0, 0.0, 5000000.0 - 10.0 * row, 0.0, -10.0)
    with pytest.raises(InputError, match="inside the 96 x 96 output grid"):
        fuse_classic_raster(lr, hr, tmp_path / "outside.tif", method, region=Window(90, 0, 10, 10))
    assert not (tmp_path / "outside.tif").exists()
