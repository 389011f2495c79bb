# SPDX-License-Identifier: GPL-2.0-or-later
"""assess_no_reference on pairs with nodata: D_lambda, D_s and QNR use only the windows lying wholly on valid
pixels of each raster (core.metrics.qnr with the rasters' masks), checked against a brute force over the windows;
a valid area smaller than one window is refused; the real Houston pair's nodata patch gives indices in range."""
from __future__ import annotations

import numpy as np
import pytest

from cofusion.core import metrics as M
from cofusion.core.assess import assess_no_reference
from cofusion.core.degrade import simulate, spatial_degrade
from cofusion.core.errors import InputError
from cofusion.core.window import Window

torch = pytest.importorskip("torch")

SCALE = 2
LR_GT = (500000.0, 20.0, 0.0, 5000000.0, 0.0, -20.0)
HR_GT = (500000.0, 10.0, 0.0, 5000000.0, 0.0, -10.0)
WAVELENGTHS = (450.0, 550.0, 650.0, 800.0)
NODATA = -9999.0


def _uqi(x: np.ndarray, y: np.ndarray, valid: np.ndarray) -> float:
    """Brute force: mean Q (Wang & Bovik) over the 11 x 11 Gaussian windows (sigma 1.5) whose pixels are all
    valid, each window's moments summed directly. No window here is constant."""
    g = np.exp(-0.5 * ((np.arange(11) - 5.0) / 1.5) ** 2)
    w = np.outer(g, g) / g.sum() ** 2
    wx, wy = (np.lib.stride_tricks.sliding_window_view(np.asarray(a, np.float64), (11, 11)) for a in (x, y))
    ok = np.lib.stride_tricks.sliding_window_view(valid, (11, 11)).all(axis=(-2, -1))
    values = []
    for i, j in zip(*np.nonzero(ok)):
        a, b = wx[i, j], wy[i, j]
        ma, mb = (w * a).sum(), (w * b).sum()
        cov = (w * (a - ma) * (b - mb)).sum()
        var = (w * (a - ma) ** 2).sum() + (w * (b - mb) ** 2).sum()
        values.append(4 * cov * ma * mb / (var * (ma * ma + mb * mb)))
    return float(np.mean(values))


def _brute_qnr(f, x, y, f_valid, x_valid, y_valid) -> dict:
    c, m = f.shape[0], y.shape[0]
    dl = np.mean([abs(_uqi(f[k], f[r], f_valid) - _uqi(x[k], x[r], x_valid))
                  for k in range(c) for r in range(c) if k != r])
    hr_valid = f_valid & y_valid
    lr_valid = x_valid.copy()  # and the LR pixels whose HR pixels are all valid
    for i in range(x.shape[1]):
        for j in range(x.shape[2]):
            lr_valid[i, j] &= hr_valid[i * SCALE:(i + 1) * SCALE, j * SCALE:(j + 1) * SCALE].all()
    y_lr = spatial_degrade(np.where(hr_valid, y, y[:, hr_valid].mean(axis=1)[:, None, None]), SCALE)
    ds = np.mean([abs(_uqi(f[i], y[j], hr_valid) - _uqi(x[i], y_lr[j], lr_valid))
                  for i in range(c) for j in range(m)])
    return {"D_lambda": dl, "D_s": ds, "QNR": (1 - dl) * (1 - ds)}


@pytest.fixture
def patched_pair(make_raster):
    """A raw-unit pair (UInt16 LRHSI 4 x 32 x 32 and HRMSI 2 x 64 x 64, nodata 0) and a float32 fusion (nodata
    -9999): the HRMSI and the fusion have nodata under a patch, the LRHSI at two pixels, every raster at (0, 0)
    (make_raster's nodata pixel); the values the files hold and the masks."""
    rng = np.random.default_rng(21)
    smooth = torch.nn.functional.interpolate(torch.from_numpy(rng.random((1, 4, 16, 16))), scale_factor=4,
                                             mode="bicubic", align_corners=False)[0].numpy()
    z = 1000 + 8000 * np.clip(smooth + 0.05 * rng.standard_normal(smooth.shape), 0, 1)
    lr, msi = simulate(z, np.array([[0.5, 0.5, 0, 0], [0, 0.2, 0.3, 0.5]]), SCALE)
    lr, msi = np.round(lr).astype(np.uint16), np.round(msi).astype(np.uint16)
    fused = (z + 150 * rng.standard_normal(z.shape)).astype(np.float32)
    rows, cols = np.mgrid[:64, :64]
    patch = (((rows - 30) / 12.0) ** 2 + ((cols - 40) / 8.0) ** 2 <= 1) | ((rows >= 50) & (cols < 20))
    hr_valid = ~patch
    hr_valid[0, 0] = False
    lr_valid = np.ones((32, 32), bool)
    lr_valid[0, 0] = lr_valid[5, 25] = False
    msi[:, ~hr_valid], lr[:, ~lr_valid], fused[:, ~hr_valid] = 0, 0, NODATA
    paths = (make_raster(data=fused, name="fused.tif", geotransform=HR_GT, nodata=NODATA,
                         wavelengths_nm=WAVELENGTHS),
             make_raster(data=lr, name="lr.tif", geotransform=LR_GT, nodata=0, wavelengths_nm=WAVELENGTHS),
             make_raster(data=msi, name="hr.tif", geotransform=HR_GT, nodata=0))
    return paths, (fused, lr, msi), (hr_valid, lr_valid)


def test_qnr_of_a_pair_with_nodata_uses_only_the_windows_on_valid_pixels(patched_pair):
    paths, (fused, lr, msi), (hr_valid, lr_valid) = patched_pair
    got = assess_no_reference(*paths)
    expected = _brute_qnr(fused, lr.astype(np.float64), msi.astype(np.float64), hr_valid, lr_valid, hr_valid)
    assert 0.01 < expected["D_lambda"] < 0.5 and 0.01 < expected["D_s"] < 0.5
    assert dict(got) == pytest.approx(expected, abs=1e-6)
    # The mean-filled images without masks (what the assessment computed before) give other values.
    filled = [a.astype(np.float64) for a in (fused, lr, msi)]
    for image, valid in zip(filled, (hr_valid, lr_valid, hr_valid)):
        image[:, ~valid] = image[:, valid].mean(axis=1, keepdims=True)
    assert M.qnr(*filled, SCALE)["D_lambda"] != pytest.approx(expected["D_lambda"], abs=1e-3)


def test_an_area_is_assessed_on_its_own_pixels_and_must_be_whole_lr_pixels(patched_pair):
    paths, (fused, lr, msi), (hr_valid, lr_valid) = patched_pair
    area = Window(8, 4, 48, 40)                                # HR pixels of the fused raster, whole LR pixels
    rows, cols = slice(4, 44), slice(8, 56)
    lr_rows, lr_cols = slice(2, 22), slice(4, 28)
    expected = _brute_qnr(fused[:, rows, cols], lr[:, lr_rows, lr_cols].astype(np.float64),
                          msi[:, rows, cols].astype(np.float64), hr_valid[rows, cols], lr_valid[lr_rows, lr_cols],
                          hr_valid[rows, cols])
    assert dict(assess_no_reference(*paths, area=area)) == pytest.approx(expected, abs=1e-6)
    assert dict(assess_no_reference(*paths, area=area)) != pytest.approx(dict(assess_no_reference(*paths)), abs=1e-4)
    with pytest.raises(InputError, match=r"not made of whole LR pixels.*multiples of the scale 2"):
        assess_no_reference(*paths, area=Window(1, 4, 48, 40))
    with pytest.raises(InputError):                            # outside the fused raster
        assess_no_reference(*paths, area=Window(32, 0, 48, 40))


def test_a_valid_area_smaller_than_one_window_is_refused(make_raster, patched_pair):
    paths, (_, _, msi), _ = patched_pair
    msi = msi.copy()
    keep = msi[:, 30:40, 10:20].copy()
    msi[:] = 0
    msi[:, 30:40, 10:20] = keep                                # 10 x 10 valid HRMSI pixels
    small = make_raster(data=msi, name="small.tif", geotransform=HR_GT, nodata=0)
    with pytest.raises(InputError, match=r"No 11 x 11 window of the fused image and HRMSI lies wholly on valid "
                                         r"pixels \(100 of 4096 valid\).*at least one 11 x 11 block"):
        assess_no_reference(paths[0], paths[1], small)


def test_the_houston_pair_around_its_nodata_patch(shared_data, make_raster, tmp_path):
    """The real pair's RGB has a nodata patch (about 5000 pixels): a 128 x 128 crop around it, fused by bicubic
    and GSA, has indices in range (before, the patch's flat windows gave D_lambda ~1e13)."""
    gdal = pytest.importorskip("osgeo.gdal")
    from cofusion.core.classic_raster import fuse_classic_raster
    hs = gdal.Open(str(shared_data / "houston2018_casi_hs.tif"))
    rgb = gdal.Open(str(shared_data / "houston2018_vhr_rgb.tif"))
    bands = list(range(0, hs.RasterCount, 4))
    lr = np.stack([hs.GetRasterBand(b + 1).ReadAsArray(72, 32, 32, 32) for b in bands])
    hr = rgb.ReadAsArray(288, 128, 128, 128)
    assert (hr == 0).all(axis=0).sum() > 4000                  # the patch is in the crop
    wavelengths = [float(hs.GetRasterBand(b + 1).GetMetadataItem("wavelength")) for b in bands]
    lr_path = make_raster(data=lr, name="hs.tif", geotransform=(0.0, 1.0, 0.0, 0.0, 0.0, -1.0),
                          wavelengths_nm=wavelengths)
    hr_path = make_raster(data=hr, name="rgb.tif", geotransform=(0.0, 0.25, 0.0, 0.0, 0.0, -0.25), nodata=0)
    for method in ("bicubic", "gsa"):
        fused = fuse_classic_raster(lr_path, hr_path, tmp_path / f"{method}.tif", method)
        got = assess_no_reference(fused, lr_path, hr_path)
        assert 0 <= got["D_lambda"] < 0.2 and 0 <= got["D_s"] < 0.2 and 0.7 < got["QNR"] <= 1, (method, got)
