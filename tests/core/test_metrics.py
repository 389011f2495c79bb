# SPDX-License-Identifier: GPL-2.0-or-later
"""Quality metrics: hand-computed values, and cross-checks against scikit-image and torchmetrics."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from cofusion.core import metrics as M
from cofusion.core.degrade import simulate, spatial_degrade
from cofusion.core.errors import InputError
from cofusion.core.srf import parse_srf

try:
    from torchmetrics.functional import image as tm
except ImportError:  # Debian packages no torchmetrics: the suites in Debian chroots (make test-qgis340) lack it
    tm = None
needs_torchmetrics = pytest.mark.skipif(tm is None, reason="torchmetrics is not installed (Debian does not package "
                                                           "it); the venv of make test has it")


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """These tests run tiny convolutions: on a shared, busy CPU, OpenMP threads only wait for each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64))[None]


def _sk_ssim(ref: np.ndarray, est: np.ndarray) -> np.ndarray:
    return np.array([structural_similarity(r, e, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                           data_range=1.0) for r, e in zip(ref, est)])


@pytest.fixture(scope="module")
def random_pair() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    ref = rng.random((5, 40, 36))
    est = np.clip(ref + 0.05 * rng.standard_normal(ref.shape), 0, 1)
    return ref, est


@pytest.fixture(scope="module")
def cave_crop(shared_data) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A 20 x 64 x 64 crop of cave_balloons on [0, 1], its Wald pair (x4) and the bicubic upsampling."""
    gdal = pytest.importorskip("osgeo.gdal")
    ds = gdal.Open(str(shared_data / "cave_balloons.tif"))
    ref = ds.ReadAsArray(400, 200, 64, 64).astype(np.float64) / 65535
    wl = [float(ds.GetRasterBand(i + 1).GetMetadataItem("wavelength")) for i in range(ds.RasterCount)]
    lr, msi = simulate(ref, parse_srf("sentinel2a:B1,B2,B3").matrix(wl), 4)
    up = torch.nn.functional.interpolate(_t(lr), scale_factor=4, mode="bicubic", align_corners=False)[0].numpy()
    return ref, lr, msi, up


# ----------------------------------------------------------------------------------------- by hand
def test_psnr_of_a_constant_error_is_20_db_and_rmse_is_the_error():
    ref = np.full((3, 12, 12), 0.5)
    est = ref + 0.1
    assert M.psnr(ref, est) == pytest.approx(20.0)
    np.testing.assert_allclose(M.psnr_per_band(ref, est), 20.0)
    assert M.rmse(ref, est) == pytest.approx(0.1)
    est[1] = ref[1] + 0.01                      # 40 dB in band 1
    np.testing.assert_allclose(M.psnr_per_band(ref, est), [20.0, 40.0, 20.0])
    assert M.psnr(ref, est) == pytest.approx(80.0 / 3)
    assert M.rmse(ref, est) == pytest.approx(math.sqrt((0.01 + 0.0001 + 0.01) / 3))
    assert M.psnr(ref, ref) == math.inf


def test_sam_of_orthogonal_parallel_and_45_degree_spectra():
    ref = np.zeros((2, 1, 3))
    est = np.zeros((2, 1, 3))
    ref[:, 0, 0], est[:, 0, 0] = (1, 0), (0, 1)          # orthogonal: 90
    ref[:, 0, 1], est[:, 0, 1] = (1, 2), (3, 6)          # parallel: 0
    ref[:, 0, 2], est[:, 0, 2] = (1, 0), (1, 1)          # 45
    np.testing.assert_allclose(M.sam_map(ref, est), [[90.0, 0.0, 45.0]], atol=1e-9)
    assert M.sam(ref, est) == pytest.approx(45.0)
    assert M.sam(ref, est, mask=np.array([[False, True, True]])) == pytest.approx(22.5)
    ref[:, 0, 1] = 0                                      # zero-norm spectrum: 0 by convention
    assert M.sam_map(ref, est)[0, 1] == 0.0


def test_ergas_of_a_known_per_band_error():
    ref = np.stack([np.full((8, 8), 0.2), np.full((8, 8), 0.5)])
    est = ref + np.array([0.02, 0.1])[:, None, None]      # relative errors 0.1 and 0.2
    expected = 100 / 4 * math.sqrt((0.1 ** 2 + 0.2 ** 2) / 2)
    assert M.ergas(ref, est, 4) == pytest.approx(expected)
    np.testing.assert_allclose(M.rmse_per_band(ref, est), [0.02, 0.1])


def test_mask_excludes_nodata_pixels():
    rng = np.random.default_rng(0)
    ref = rng.random((4, 20, 20))
    est = ref.copy()
    est[:, :, 15:] = 7.0                                  # garbage only where the mask says nodata
    valid = np.ones((20, 20), bool)
    valid[:, 15:] = False
    assert M.psnr(ref, est, mask=valid) == math.inf
    assert M.rmse(ref, est, mask=valid) == 0.0
    assert M.ergas(ref, est, 2, mask=valid) == 0.0
    assert M.sam(ref, est, mask=valid) == pytest.approx(0.0, abs=1e-6)
    # SSIM with a mask uses only windows lying wholly on valid pixels: the SSIM of the valid crop.
    est[:, :, :15] = np.clip(ref[:, :, :15] + 0.1 * rng.standard_normal((4, 20, 15)), 0, 1)
    assert M.ssim(ref, est, mask=valid) == pytest.approx(M.ssim(ref[:, :, :15], est[:, :, :15]), abs=1e-12)
    with pytest.raises(InputError, match="does not match"):
        M.psnr(ref, est, mask=valid[:10])
    with pytest.raises(InputError, match="every pixel"):
        M.sam(ref, est, mask=np.zeros((20, 20), bool))


def test_ssim_of_identical_images_is_one_and_of_a_negated_image_below_zero():
    rng = np.random.default_rng(1)
    ref = rng.random((2, 16, 16))
    assert M.ssim(ref, ref) == pytest.approx(1.0)
    assert M.ssim(ref, 1.0 - ref) < 0


def test_errors_name_the_problem():
    with pytest.raises(InputError, match="differ in shape"):
        M.psnr(np.zeros((2, 4, 4)), np.zeros((3, 4, 4)))
    with pytest.raises(InputError, match="smaller than the 11 x 11 window"):
        M.ssim(np.zeros((1, 8, 30)), np.zeros((1, 8, 30)))
    with pytest.raises(InputError, match="bands"):
        M.d_lambda(np.zeros((3, 32, 32)), np.zeros((2, 16, 16)))
    with pytest.raises(InputError, match="divided by the scale"):
        M.d_s(np.zeros((3, 32, 32)), np.zeros((3, 16, 16)), np.zeros((2, 32, 32)), 4)


# ---------------------------------------------------------------- against scikit-image and torchmetrics
def _check_reference_metrics(ref: np.ndarray, est: np.ndarray, scale: int) -> None:
    np.testing.assert_allclose(M.ssim_per_band(ref, est), _sk_ssim(ref, est), atol=1e-9)
    sk_psnr = [peak_signal_noise_ratio(r, e, data_range=1.0) for r, e in zip(ref, est)]
    np.testing.assert_allclose(M.psnr_per_band(ref, est), sk_psnr, rtol=1e-10)
    got = M.reference_metrics(ref.astype(np.float32), est.astype(np.float32), scale)
    assert set(got) == {"PSNR", "SSIM", "SAM", "ERGAS", "RMSE"} and all(isinstance(v, float) for v in got.values())
    assert got["PSNR"] == pytest.approx(np.mean(sk_psnr), abs=1e-4)


def _check_reference_metrics_against_torchmetrics(ref: np.ndarray, est: np.ndarray, scale: int) -> None:
    tm_sam = math.degrees(tm.spectral_angle_mapper(_t(est), _t(ref)).item())
    assert M.sam(ref, est) == pytest.approx(tm_sam, abs=1e-6)
    tm_ergas = tm.error_relative_global_dimensionless_synthesis(_t(est), _t(ref), ratio=scale).item()
    assert M.ergas(ref, est, scale) == pytest.approx(tm_ergas, rel=1e-9)


def test_reference_metrics_match_independent_implementations_on_random_data(random_pair):
    _check_reference_metrics(*random_pair, scale=4)


def test_reference_metrics_match_independent_implementations_on_cave(cave_crop):
    ref, _, _, up = cave_crop
    _check_reference_metrics(ref, up, scale=4)


@needs_torchmetrics
def test_sam_and_ergas_match_torchmetrics_on_random_data(random_pair):
    _check_reference_metrics_against_torchmetrics(*random_pair, scale=4)


@needs_torchmetrics
def test_sam_and_ergas_match_torchmetrics_on_cave(cave_crop):
    ref, _, _, up = cave_crop
    _check_reference_metrics_against_torchmetrics(ref, up, scale=4)


def _tm_no_reference(fused, lr, msi, scale):
    """torchmetrics' D_lambda, and its D_s / QNR averaged over the MSI bands, each given as a repeated pan."""
    msi_lr = spatial_degrade(msi, scale)
    c = fused.shape[0]
    dl = tm.spectral_distortion_index(_t(lr), _t(fused)).item()
    ds = [tm.spatial_distortion_index(_t(fused), _t(lr), _t(np.repeat(m[None], c, 0)),
                                   _t(np.repeat(ml[None], c, 0))).item() for m, ml in zip(msi, msi_lr)]
    return dl, float(np.mean(ds))


@needs_torchmetrics
@pytest.mark.parametrize("source", ["random", "cave"])
def test_no_reference_indices_match_torchmetrics(source, request):
    if source == "random":
        rng = np.random.default_rng(5)
        z = rng.random((4, 48, 48))
        lr, msi = simulate(z, np.array([[0.5, 0.5, 0, 0], [0, 0.2, 0.3, 0.5]]), 4)
        fused = np.clip(z + 0.05 * rng.standard_normal(z.shape), 0, 1)
    else:
        z, lr, msi, fused = request.getfixturevalue("cave_crop")
        z, lr, msi, fused = z[:6], lr[:6], msi, fused[:6]
    tm_dl, tm_ds = _tm_no_reference(fused, lr, msi, 4)
    # torchmetrics keeps its per-pair UQI values in float32 matrices (torch.zeros default dtype): 1e-7 apart.
    assert M.d_lambda(fused, lr) == pytest.approx(tm_dl, abs=1e-6)
    assert M.d_s(fused, lr, msi, 4) == pytest.approx(tm_ds, abs=1e-6)
    q = M.qnr(fused, lr, msi, 4)
    assert q["QNR"] == pytest.approx((1 - tm_dl) * (1 - tm_ds), abs=1e-6)
    # With a single MSI band, D_s and QNR are exactly torchmetrics' pansharpening indices.
    one = msi[:1]
    pan = np.repeat(one, fused.shape[0], 0)
    pan_lr = np.repeat(spatial_degrade(one, 4), fused.shape[0], 0)
    tm_qnr = tm.quality_with_no_reference(_t(fused), _t(lr), _t(pan), _t(pan_lr)).item()
    assert M.qnr(fused, lr, one, 4)["QNR"] == pytest.approx(tm_qnr, abs=1e-6)


def test_no_reference_indices_are_near_zero_for_the_reference_itself():
    rng = np.random.default_rng(6)
    base = torch.nn.functional.interpolate(torch.from_numpy(rng.random((1, 3, 12, 12))), scale_factor=4,
                                           mode="bicubic", align_corners=False)[0].numpy()
    z = np.concatenate([base, 0.5 * base[:1] + 0.5 * base[1:2]])         # 4 correlated, smooth bands
    lr, msi = simulate(z, np.array([[0.5, 0.5, 0, 0], [0, 0, 0.5, 0.5]]), 4)
    q = M.qnr(z, lr, msi, 4)
    noisy = M.qnr(np.clip(z + 0.2 * rng.standard_normal(z.shape), 0, 1), lr, msi, 4)
    assert q["D_s"] < noisy["D_s"] and q["QNR"] > noisy["QNR"]
    assert M.d_lambda(z[:1], lr[:1]) == 0.0                              # one band: no pair


# --------------------------------------------------------------------------------- differentiable
def test_torch_losses_are_differentiable_and_match_numpy(random_pair):
    ref, est = random_pair
    x = torch.tensor(est[None], requires_grad=True)
    loss = 1 - M.ssim_torch(_t(ref), x) + M.sam_torch(_t(ref), x)
    loss.backward()
    assert torch.all(torch.isfinite(x.grad)) and x.grad.abs().sum() > 0
    assert M.ssim_torch(_t(ref), _t(est)).item() == pytest.approx(M.ssim(ref, est), abs=1e-12)
    assert M.sam_torch(_t(ref), _t(est)).item() == pytest.approx(M.sam(ref, est), abs=1e-9)
    # Identical and zero spectra do not poison the gradient.
    same = torch.tensor(ref[None], requires_grad=True)
    zeros = torch.zeros((1, 5, 4, 4), dtype=torch.float64, requires_grad=True)
    (M.sam_torch(_t(ref), same) + M.sam_torch(zeros, zeros)).backward()
    assert torch.all(torch.isfinite(same.grad)) and torch.all(torch.isfinite(zeros.grad))


def test_the_differentiable_no_reference_indices_are_the_numpy_ones():
    rng = np.random.default_rng(8)
    z = rng.random((5, 48, 48))
    lr, msi = simulate(z, np.array([[0.5, 0.5, 0, 0, 0], [0, 0, 0.3, 0.3, 0.4]]), 4)
    fused = np.clip(z + 0.05 * rng.standard_normal(z.shape), 0, 1)
    x = torch.tensor(fused, requires_grad=True)
    d_lambda, d_s = M.qnr_torch(x, *(torch.from_numpy(a) for a in (lr, msi, spatial_degrade(msi, 4))))
    expected = M.qnr(fused, lr, msi, 4)
    assert d_lambda.item() == pytest.approx(expected["D_lambda"], abs=1e-12)
    assert d_s.item() == pytest.approx(expected["D_s"], abs=1e-12)
    (d_lambda + d_s).backward()
    assert torch.all(torch.isfinite(x.grad)) and x.grad.abs().sum() > 0
    # D_lambda over some band pairs: the mean of those pairs' |Q(F_k, F_r) - Q(X_k, X_r)|.
    pairs = torch.tensor([[0, 1, 3], [2, 4, 4]])
    inputs = (torch.from_numpy(a) for a in (fused, lr, msi, spatial_degrade(msi, 4)))
    subset = M.qnr_torch(*inputs, pairs)[0].item()
    by_hand = np.mean([abs(M.uqi(fused[k], fused[r]) - M.uqi(lr[k], lr[r])) for k, r in pairs.T.tolist()])
    assert subset == pytest.approx(by_hand, abs=1e-12) and subset != pytest.approx(d_lambda.item(), abs=1e-6)


def test_bicubic_benchmark_sanity_on_the_cave_test_region(shared_data):
    """BENCHMARK.md: bicubic x4 on cave_balloons' test region gives about 41.7 dB / 1.33 degrees."""
    gdal = pytest.importorskip("osgeo.gdal")
    ds = gdal.Open(str(shared_data / "cave_balloons.tif"))
    ref = ds.ReadAsArray(384, 0, 256, 512).astype(np.float32) / 65535
    wl = [float(ds.GetRasterBand(i + 1).GetMetadataItem("wavelength")) for i in range(ds.RasterCount)]
    lr, _ = simulate(ref, parse_srf("sentinel2a:B1,B2,B3").matrix(wl), 4)
    up = torch.nn.functional.interpolate(torch.from_numpy(lr)[None], scale_factor=4, mode="bicubic",
                                         align_corners=False)[0].numpy()
    assert M.psnr(ref, up) == pytest.approx(41.7, abs=0.3)
    assert M.sam(ref, up) == pytest.approx(1.33, abs=0.05)


# ------------------------------------------------------------------ no reference: nodata and flat windows
def _gaussian_11() -> np.ndarray:
    g = np.exp(-0.5 * ((np.arange(11) - 5.0) / 1.5) ** 2)
    return np.outer(g, g) / g.sum() ** 2


def _brute_uqi(x: np.ndarray, y: np.ndarray, valid: np.ndarray) -> float:
    """Mean Q over the 11 x 11 windows whose pixels are all valid, each window's moments summed directly.

    Wang & Bovik's rules: Q = S L with S = 2 cov / (var_x + var_y) (1 when both windows are constant, 0 when one
    is) and L = 2 mu_x mu_y / (mu_x^2 + mu_y^2) (1 when both means are 0)."""
    w = _gaussian_11()
    wx, wy = (np.lib.stride_tricks.sliding_window_view(np.asarray(a, np.float64), (11, 11)) for a in (x, y))
    ok = np.lib.stride_tricks.sliding_window_view(valid, (11, 11)).all(axis=(-2, -1))
    values = []
    for i, j in zip(*np.nonzero(ok)):
        a, b = wx[i, j], wy[i, j]
        ma, mb = (w * a).sum(), (w * b).sum()
        flat_a, flat_b = a.min() == a.max(), b.min() == b.max()
        if flat_a and flat_b:
            s = 1.0
        elif flat_a or flat_b:
            s = 0.0
        else:
            s = 2 * (w * (a - ma) * (b - mb)).sum() / ((w * (a - ma) ** 2).sum() + (w * (b - mb) ** 2).sum())
        lum = 1.0 if ma == mb == 0 else 2 * ma * mb / (ma * ma + mb * mb)
        values.append(s * lum)
    return float(np.mean(values))


def _brute_d_lambda(f, x, f_valid, x_valid) -> float:
    c = f.shape[0]
    return float(np.mean([abs(_brute_uqi(f[k], f[r], f_valid) - _brute_uqi(x[k], x[r], x_valid))
                          for k in range(c) for r in range(c) if k != r]))


def _footprint_valid(hr_valid: np.ndarray, scale: int) -> np.ndarray:
    """LR pixels whose s x s HR pixels are all valid, pixel by pixel."""
    h, w = hr_valid.shape[0] // scale, hr_valid.shape[1] // scale
    out = np.zeros((h, w), bool)
    for i in range(h):
        for j in range(w):
            out[i, j] = hr_valid[i * scale:(i + 1) * scale, j * scale:(j + 1) * scale].all()
    return out


def _brute_d_s(f, x, y, scale, hr_valid, x_valid) -> float:
    y_lr = spatial_degrade(np.where(hr_valid, y, y[:, hr_valid].mean(axis=1)[:, None, None]), scale)
    lr_valid = x_valid & _footprint_valid(hr_valid, scale)
    return float(np.mean([abs(_brute_uqi(f[i], y[j], hr_valid) - _brute_uqi(x[i], y_lr[j], lr_valid))
                          for i in range(f.shape[0]) for j in range(y.shape[0])]))


@pytest.fixture(scope="module")
def patched_pair() -> dict:
    """A 4-band pair at x2 (64 x 64 HR): HR nodata under an elliptical patch (fused and HRMSI) and at a few
    fused-only pixels, LR nodata at a 2 x 3 block; the clean values and the masks."""
    rng = np.random.default_rng(11)
    smooth = torch.nn.functional.interpolate(torch.from_numpy(rng.random((1, 4, 16, 16))), scale_factor=4,
                                             mode="bicubic", align_corners=False)[0].numpy()
    z = np.clip(smooth + 0.05 * rng.standard_normal(smooth.shape), 0.01, None)
    lr, msi = simulate(z, np.array([[0.5, 0.5, 0, 0], [0, 0.2, 0.3, 0.5]]), 2)
    fused = z + 0.03 * rng.standard_normal(z.shape)
    rows, cols = np.mgrid[:64, :64]
    patch = ((rows - 12) / 6.0) ** 2 + ((cols - 44) / 9.0) ** 2 <= 1
    hr_valid = ~patch
    f_valid = hr_valid.copy()
    f_valid[50, 5], f_valid[58, 60] = False, False
    lr_valid = np.ones((32, 32), bool)
    lr_valid[20:22, 10:13] = False
    return {"fused": fused, "lr": lr, "msi": msi, "f_valid": f_valid, "hr_valid": hr_valid, "lr_valid": lr_valid}


def _with_garbage(pair: dict, scale: float, dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pair times ``scale`` in ``dtype``, with NaN, 0 and 1e30 where the masks say nodata."""
    fused, lr, msi = (np.asarray(pair[k] * scale, dtype) for k in ("fused", "lr", "msi"))
    fused[:, ~pair["f_valid"]] = np.nan
    msi[:, ~pair["hr_valid"]] = 0
    lr[:, ~pair["lr_valid"]] = 1e30
    return fused, lr, msi


@pytest.mark.parametrize("scale, dtype", [(1.0, np.float64), (10000.0, np.float32)])
def test_masked_no_reference_indices_equal_a_brute_force_over_the_valid_windows(patched_pair, scale, dtype):
    p = patched_pair
    fused, lr, msi = _with_garbage(p, scale, dtype)
    clean = [np.asarray(p[k] * scale, dtype).astype(np.float64) for k in ("fused", "lr", "msi")]
    both = p["f_valid"] & p["hr_valid"]
    expected_dl = _brute_d_lambda(clean[0], clean[1], p["f_valid"], p["lr_valid"])
    expected_ds = _brute_d_s(*clean, 2, both, p["lr_valid"])
    assert 0.01 < expected_dl < 0.5 and 0.01 < expected_ds < 0.5
    assert M.d_lambda(fused, lr, mask=p["f_valid"], lr_mask=p["lr_valid"]) == pytest.approx(expected_dl, abs=1e-9)
    assert M.d_s(fused, lr, msi, 2, mask=both, lr_mask=p["lr_valid"]) == pytest.approx(expected_ds, abs=1e-9)
    got = M.qnr(fused, lr, msi, 2, mask=p["f_valid"], lr_mask=p["lr_valid"], hr_mask=p["hr_valid"])
    assert got["D_lambda"] == pytest.approx(expected_dl, abs=1e-9)
    assert got["D_s"] == pytest.approx(expected_ds, abs=1e-9)
    assert got["QNR"] == pytest.approx((1 - expected_dl) * (1 - expected_ds), abs=1e-9)


def test_nodata_columns_give_the_indices_of_the_valid_crop(patched_pair):
    # D_lambda's HR term and the UQI over windows wholly on valid pixels are those of the crop that holds them.
    p = patched_pair
    valid = np.ones((64, 64), bool)
    valid[:, 44:] = False
    fused = p["fused"].copy()
    fused[:, :, 44:] = -7.0
    assert M.d_lambda(fused, p["lr"], mask=valid) == pytest.approx(M.d_lambda(p["fused"][:, :, :44], p["lr"]),
                                                                   abs=1e-12)
    assert M.uqi(fused[0], p["fused"][1], mask=valid) == pytest.approx(
        M.uqi(p["fused"][0, :, :44], p["fused"][1, :, :44]), abs=1e-12)
    assert M.d_lambda(fused, p["lr"]) != pytest.approx(M.d_lambda(p["fused"][:, :, :44], p["lr"]), abs=1e-3)


def test_flat_windows_follow_wang_and_bovik():
    rng = np.random.default_rng(12)
    noise = rng.random((24, 24))
    for value in (0.0, 0.5, 5000.0):                           # both constant and equal: 1, in raw units too
        const = np.full((24, 24), value, np.float32)
        assert M.uqi(const, const) == 1.0
    a, b = np.full((24, 24), 0.2), np.full((24, 24), 0.6)      # both constant, unequal: 2ab / (a^2 + b^2)
    assert M.uqi(a, b) == pytest.approx(2 * 0.12 / (0.04 + 0.36), abs=1e-12)
    assert M.uqi(a, noise) == pytest.approx(0.0, abs=1e-12)    # one constant: 0
    assert M.uqi(np.zeros((24, 24)), noise) == 0.0
    # Images with flat areas (one of them in raw units, 0 .. 10000) against the brute force of the same rules.
    x = (10000 * noise).astype(np.float32)
    x[:14, :] = 4000.0
    y = x.copy()
    assert M.uqi(x, y) == pytest.approx(1.0, abs=1e-12)
    y[:14, :16] = 2500.0
    y[16:, 5:] = (10000 * rng.random((8, 19))).astype(np.float32)
    assert M.uqi(x, y) == pytest.approx(_brute_uqi(x, y, np.ones((24, 24), bool)), abs=1e-9)


def test_a_mean_filled_patch_in_raw_units_keeps_the_indices_in_range(patched_pair):
    # The bug this guards against: a nodata patch filled with the band means holds windows flat in every band
    # (11 x 16 here), whose 0 / eps quotients made D_lambda and D_s ~1e13 on raw reflectances (0 .. 10000).
    p = patched_pair
    fused, lr, msi = (np.asarray(p[k] * 10000, np.float32) for k in ("fused", "lr", "msi"))
    valid = np.ones((64, 64), bool)
    valid[5:26, 30:56] = False
    for image in (fused, msi):
        image[:, ~valid] = image[:, valid].mean(axis=1, keepdims=True)
    got = M.qnr(fused, lr, msi, 2)
    assert 0 <= got["D_lambda"] < 0.5 and 0 <= got["D_s"] < 0.5 and 0.25 < got["QNR"] <= 1
    everywhere = np.ones((64, 64), bool)
    assert got["D_lambda"] == pytest.approx(_brute_d_lambda(fused, lr, everywhere, np.ones((32, 32), bool)),
                                            abs=1e-9)


def test_masked_indices_stay_within_their_bounds(patched_pair):
    # Q lies in [-1, 1], so D_lambda and D_s lie in [0, 2] (not [0, 1]) and QNR in [-1, 1]; a fusion whose bands
    # are anti-correlated where the LRHSI's are correlated reaches D_lambda > 1.
    p = patched_pair
    rng = np.random.default_rng(13)
    fused, lr, msi = _with_garbage(p, 1.0, np.float64)
    flipped = fused.copy()
    flipped[1::2] = 2 * np.nanmean(flipped[1::2], axis=(1, 2), keepdims=True) - flipped[1::2]
    signed = fused - 0.5 + 0.3 * rng.standard_normal(fused.shape)
    holes = p["f_valid"] & (rng.random((64, 64)) > 0.002)   # a few more nodata pixels
    for candidate in (fused, flipped, signed, -fused, rng.random(fused.shape)):
        for f_mask in (p["f_valid"], holes):
            got = M.qnr(candidate, lr, msi, 2, mask=f_mask, lr_mask=p["lr_valid"], hr_mask=p["hr_valid"])
            assert 0 <= got["D_lambda"] <= 2 and 0 <= got["D_s"] <= 2 and -1 <= got["QNR"] <= 1, got
    base_hr, base_lr = 0.5 + 0.2 * rng.random((64, 64)), 0.5 + 0.2 * rng.random((32, 32))
    correlated = np.stack([base_lr, base_lr + 0.01 * rng.random((32, 32))])
    opposed = np.stack([base_hr, 1.2 - base_hr])
    assert M.d_lambda(opposed, correlated, mask=p["f_valid"], lr_mask=p["lr_valid"]) > 1.5


def test_no_window_on_valid_pixels_is_an_input_error(patched_pair):
    p = patched_pair
    small = np.zeros((64, 64), bool)
    small[20:30, 20:30] = True                                 # 10 x 10 valid: no 11 x 11 window
    lr_small = np.zeros((32, 32), bool)
    lr_small[:10, :] = True
    with pytest.raises(InputError, match=r"No 11 x 11 window of the fused image lies wholly on valid pixels.*"
                                         r"at least one 11 x 11 block"):
        M.d_lambda(p["fused"], p["lr"], mask=small)
    with pytest.raises(InputError, match="No 11 x 11 window of the LRHSI"):
        M.d_lambda(p["fused"], p["lr"], lr_mask=lr_small)
    with pytest.raises(InputError, match="No 11 x 11 window of the fused image and HRMSI"):
        M.qnr(p["fused"], p["lr"], p["msi"], 2, hr_mask=small)
    with pytest.raises(InputError, match="No 11 x 11 window of the image"):
        M.uqi(p["fused"][0], p["fused"][1], mask=small)
    hr_rows = np.ones((64, 64), bool)
    hr_rows[::20] = False                                      # every LR window covers an LR row over a nodata row
    assert math.isfinite(M.d_lambda(p["fused"], p["lr"], mask=hr_rows))
    with pytest.raises(InputError, match="No 11 x 11 window of the LRHSI .where the HR pixels under it are valid"):
        M.d_s(p["fused"], p["lr"], p["msi"], 2, mask=hr_rows)
    one = np.zeros((64, 64), bool)
    one[20:31, 20:31] = True                                   # 11 x 11 valid: exactly one window
    assert math.isfinite(M.d_lambda(p["fused"], p["lr"], mask=one))
