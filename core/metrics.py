# SPDX-License-Identifier: GPL-2.0-or-later
"""Quality metrics of a fused hyperspectral image, as BENCHMARK.md defines them.

With a reference (Wald's protocol): PSNR, SSIM, SAM, ERGAS, RMSE. Without one (real pairs): D_lambda, D_s and
QNR. The numpy functions take ``(C, H, W)`` arrays on [0, 1] (float32 or float64; computed in float64) and
return Python floats; an optional ``mask`` ``(H, W)`` bool marks the valid pixels (False = nodata, excluded).

SSIM and SAM are implemented once, in torch, and exposed as differentiable losses (``ssim_torch``,
``sam_torch``) for ``(B, C, H, W)`` tensors; the numpy functions call them. D_lambda and D_s likewise share their
torch code with ``qnr_torch``, the no-reference loss of pair-mode training, for ``(C, H, W)`` images.

Windowed statistics (SSIM, and the UQI of the no-reference indices) use an 11 x 11 Gaussian window with
sigma 1.5, normalised to sum 1, and only the 'valid' window positions (scikit-image's ``gaussian_weights=True,
use_sample_covariance=False`` convention, also torchmetrics'); an image needs at least 11 x 11 pixels.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .degrade import spatial_degrade
from .errors import InputError

WINDOW_SIZE = 11
WINDOW_SIGMA = 1.5
K1, K2 = 0.01, 0.03
# Elements per chunk of windowed statistics (float64): bounds the memory of SSIM and the UQI pair loops.
_CHUNK_ELEMENTS = 1 << 23


# ----------------------------------------------------------------------------------------------- helpers
def _pair(ref: np.ndarray, est: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both images as float64 ``(C, H, W)`` (a single ``(H, W)`` band is promoted) of one shape."""
    ref64, est64 = (np.asarray(a, dtype=np.float64) for a in (ref, est))
    if ref64.shape != est64.shape:
        raise InputError(f"The reference {ref64.shape} and the estimate {est64.shape} differ in shape; compare "
                         "images of the same bands and size.")
    if ref64.ndim == 2:
        ref64, est64 = ref64[None], est64[None]
    if ref64.ndim != 3:
        raise InputError(f"Expected images (C, H, W); got shape {ref64.shape}.")
    return ref64, est64


def _valid(mask: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
    """The mask as bool ``(H, W)`` (None: all valid); refuses a wrong shape or a mask with no valid pixel."""
    if mask is None:
        return None
    valid = np.asarray(mask, dtype=bool)
    if valid.shape != tuple(shape[-2:]):
        raise InputError(f"The valid-pixel mask {valid.shape} does not match the image size {shape[-2:]}; "
                         "give one bool per pixel (H, W).")
    if not valid.any():
        raise InputError("The valid-pixel mask excludes every pixel: there is nothing to evaluate.")
    return valid


def _band_values(a: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
    """``(C, P)``: each band's values at the valid pixels."""
    return a.reshape(a.shape[0], -1) if valid is None else a[:, valid]


def _gaussian_window(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    offsets = torch.arange(WINDOW_SIZE, dtype=dtype, device=device) - (WINDOW_SIZE - 1) / 2
    window = torch.exp(-0.5 * (offsets / WINDOW_SIGMA) ** 2)
    return window / window.sum()


def _check_window(h: int, w: int) -> None:
    if h < WINDOW_SIZE or w < WINDOW_SIZE:
        raise InputError(f"The image ({h} x {w} pixels) is smaller than the {WINDOW_SIZE} x {WINDOW_SIZE} "
                         "window of SSIM/UQI; evaluate a larger region.")


def _filter(x: torch.Tensor) -> torch.Tensor:
    """Gaussian-window means at the 'valid' positions: ``(..., H, W) -> (..., H - 10, W - 10)``.

    The separable filter runs as two products with banded matrices, ``K_h^T x K_w`` (``K`` is ``(n, n - 10)``,
    column ``j`` holding the window at rows ``j .. j + 10``): the same sums as two 1-D convolutions, but as
    batched matrix products, which a CPU runs (and back-propagates) far faster than convolutions of
    thousands of single-channel images.
    """
    h, w = x.shape[-2:]
    _check_window(h, w)
    return _band_matrix(h, x).T @ x @ _band_matrix(w, x)


def _band_matrix(n: int, like: torch.Tensor) -> torch.Tensor:
    """``(n, n - WINDOW_SIZE + 1)`` matrix whose column ``j`` holds the Gaussian window at rows ``j ..``."""
    g = _gaussian_window(like.dtype, like.device)
    cols = n - WINDOW_SIZE + 1
    matrix = torch.zeros(n, cols, dtype=like.dtype, device=like.device)
    rows = torch.arange(cols, device=like.device)[None, :] + torch.arange(WINDOW_SIZE, device=like.device)[:, None]
    matrix[rows, torch.arange(cols, device=like.device).expand(WINDOW_SIZE, -1)] = g[:, None].expand(-1, cols)
    return matrix


def _index_map(mu_x: torch.Tensor, mu_y: torch.Tensor, e_xx: torch.Tensor, e_yy: torch.Tensor,
               e_xy: torch.Tensor, c1: float, c2: float, eps: float) -> torch.Tensor:
    """SSIM (``c1, c2 > 0``, ``eps = 0``) from windowed moments (the UQI of D_lambda and D_s: ``_quality_map``).

    ``((2 mu_x mu_y + c1)(2 cov + c2)) / ((mu_x^2 + mu_y^2 + c1)(var_x + var_y + c2) + eps)``; the variances are
    clamped at 0 (rounding), as torchmetrics does.
    """
    mu_xy = mu_x * mu_y
    mu_xx, mu_yy = mu_x * mu_x, mu_y * mu_y
    var_x = torch.clamp(e_xx - mu_xx, min=0.0)
    var_y = torch.clamp(e_yy - mu_yy, min=0.0)
    cov = e_xy - mu_xy
    return ((2 * mu_xy + c1) * (2 * cov + c2)) / ((mu_xx + mu_yy + c1) * (var_x + var_y + c2) + eps)


# ------------------------------------------------------------------------------------------------- SSIM
def ssim_map_torch(ref: torch.Tensor, est: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """SSIM map at the valid window positions: ``(..., C, H, W) -> (..., C, H - 10, W - 10)``, differentiable."""
    if ref.shape != est.shape:
        raise InputError(f"SSIM needs images of one shape; got {tuple(ref.shape)} and {tuple(est.shape)}.")
    stats = _filter(torch.stack([ref, est, ref * ref, est * est, ref * est]))
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    return _index_map(*stats, c1=c1, c2=c2, eps=0.0)


def ssim_torch(ref: torch.Tensor, est: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Mean SSIM of ``(B, C, H, W)`` tensors (over images, bands and valid window positions), a torch scalar.

    Every band has the same number of window positions, so this is the mean over bands of the per-band SSIM
    (BENCHMARK.md), averaged over the batch. Differentiable: ``1 - ssim_torch(...)`` is the SSIM loss.
    """
    return ssim_map_torch(ref, est, data_range).mean()


def ssim_per_band(ref: np.ndarray, est: np.ndarray, data_range: float = 1.0, *,
                  mask: np.ndarray | None = None) -> np.ndarray:
    """``(C,)`` SSIM of each band (Gaussian window 11, sigma 1.5, K1 0.01, K2 0.03).

    With ``mask``, only windows lying wholly on valid pixels count (nodata never enters a window).
    """
    ref64, est64 = _pair(ref, est)
    valid = _valid(mask, ref64.shape)
    _check_window(*ref64.shape[-2:])
    centres = None
    if valid is not None:
        invalid = torch.from_numpy(~valid).to(torch.float64)[None, None]
        centres = (F.max_pool2d(invalid, WINDOW_SIZE, stride=1)[0, 0] == 0).numpy()
        if not centres.any():
            raise InputError(f"No {WINDOW_SIZE} x {WINDOW_SIZE} window lies wholly on valid pixels; SSIM needs "
                             "larger valid areas.")
    chunk = max(1, _CHUNK_ELEMENTS // (5 * ref64[0].size))
    values = []
    with torch.no_grad():
        for b in range(0, ref64.shape[0], chunk):
            smap = ssim_map_torch(torch.from_numpy(ref64[b:b + chunk]), torch.from_numpy(est64[b:b + chunk]),
                                  data_range).numpy()
            values.append(smap.mean(axis=(1, 2)) if centres is None else smap[:, centres].mean(axis=1))
    return np.concatenate(values)


def ssim(ref: np.ndarray, est: np.ndarray, data_range: float = 1.0, *, mask: np.ndarray | None = None) -> float:
    """SSIM per band, then the mean over bands (BENCHMARK.md); see ``ssim_per_band``."""
    return float(ssim_per_band(ref, est, data_range, mask=mask).mean())


# -------------------------------------------------------------------------------------------------- SAM
def sam_map_torch(ref: torch.Tensor, est: torch.Tensor) -> torch.Tensor:
    """Spectral angle in radians: ``(..., C, H, W) -> (..., H, W)``; 0 where either spectrum has zero norm.

    Uses ``2 atan2(|u - v|, |u + v|)`` on the unit spectra (accurate at small angles, unlike ``acos``, and with
    a finite gradient), so it also serves as a loss.
    """
    if ref.shape != est.shape:
        raise InputError(f"SAM needs images of one shape; got {tuple(ref.shape)} and {tuple(est.shape)}.")
    n_ref = torch.linalg.vector_norm(ref, dim=-3, keepdim=True)
    n_est = torch.linalg.vector_norm(est, dim=-3, keepdim=True)
    both = ((n_ref > 0) & (n_est > 0)).squeeze(-3)
    u = ref / torch.where(n_ref > 0, n_ref, torch.ones_like(n_ref))
    v = est / torch.where(n_est > 0, n_est, torch.ones_like(n_est))
    # Where a spectrum is zero, atan2 gets (|u - v|, 1), not (0, 0): PyTorch 2.6's atan2 has a NaN gradient at
    # (0, 0) that the masking below does not remove (0 * NaN); newer releases give 0 there.
    across = torch.linalg.vector_norm(u + v, dim=-3)
    angle = 2 * torch.atan2(torch.linalg.vector_norm(u - v, dim=-3), torch.where(both, across, torch.ones_like(across)))
    return torch.where(both, angle, torch.zeros_like(angle))


def sam_torch(ref: torch.Tensor, est: torch.Tensor) -> torch.Tensor:
    """Mean spectral angle in degrees of ``(B, C, H, W)`` tensors, a differentiable torch scalar."""
    return torch.rad2deg(sam_map_torch(ref, est).mean())


def sam_map(ref: np.ndarray, est: np.ndarray) -> np.ndarray:
    """``(H, W)`` spectral angle in degrees between the spectra ``(C, H, W)``; 0 for a zero-norm spectrum."""
    ref64, est64 = _pair(ref, est)
    with torch.no_grad():
        return np.degrees(sam_map_torch(torch.from_numpy(ref64), torch.from_numpy(est64)).numpy())


def sam(ref: np.ndarray, est: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean spectral angle over the (valid) pixels, degrees."""
    angles = sam_map(ref, est)
    valid = _valid(mask, angles.shape)
    return float(angles.mean() if valid is None else angles[valid].mean())


# ------------------------------------------------------------------------------------ PSNR, RMSE, ERGAS
def rmse_per_band(ref: np.ndarray, est: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """``(C,)`` root-mean-square error of each band over the (valid) pixels, in data units."""
    ref64, est64 = _pair(ref, est)
    valid = _valid(mask, ref64.shape)
    diff = _band_values(ref64 - est64, valid)
    return np.sqrt(np.mean(diff * diff, axis=1))


def rmse(ref: np.ndarray, est: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Root-mean-square error over all bands and (valid) pixels, in data units."""
    return float(np.sqrt(np.mean(rmse_per_band(ref, est, mask) ** 2)))


def psnr_per_band(ref: np.ndarray, est: np.ndarray, mask: np.ndarray | None = None,
                  data_range: float = 1.0) -> np.ndarray:
    """``(C,)`` PSNR of each band in dB, ``10 log10(data_range^2 / MSE_b)``; ``inf`` for a band without error."""
    mse = rmse_per_band(ref, est, mask) ** 2
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(data_range ** 2 / mse)


def psnr(ref: np.ndarray, est: np.ndarray, mask: np.ndarray | None = None, data_range: float = 1.0) -> float:
    """PSNR per band, then the mean over bands (BENCHMARK.md), dB."""
    return float(psnr_per_band(ref, est, mask, data_range).mean())


def ergas(ref: np.ndarray, est: np.ndarray, scale: int, mask: np.ndarray | None = None) -> float:
    """ERGAS ``100 / s * sqrt(mean_b (RMSE_b / mean_b)^2)``, ``mean_b`` the reference band's mean.

    ``inf`` when a reference band has mean 0 (ERGAS is undefined there).
    """
    if isinstance(scale, bool) or not scale > 0:
        raise InputError(f"ERGAS needs the positive resolution ratio (scale); got {scale!r}.")
    ref64, est64 = _pair(ref, est)
    valid = _valid(mask, ref64.shape)
    band_mean = _band_values(ref64, valid).mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = rmse_per_band(ref64, est64, valid) / band_mean
    return float(100.0 / scale * np.sqrt(np.mean(relative ** 2)))


def reference_metrics(ref: np.ndarray, est: np.ndarray, scale: int, mask: np.ndarray | None = None) -> dict:
    """All reference metrics of BENCHMARK.md: ``{'PSNR', 'SSIM', 'SAM', 'ERGAS', 'RMSE'}`` as floats.

    ``ref``/``est`` ``(C, H, W)`` on [0, 1]; PSNR in dB, SAM in degrees. With ``mask``, SSIM uses only windows
    wholly on valid pixels.
    """
    ref64, est64 = _pair(ref, est)
    return {"PSNR": psnr(ref64, est64, mask), "SSIM": ssim(ref64, est64, mask=mask), "SAM": sam(ref64, est64, mask),
            "ERGAS": ergas(ref64, est64, scale, mask), "RMSE": rmse(ref64, est64, mask)}


# ------------------------------------------------------------------------------------- no reference
# D_lambda, D_s and QNR follow torchmetrics (spectral_distortion_index, spatial_distortion_index,
# quality_with_no_reference): UQI = the Gaussian-window (11, 1.5) quality index averaged over the valid window
# positions. Two things differ, both only where torchmetrics is undefined or unreliable: flat windows (below) and
# nodata (a validity mask leaves out every window that touches an invalid pixel).
#
# Q of one window (Wang & Bovik 2002) is the product of a structure/contrast term and a luminance term,
#     Q = S L,   S = 2 cov / (var_x + var_y),   L = 2 mu_x mu_y / (mu_x^2 + mu_y^2),
# both in [-1, 1]; each is 1 where it is 0 / 0 (both variances, or both means, zero: the two quantities are
# equal). So a window where both images are constant has Q = L (1 when they are equal, 2 a b / (a^2 + b^2) for
# constants a and b, 0 when one is 0) and one where a single image is constant has Q = 0, as in Wang's reference
# code (img_qi.m; it sets Q = 1 where both means are 0 but the variances are not, here Q = S). The moments are
# formed in float64 on the bands minus their mean over the valid pixels, so raw units (0..10000 or more) lose
# nothing to cancellation; a window counts as constant when its variance is at most _FLAT_RTOL of its second
# moment about that mean (rounding leaves ~1e-15 of a variance that is 0 in exact arithmetic: torchmetrics' eps
# in the denominator turned such windows into quotients of 1e13 on raw reflectances).
_FLAT_RTOL = 1e-12


def _as_image(a: np.ndarray, what: str) -> torch.Tensor:
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim != 3:
        raise InputError(f"Expected the {what} as (C, H, W); got shape {arr.shape}.")
    _check_window(*arr.shape[-2:])
    return torch.from_numpy(arr)


def _window_ok(valid: np.ndarray | None, what: str) -> torch.Tensor | None:
    """``(H - 10, W - 10)`` bool: the window positions lying wholly on valid pixels of ``valid`` ``(H, W)``.

    Counted with a summed-area table of the invalid pixels (the window's count is 0). None when every pixel is
    valid (all windows count); InputError when no window does.
    """
    if valid is None or valid.all():
        return None
    invalid = np.zeros((valid.shape[0] + 1, valid.shape[1] + 1), dtype=np.int64)
    invalid[1:, 1:] = (~valid).cumsum(axis=0, dtype=np.int64).cumsum(axis=1)
    n = WINDOW_SIZE
    counts = invalid[n:, n:] - invalid[:-n, n:] - invalid[n:, :-n] + invalid[:-n, :-n]
    ok = counts == 0
    if not ok.any():
        raise InputError(f"No {n} x {n} window of the {what} lies wholly on valid pixels ({int(valid.sum())} of "
                         f"{valid.size} valid), so its quality index is undefined; assess a raster whose valid "
                         f"area holds at least one {n} x {n} block of pixels.")
    return torch.from_numpy(ok)


class _Moments:
    """Windowed moments of the bands of ``img`` ``(C, H, W)`` float64 where ``valid`` ``(H, W)`` (None: all).

    Invalid pixels are set to the band's mean over the valid ones (their windows are left out, but the filter
    matrices spread every value, a NaN too, over whole rows), then ``centred`` holds the bands minus that mean.
    ``mean`` (window means of the data), ``c_mean`` (of ``centred``), ``var`` (0 where ``flat``) and ``flat``
    are ``(C, H - 10, W - 10)``.
    """

    def __init__(self, img: torch.Tensor, valid: np.ndarray | None) -> None:
        if valid is None or valid.all():
            offset = img.mean(dim=(-2, -1), keepdim=True)
        else:
            keep = torch.from_numpy(valid)
            offset = img[:, keep].mean(dim=1)[:, None, None]
            img = torch.where(keep, img, offset)
        self.centred = centred = img - offset
        self.mean = _filter(img)
        self.c_mean = _filter(centred)
        second = _filter(centred * centred)
        var = second - self.c_mean * self.c_mean
        self.flat = var <= _FLAT_RTOL * second
        self.var = torch.where(self.flat, torch.zeros((), dtype=var.dtype), var)

    def band(self, k: int) -> tuple[torch.Tensor, ...]:
        return self.centred[k], self.c_mean[k], self.mean[k], self.var[k], self.flat[k]

    def bands(self, start: int, stop: int) -> tuple[torch.Tensor, ...]:
        return (self.centred[start:stop], self.c_mean[start:stop], self.mean[start:stop], self.var[start:stop],
                self.flat[start:stop])


def _one_if_zero(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """``num / den``, 1 where ``den`` is 0 (there ``num`` is 0 too: a 0 / 0 of two equal quantities)."""
    zero = den == 0
    return torch.where(zero, torch.ones((), dtype=num.dtype), num / torch.where(zero, torch.ones_like(den), den))


def _quality_map(a: tuple[torch.Tensor, ...], b: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Q per window (module comment) of band ``a`` against the band(s) ``b`` (``_Moments.band`` tuples)."""
    a_centred, a_cmean, a_mean, a_var, a_flat = a
    b_centred, b_cmean, b_mean, b_var, b_flat = b
    cov = _filter(a_centred * b_centred) - a_cmean * b_cmean
    cov = torch.where(a_flat | b_flat, torch.zeros((), dtype=cov.dtype), cov)  # |cov| <= sqrt(var_a var_b) = 0
    structure = torch.clamp(_one_if_zero(2 * cov, a_var + b_var), -1.0, 1.0)
    luminance = _one_if_zero(2 * a_mean * b_mean, a_mean * a_mean + b_mean * b_mean)
    return structure * luminance


def _window_mean(q: torch.Tensor, ok: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``q`` ``(..., h, w)`` over its last two axes, over the windows ``ok`` (None: all)."""
    if ok is None:
        return q.mean(dim=(-2, -1))
    return torch.where(ok, q, torch.zeros((), dtype=q.dtype)).sum(dim=(-2, -1)) / ok.sum()


def _uqi_rows(a: _Moments, k: int, b: _Moments, start: int, ok: torch.Tensor | None) -> torch.Tensor:
    """Mean UQI of band ``k`` of ``a`` against the bands ``start..`` of ``b`` (same size): ``(N,)``."""
    chunk = max(1, _CHUNK_ELEMENTS // a.centred[k].numel())
    rows = []
    for lo in range(start, b.centred.shape[0], chunk):
        q = _quality_map(a.band(k), b.bands(lo, lo + chunk))
        rows.append(_window_mean(q, ok))
    return torch.cat(rows)


def _uqi_between_bands(moments: _Moments, ok: torch.Tensor | None) -> torch.Tensor:
    """``(C, C)`` symmetric matrix of the mean UQI between every pair of bands (diagonal 0)."""
    c = moments.centred.shape[0]
    q = torch.zeros(c, c, dtype=moments.centred.dtype)
    for k in range(c - 1):
        q[k, k + 1:] = _uqi_rows(moments, k, moments, k + 1, ok)
    return q + q.T


def uqi(x: np.ndarray, y: np.ndarray, *, mask: np.ndarray | None = None) -> float:
    """Universal image quality index (Wang & Bovik 2002) of two ``(H, W)`` bands: Q averaged over the 11 x 11
    Gaussian windows (with ``mask``, ``(H, W)`` bool, those lying wholly on its valid pixels), in [-1, 1].

    A window where both bands are constant, at ``a`` and ``b``, has ``Q = 2 a b / (a^2 + b^2)`` (1 when they are
    equal, 0 included); one where only one band is constant has ``Q = 0``. InputError when no window is valid.
    """
    x64, y64 = _pair(x, y)
    if x64.shape[0] != 1:
        raise InputError(f"uqi compares two single bands (H, W); got shape {x64.shape}.")
    _check_window(*x64.shape[-2:])
    valid = _valid(mask, x64.shape)
    ok = _window_ok(valid, "image")
    with torch.no_grad():
        a, b = (_Moments(torch.from_numpy(v), valid) for v in (x64, y64))
        return float(_window_mean(_quality_map(a.band(0), b.bands(0, 1)), ok)[0])


def _image_and_mask(a: np.ndarray, mask: np.ndarray | None, what: str) -> tuple[torch.Tensor, np.ndarray | None]:
    image = _as_image(a, what)
    return image, _valid(mask, image.shape)


def d_lambda(fused: np.ndarray, lr_hsi: np.ndarray, p: int = 1, *, mask: np.ndarray | None = None,
             lr_mask: np.ndarray | None = None) -> float:
    """Spectral distortion index D_lambda (0 is best; at most 2, as Q lies in [-1, 1]).

    ``(1 / (C (C - 1)) sum_{k != r} |Q(F_k, F_r) - Q(X_k, X_r)|^p)^(1/p)`` with ``Q`` the UQI between two bands
    of the fused image ``F`` ``(C, H, W)`` and of the LRHSI ``X`` ``(C, h, w)`` (both at least 11 x 11 pixels).
    Equals torchmetrics' ``spectral_distortion_index`` on images without constant windows (see the module
    comment above ``_FLAT_RTOL`` for those); 0 for a single band (no pair).

    ``mask`` ``(H, W)`` and ``lr_mask`` ``(h, w)`` (bool, False = nodata) mark the valid pixels of ``F`` and
    ``X``: each ``Q`` is averaged over the windows lying wholly on valid pixels, whatever the invalid pixels
    hold. InputError when no window of an image does.
    """
    if isinstance(p, bool) or not isinstance(p, int) or p <= 0:
        raise InputError(f"The exponent p of D_lambda must be a positive integer; got {p!r}.")
    f, f_valid = _image_and_mask(fused, mask, "fused image")
    x, x_valid = _image_and_mask(lr_hsi, lr_mask, "LRHSI")
    if f.shape[0] != x.shape[0]:
        raise InputError(f"The fused image has {f.shape[0]} bands but the LRHSI {x.shape[0]}; they must match.")
    f_ok, x_ok = _window_ok(f_valid, "fused image"), _window_ok(x_valid, "LRHSI")
    if f.shape[0] < 2:
        return 0.0
    with torch.no_grad():
        return float(_spectral_distortion(_Moments(f, f_valid), _Moments(x, x_valid), f_ok, x_ok, p))


def _spectral_distortion(m_f: _Moments, m_x: _Moments, f_ok: torch.Tensor | None, x_ok: torch.Tensor | None,
                         p: int = 1, pairs: torch.Tensor | None = None) -> torch.Tensor:
    """D_lambda (:func:`d_lambda`) from the moments of the fused image and of the LRHSI, a scalar tensor.

    ``pairs`` ``(2, N)`` long: the band pairs ``(k, r)``, ``k != r``, to average over (None: every pair)."""
    if pairs is None:
        c = m_f.centred.shape[0]
        diff = (_uqi_between_bands(m_f, f_ok) - _uqi_between_bands(m_x, x_ok)).abs() ** p
        return (diff.sum() / (c * (c - 1))) ** (1.0 / p)
    diff = (_pair_quality(m_f, pairs, f_ok) - _pair_quality(m_x, pairs, x_ok)).abs() ** p
    return diff.mean() ** (1.0 / p)


def _pair_quality(moments: _Moments, pairs: torch.Tensor, ok: torch.Tensor | None) -> torch.Tensor:
    """``(N,)``: the mean UQI between bands ``pairs[0]`` and ``pairs[1]`` (``(2, N)`` long)."""
    def pick(index: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(t[index] for t in moments.bands(0, moments.centred.shape[0]))

    return _window_mean(_quality_map(pick(pairs[0]), pick(pairs[1])), ok)


def d_s(fused: np.ndarray, lr_hsi: np.ndarray, hr_msi: np.ndarray, scale: int, q: int = 1, *,
        mask: np.ndarray | None = None, lr_mask: np.ndarray | None = None) -> float:
    """Spatial distortion index D_s (0 is best; at most 2, as Q lies in [-1, 1]).

    ``(1 / (C M) sum_{i, j} |Q(F_i, Y_j) - Q(X_i, Y~_j)|^q)^(1/q)`` over the fused bands ``F_i`` ``(C, H, W)``,
    the LRHSI bands ``X_i`` ``(C, H/s, W/s)``, the HRMSI bands ``Y_j`` ``(M, H, W)`` and ``Y~_j``, the HRMSI
    degraded to the LR grid by ``core.degrade.spatial_degrade`` (the protocol's MTF blur and decimation).

    ``mask`` ``(H, W)``: the HR pixels valid in both ``F`` and ``Y``; ``lr_mask`` ``(H/s, W/s)``: the valid pixels
    of ``X`` (bool, False = nodata). ``Q(F_i, Y_j)`` is averaged over the HR windows lying wholly on valid
    pixels; ``Q(X_i, Y~_j)`` over the LR windows lying wholly on pixels valid in ``X`` whose footprint (their
    ``s x s`` HR pixels) is valid in ``mask``: elsewhere ``Y~`` would be made up, as it is on the HR side's
    excluded area (invalid HR pixels enter the blur as the band's valid mean, so an LR pixel next to a nodata
    area keeps the part of its blur that reaches into it). InputError when no window of either resolution is
    left.

    Where this differs from torchmetrics' ``spatial_distortion_index`` (a pansharpening index) and why:
    torchmetrics pairs fused band i with band i of a panchromatic image given once per band; an HRMSI has its
    own bands (M != C in general), so every HSI band is compared with every MSI band. With one MSI band
    (M = 1) this is exactly torchmetrics' index for the pan band repeated C times with ``pan_lr`` = ``Y~``.
    torchmetrics degrades the pan with a 7 x 7 box filter and a resize when no ``pan_lr`` is given; here the
    degradation is the one the LRHSI is assumed to have (the MTF-matched Gaussian), so that a perfect fusion
    of a Wald-simulated pair scores near 0. Constant windows: see the module comment above ``_FLAT_RTOL``.
    """
    if isinstance(q, bool) or not isinstance(q, int) or q <= 0:
        raise InputError(f"The exponent q of D_s must be a positive integer; got {q!r}.")
    f, hr_valid = _image_and_mask(fused, mask, "fused image")
    x, x_valid = _image_and_mask(lr_hsi, lr_mask, "LRHSI")
    y = _as_image(hr_msi, "HRMSI")
    if f.shape[0] != x.shape[0]:
        raise InputError(f"The fused image has {f.shape[0]} bands but the LRHSI {x.shape[0]}; they must match.")
    if f.shape[1:] != y.shape[1:]:
        raise InputError(f"The fused image ({f.shape[1]} x {f.shape[2]}) and the HRMSI ({y.shape[1]} x "
                         f"{y.shape[2]}) must cover the same HR pixels.")
    with torch.no_grad():
        lr_valid = x_valid
        partial = hr_valid is not None and not hr_valid.all()
        if partial:
            keep = torch.from_numpy(hr_valid)
            y = torch.where(keep, y, y[:, keep].mean(dim=1)[:, None, None])  # no nodata value enters the blur
        y_lr = spatial_degrade(y, scale)
        if x.shape[1:] != y_lr.shape[1:]:
            raise InputError(f"The LRHSI ({x.shape[1]} x {x.shape[2]}) is not the fused image ({f.shape[1]} x "
                             f"{f.shape[2]}) divided by the scale {scale}; check the scale and the crops.")
        if partial:
            h, w = y_lr.shape[1:]
            footprint = hr_valid.reshape(h, scale, w, scale).all(axis=(1, 3))
            lr_valid = footprint if lr_valid is None else lr_valid & footprint
        hr_ok = _window_ok(hr_valid, "fused image and HRMSI")
        lr_ok = _window_ok(lr_valid, "LRHSI (where the HR pixels under it are valid)")
        moments = (_Moments(f, hr_valid), _Moments(x, lr_valid), _Moments(y, hr_valid), _Moments(y_lr, lr_valid))
        return float(_spatial_distortion(*moments, hr_ok, lr_ok, q))


def _spatial_distortion(m_f: _Moments, m_x: _Moments, m_y: _Moments, m_ylr: _Moments, hr_ok: torch.Tensor | None,
                        lr_ok: torch.Tensor | None, q: int = 1) -> torch.Tensor:
    """D_s (:func:`d_s`) from the moments of the fused image, the LRHSI, the HRMSI and the HRMSI on the LR grid,
    a scalar tensor."""
    total = torch.zeros((), dtype=m_f.centred.dtype, device=m_f.centred.device)
    for j in range(m_y.centred.shape[0]):
        q_hr = _uqi_rows(m_y, j, m_f, 0, hr_ok)
        q_lr = _uqi_rows(m_ylr, j, m_x, 0, lr_ok)
        total = total + ((q_hr - q_lr).abs() ** q).sum()
    return (total / (m_f.centred.shape[0] * m_y.centred.shape[0])) ** (1.0 / q)


def qnr_torch(fused: torch.Tensor, lr_hsi: torch.Tensor, hr_msi: torch.Tensor, msi_lr: torch.Tensor,
              pairs: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Differentiable ``(D_lambda, D_s)`` (:func:`d_lambda`, :func:`d_s`, exponents 1) of images whose every pixel
    is valid, as scalar tensors on their device: a no-reference loss at full resolution.

    ``fused`` ``(C, H, W)``, ``lr_hsi`` ``(C, H/s, W/s)``, ``hr_msi`` ``(M, H, W)`` and ``msi_lr`` ``(M, H/s, W/s)``,
    the HRMSI degraded to the LR grid as the LRHSI is (the caller's: a training pair holds it already), each at
    least 11 x 11; ``pairs`` ``(2, N)`` long: the band pairs D_lambda averages over (None: all ``C (C - 1)``).
    Computed in float64, as the reported indices are: a window's covariance is a small difference of large moments,
    and in float32 a smooth patch's D_s came out 16 % off (0.0325 against 0.0281). The gradient flows to ``fused``
    only.
    """
    f = fused.double()
    m_f, m_x = _Moments(f, None), _Moments(lr_hsi.double(), None)
    m_y, m_ylr = _Moments(hr_msi.double(), None), _Moments(msi_lr.double(), None)
    spectral = _spectral_distortion(m_f, m_x, None, None, pairs=pairs) if f.shape[0] > 1 else f.sum() * 0
    return spectral, _spatial_distortion(m_f, m_x, m_y, m_ylr, None, None)


def qnr(fused: np.ndarray, lr_hsi: np.ndarray, hr_msi: np.ndarray, scale: int, *, mask: np.ndarray | None = None,
        lr_mask: np.ndarray | None = None, hr_mask: np.ndarray | None = None) -> dict:
    """``{'D_lambda', 'D_s', 'QNR'}`` with ``QNR = (1 - D_lambda)(1 - D_s)`` (exponents 1, q = 1); 1 is best,
    and it lies in [-1, 1] (each D in [0, 2]).

    ``mask``, ``lr_mask`` and ``hr_mask`` (bool, False = nodata) mark the valid pixels of the fused image, the
    LRHSI and the HRMSI: D_lambda uses ``mask`` and ``lr_mask``, D_s ``mask & hr_mask`` and ``lr_mask``.
    """
    f_valid = _valid(mask, np.shape(fused))
    y_valid = _valid(hr_mask, np.shape(hr_msi))
    both = f_valid if y_valid is None else y_valid if f_valid is None else f_valid & y_valid
    dl = d_lambda(fused, lr_hsi, mask=f_valid, lr_mask=lr_mask)
    ds = d_s(fused, lr_hsi, hr_msi, scale, mask=both, lr_mask=lr_mask)
    return {"D_lambda": dl, "D_s": ds, "QNR": (1.0 - dl) * (1.0 - ds)}
