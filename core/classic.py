# SPDX-License-Identifier: GPL-2.0-or-later
"""Classical (non-deep) hyperspectral / multispectral fusion: the yardstick and the fallback.

Every method takes a low-resolution hyperspectral image ``lr_hsi`` ``(C_hsi, h, w)``, a co-registered
high-resolution multispectral image ``hr_msi`` ``(C_msi, h*s, w*s)`` and the integer scale ``s``, and returns
the fused high-resolution hyperspectral image ``(C_hsi, h*s, w*s)`` float32, in the units of ``lr_hsi``. The
grids follow the benchmark protocol: LR pixel ``k`` is centred on the centre of HR pixels ``[k*s, (k+1)*s)``.

The methods come from pansharpening (one panchromatic band). Fusing with several MSI bands needs the usual
HS+MS extension, made here in one of two ways, both fitted by least squares on the LR grid, where the HSI is
observed, against the MSI degraded by the protocol's sensor model (``core.degrade.spatial_degrade``):

- component substitution (GSA): one intensity per MSI band, a linear combination of the HSI bands; the
  detail (MSI band minus its intensity) reaches the HSI bands through a multivariate regression gain, which
  is the scalar GSA gain when there is one MSI band.
- multi-resolution analysis (SFIM, MTF-GLP-HPM): each HSI band gets its own synthetic panchromatic band, the
  linear combination of the MSI bands (plus an offset) that best predicts that HSI band at low resolution
  (the "hyper-sharpening" of Selva et al. 2015). A fitted combination beats picking the spectrally closest
  MSI band: it needs no wavelengths, uses every MSI band that explains the HSI band, and for an HSI band
  between or outside the MSI bands it still gives a pan whose low-pass matches the band.

References:
  Liu, J. G. (2000). Smoothing filter-based intensity modulation: a spectral preserve image fusion technique
  for improving spatial details. International Journal of Remote Sensing 21(18), 3461-3472.
  Aiazzi, B., Alparone, L., Baronti, S., Garzelli, A., Selva, M. (2006). MTF-tailored multiscale fusion of
  high-resolution MS and Pan imagery. Photogrammetric Engineering & Remote Sensing 72(5), 591-596.
  Aiazzi, B., Baronti, S., Selva, M. (2007). Improving component substitution pansharpening through
  multivariate regression of MS+Pan data. IEEE Trans. Geoscience and Remote Sensing 45(10), 3230-3239.
  Selva, M., Aiazzi, B., Butera, F., Chiarantini, L., Baronti, S. (2015). Hyper-sharpening: a first approach
  on SIM-GA data. IEEE J. Selected Topics in Applied Earth Observations and Remote Sensing 8(6), 3008-3024.
  He, K., Sun, J., Tang, X. (2013). Guided image filtering. IEEE Trans. Pattern Analysis and Machine
  Intelligence 35(6), 1397-1409.
  Vivone, G., Alparone, L., Chanussot, J., Dalla Mura, M., Garzelli, A., Licciardi, G., Restaino, R.,
  Wald, L. (2015). A critical comparison among pansharpening algorithms. IEEE TGRS 53(5), 2565-2586.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from scipy.ndimage import correlate1d

from .degrade import _check_scale, spatial_degrade
from .errors import InputError
from .injection import SceneMoments, back_project, inject, local_regression
from .resample import upsample

#: Relative floor of the low-passed pan in high-pass modulation (SFIM, MTF-GLP-HPM): where the low-passed
#: pan of an HSI band falls below HPM_EPS times that band's mean absolute LR value (dark, zero or negative
#: pixels), the detail is added with gain 1 instead of multiplied by ``band / low-passed pan``, so the
#: division never blows up.
HPM_EPS = 1e-3
#: An MSI band whose standard deviation is at most this fraction of its largest value is flat (LLR leaves it
#: unscaled: dividing by float32 rounding noise would blow it up).
FLAT_BAND_SPREAD = 1e-6
#: Back-projection steps of the blend: the network's default (``ModelConfig.consistency_steps``).
BLEND_STEPS = 2


def upsample_bicubic(lr_hsi: np.ndarray, scale: int) -> np.ndarray:
    """Bicubic upsampling ``(C, h, w) -> (C, h*scale, w*scale)`` float32.

    ``torch.nn.functional.interpolate(mode="bicubic", align_corners=False)`` (Keys' kernel, a = -0.75, edges
    replicated): output pixel centres sit at ``(k + 0.5) / scale - 0.5`` LR pixels, the protocol's alignment.
    """
    scale = _check_scale(scale)
    lr = _check_image(lr_hsi, "lr_hsi")
    return upsample(torch.from_numpy(lr)[None], scale, "bicubic")[0].numpy()


def gsa(lr_hsi: np.ndarray, hr_msi: np.ndarray, scale: int) -> np.ndarray:
    """Adaptive Gram-Schmidt component substitution (GSA; Aiazzi, Baronti, Selva 2007).

    For each MSI band ``j`` the intensity ``I_j`` is the linear combination of the upsampled HSI bands (plus an
    offset) whose weights are fitted by least squares at low resolution: LR HSI against MSI band ``j``
    degraded to the LR grid by the protocol's MTF blur and decimation. The injected detail is ``D = MSI - I``
    ``(C_msi, H, W)``, and band ``k`` of the fused image is ``up_k + sum_j G_kj D_j`` with the regression gain
    ``G = Cov(HSI, I) Cov(I)^-1`` ``(C_hsi, C_msi)`` measured at low resolution; with one MSI band this is the
    GSA gain ``cov(HSI_k, I) / var(I)``. Shapes: ``(C_hsi, h, w)``, ``(C_msi, h*s, w*s)`` ->
    ``(C_hsi, h*s, w*s)`` float32. The fit and the injection are ``core.injection``'s, the same as the network's
    GSA base.
    """
    lr, hr, scale = _check_pair(lr_hsi, hr_msi, scale)
    moments = SceneMoments(lr.shape[0], hr.shape[0])
    moments.add(torch.from_numpy(lr), torch.from_numpy(spatial_degrade(hr, scale)))
    up = torch.from_numpy(upsample_bicubic(lr, scale))[None]
    return inject(up, torch.from_numpy(hr)[None], moments.weights())[0].numpy()


def sfim(lr_hsi: np.ndarray, hr_msi: np.ndarray, scale: int) -> np.ndarray:
    """Smoothing filter-based intensity modulation (SFIM, a high-pass modulation; Liu 2000).

    Band ``k`` of the fused image is ``up_k * P_k / smooth(P_k)``, where ``P_k`` is the HSI band's synthetic
    pan (least-squares combination of the MSI bands, see the module docstring) and ``smooth`` is Liu's
    smoothing filter: a centred box of width ``scale`` HR pixels, applied at full resolution (for an even
    scale the box's two end taps have half weight, which keeps it centred). Division is guarded by
    :data:`HPM_EPS`. Shapes: ``(C_hsi, h, w)``, ``(C_msi, h*s, w*s)`` -> ``(C_hsi, h*s, w*s)`` float32.
    """
    lr, hr, scale = _check_pair(lr_hsi, hr_msi, scale)
    return _hpm(lr, hr, _box(hr, scale), scale)


def mtf_glp_hpm(lr_hsi: np.ndarray, hr_msi: np.ndarray, scale: int) -> np.ndarray:
    """MTF-matched generalised Laplacian pyramid with high-pass modulation (MTF-GLP-HPM).

    Aiazzi et al. 2003/2006; Vivone et al. 2015. Band ``k`` of the fused image is ``up_k * P_k / P_k^L``:
    ``P_k`` is the HSI band's synthetic pan (least-squares combination of the MSI bands, see the module
    docstring) and ``P_k^L`` its low-pass, made exactly like the upsampled HSI: the sensor's MTF-matched
    Gaussian blur and decimation (``core.degrade.spatial_degrade``), then bicubic upsampling. Division is
    guarded by :data:`HPM_EPS`. Shapes: ``(C_hsi, h, w)``, ``(C_msi, h*s, w*s)`` -> ``(C_hsi, h*s, w*s)``
    float32.
    """
    lr, hr, scale = _check_pair(lr_hsi, hr_msi, scale)
    return _hpm(lr, hr, upsample_bicubic(spatial_degrade(hr, scale), scale), scale)


def llr(lr_hsi: np.ndarray, hr_msi: np.ndarray, scale: int) -> np.ndarray:
    """Local linear regression (a multichannel guided filter; He, Sun, Tang 2013): in every 5 x 5 LR-pixel window
    the HSI is regressed on the MSI degraded to the LR grid; the window-averaged coefficients are interpolated
    to the HR grid and applied to the MSI, and the fit's LR residual is added back by bicubic interpolation
    (``core.injection.local_regression``, also the base of the CoFusion network, which explains why it wins at
    edges). The MSI is scaled to unit variance per band first, the units of the fit's ridge term. Shapes:
    ``(C_hsi, h, w)``, ``(C_msi, h*s, w*s)`` -> ``(C_hsi, h*s, w*s)`` float32.
    """
    lr, hr, scale = _check_pair(lr_hsi, hr_msi, scale)
    pixels = hr.reshape(hr.shape[0], -1)
    spread = pixels.std(axis=1, dtype=np.float64)
    flat = spread <= FLAT_BAND_SPREAD * np.abs(pixels).max(axis=1)  # std of a constant band is rounding noise
    hr = hr / np.where(flat, 1.0, spread)[:, None, None]
    fused = local_regression(torch.from_numpy(lr)[None], torch.from_numpy(hr.astype(np.float32))[None], scale)
    return fused[0].numpy()


def _bicubic_only(lr_hsi: np.ndarray, hr_msi: np.ndarray, scale: int) -> np.ndarray:
    """Bicubic upsampling with the fusion signature (the HRMSI is checked, then ignored)."""
    lr, _, scale = _check_pair(lr_hsi, hr_msi, scale)
    return upsample_bicubic(lr, scale)


def blend(lr_hsi: np.ndarray, hr_msi: np.ndarray, scale: int) -> np.ndarray:
    """The CoFusion network's classical base as a method of its own: the mean of GSA and LLR (their errors are
    partly independent: ``core.model.prior``), made consistent with the LRHSI by ``BLEND_STEPS`` steps of
    back-projection (``core.injection.back_project``), as the network's output is. It is what an untrained network
    gives, and what beats LLR where a trained head adds nothing. Shapes: ``(C_hsi, h, w)``, ``(C_msi, h*s, w*s)``
    -> ``(C_hsi, h*s, w*s)`` float32.
    """
    lr, hr, scale = _check_pair(lr_hsi, hr_msi, scale)
    mean = 0.5 * (gsa(lr, hr, scale) + llr(lr, hr, scale))
    return back_project(torch.from_numpy(mean)[None], torch.from_numpy(lr)[None], scale, BLEND_STEPS)[0].numpy()


#: The classical methods by name, each ``function(lr_hsi, hr_msi, scale) -> (C_hsi, h*s, w*s)``.
METHODS: dict[str, Callable[[np.ndarray, np.ndarray, int], np.ndarray]] = {
    "bicubic": _bicubic_only,
    "gsa": gsa,
    "sfim": sfim,
    "mtf_glp_hpm": mtf_glp_hpm,
    "llr": llr,
    "blend": blend,
}


def fuse_classic(method: str, lr_hsi: np.ndarray, hr_msi: np.ndarray, scale: int) -> np.ndarray:
    """Fuse with the classical method named ``method`` (a key of :data:`METHODS`).

    Shapes: ``lr_hsi`` ``(C_hsi, h, w)``, ``hr_msi`` ``(C_msi, h*scale, w*scale)`` -> ``(C_hsi, h*scale,
    w*scale)`` float32. Raises InputError for an unknown method, a bad scale, shapes that do not fit, or
    non-finite values.
    """
    if method not in METHODS:
        raise InputError(f"Unknown classical fusion method {method!r}: choose one of {', '.join(METHODS)}.")
    return METHODS[method](lr_hsi, hr_msi, scale)


def _hpm(lr: np.ndarray, hr: np.ndarray, hr_low: np.ndarray, scale: int) -> np.ndarray:
    """High-pass modulation with one synthetic pan per HSI band.

    ``lr`` ``(C_hsi, h, w)``; ``hr`` and its low-pass ``hr_low`` ``(C_msi, H, W)``. The pan weights are fitted
    at LR against the MSI degraded by the protocol's sensor model; pan and low-passed pan share the weights,
    so ``P_k - P_k^L`` is the weighted sum of the MSI bands' high-pass. Returns ``(C_hsi, H, W)`` float32.
    """
    up = upsample_bicubic(lr, scale)
    weights = _fit(spatial_degrade(hr, scale), lr)  # (C_msi + 1, C_hsi)
    pan_low = _combine(weights, hr_low)
    high = _combine(weights, hr - hr_low, intercept=False)
    floor = HPM_EPS * np.maximum(np.abs(lr).mean(axis=(1, 2)), np.finfo(np.float32).tiny)[:, None, None]
    safe = pan_low > floor
    gain = np.divide(up, pan_low, out=np.ones_like(up), where=safe)
    return up + gain * high


def _box(image: np.ndarray, scale: int) -> np.ndarray:
    """Centred box filter of width ``scale`` pixels over rows and columns, edges replicated; ``(C, H, W)``."""
    taps = np.ones(scale + 1 - scale % 2)
    if scale % 2 == 0:
        taps[[0, -1]] = 0.5
    taps /= scale
    return correlate1d(correlate1d(image, taps, axis=1, mode="nearest"), taps, axis=2, mode="nearest")


def _fit(inputs: np.ndarray, targets: np.ndarray, intercept: bool = True) -> np.ndarray:
    """Least-squares weights predicting each target band from the input bands, pixel by pixel.

    ``inputs`` ``(P, h, w)`` and ``targets`` ``(Q, h, w)`` on the same grid. With ``intercept`` returns
    ``(P + 1, Q)`` (the last row is the offset); without, both sides are centred first (a regression on
    deviations from the mean, i.e. ``Cov(inputs)^-1 Cov(inputs, targets)``) and ``(P, Q)`` comes back.
    Minimum-norm solution when the inputs are collinear (e.g. a constant image or fewer pixels than bands).
    """
    x = inputs.reshape(inputs.shape[0], -1).T.astype(np.float64)
    y = targets.reshape(targets.shape[0], -1).T.astype(np.float64)
    if intercept:
        x = np.hstack([x, np.ones((x.shape[0], 1))])
    else:
        x = x - x.mean(axis=0)
        y = y - y.mean(axis=0)
    return np.linalg.lstsq(x, y, rcond=None)[0]


def _combine(weights: np.ndarray, image: np.ndarray, intercept: bool = True) -> np.ndarray:
    """Apply regression weights to an image: ``(P [+1], Q)`` and ``(P, H, W)`` -> ``(Q, H, W)`` float32."""
    w = weights.astype(np.float32)
    out = np.einsum("pq,phw->qhw", w[: image.shape[0]], image)
    if intercept:
        out += w[-1][:, None, None]
    return out


def _check_image(image: np.ndarray, name: str) -> np.ndarray:
    """A finite ``(C, H, W)`` array with C >= 1, as C-contiguous float32."""
    array = np.asarray(image)
    if array.ndim != 3 or min(array.shape) < 1:
        raise InputError(f"{name} must be an array of shape (bands, rows, cols), got shape {array.shape}.")
    array = np.ascontiguousarray(array, dtype=np.float32)
    if not np.isfinite(array).all():
        raise InputError(f"{name} contains NaN or infinite values: fill or mask nodata before fusing.")
    return array


def _check_pair(lr_hsi: np.ndarray, hr_msi: np.ndarray, scale: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Validate a fusion pair; returns ``(lr (C_hsi, h, w), hr (C_msi, h*s, w*s), scale)`` float32."""
    scale = _check_scale(scale)
    lr, hr = _check_image(lr_hsi, "lr_hsi"), _check_image(hr_msi, "hr_msi")
    expected = (lr.shape[1] * scale, lr.shape[2] * scale)
    if hr.shape[1:] != expected:
        raise InputError(
            f"hr_msi is {hr.shape[1]} x {hr.shape[2]} pixels but must be exactly scale x lr_hsi = "
            f"{expected[0]} x {expected[1]} (lr_hsi {lr.shape[1]} x {lr.shape[2]}, scale {scale}): "
            "crop both to a common extent whose HR size is scale times the LR size."
        )
    return lr, hr, scale
