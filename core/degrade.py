# SPDX-License-Identifier: GPL-2.0-or-later
"""Wald's protocol: simulate a (LRHSI, HRMSI) pair from a high-resolution hyperspectral reference Z.

As BENCHMARK.md states it:

- LRHSI ``X = decimate_s(blur(Z))``: a Gaussian blur matched to a sensor MTF with gain 0.3 at the LR Nyquist
  frequency, ``sigma = s * sqrt(-2 ln 0.3) / pi ~= 0.494 s`` HR pixels, then decimation by ``s``.
- HRMSI ``Y = R · Z`` with ``R`` (MSI bands x HSI bands) from ``core.srf``, rows summing to 1.

Grid alignment: LR pixel ``k`` is centred on the centre of HR pixels ``[k s, (k + 1) s)``, i.e. at HR pixel
coordinate ``k s + (s - 1) / 2`` (pixel centres at integer coordinates). For even ``s`` that is a half-pixel
position, so the kernel is sampled at half-pixel offsets. The LR geotransform is therefore the HR origin with
the pixel size times ``s``.

Everything is implemented once, in torch (separable blur with stride ``s``, reflect padding at the borders: as
matrix products on tiles and patches, as a strided convolution on whole scenes, see ``core.resample``),
differentiable, batched and device-agnostic; numpy arrays are wrapped, not re-implemented.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Union

import numpy as np
import torch
import torch.nn.functional as F

from .errors import InputError
from .resample import decimation_matrix, fits_matrix, separable

MTF_GAIN_AT_NYQUIST = 0.3
# Kernel half-width in units of sigma (the kernel reaches at least this far from the LR pixel centre).
KERNEL_RADIUS_SIGMAS = 3.0

Array = Union[np.ndarray, torch.Tensor]  # evaluated: no X | Y (3.9)


def blur_sigma(scale: int) -> float:
    """Standard deviation (HR pixels) of the Gaussian whose MTF is 0.3 at the LR Nyquist frequency."""
    return _check_scale(scale) * math.sqrt(-2.0 * math.log(MTF_GAIN_AT_NYQUIST)) / math.pi


def blur_kernel(scale: int) -> np.ndarray:
    """The 1-D blur kernel, float64 ``(2 P + s,)``, summing to 1.

    Tap ``t`` weighs the HR pixel at offset ``t - P - (s - 1) / 2`` from the LR pixel centre, where the
    padding ``P = ceil(3 sigma - (s - 1) / 2)`` makes the kernel reach at least 3 sigma on both sides. Applied
    with stride ``s`` to an image padded by ``P`` on each side, output ``k`` is centred at HR
    ``k s + (s - 1) / 2``.
    """
    s = _check_scale(scale)
    sigma = blur_sigma(s)
    pad = max(0, math.ceil(KERNEL_RADIUS_SIGMAS * sigma - (s - 1) / 2))
    offsets = np.arange(2 * pad + s, dtype=np.float64) - pad - (s - 1) / 2
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    return kernel / kernel.sum()


def spatial_degrade(hr: Array, scale: int) -> Array:
    """Blur (MTF-matched Gaussian) and decimate by ``scale``.

    Args:
        hr: numpy ``(C, H, W)`` (or ``(H, W)``) or torch ``(..., C, H, W)``; H and W multiples of ``scale``.
        scale: integer resolution ratio s >= 1.

    Returns:
        ``(..., C, H // s, W // s)``, the same kind (numpy or torch) as ``hr``. Float64 stays float64, other
        numpy dtypes are computed in float32. The torch path is differentiable and runs on ``hr``'s device.

    Raises:
        InputError: H or W not a multiple of ``scale``, or the image too small for the reflect padding.
    """
    return _via_torch(_spatial_degrade, hr, scale)


def spectral_degrade(hr: Array, srf_matrix: Array) -> Array:
    """Apply the spectral response: ``(..., C_hsi, H, W) -> (..., C_msi, H, W)`` with R ``(C_msi, C_hsi)``.

    numpy in -> numpy out, torch in -> torch out (differentiable, also with respect to a torch
    ``srf_matrix``).
    """
    return _via_torch(_spectral_degrade, hr, srf_matrix)


def simulate(hr_hsi: Array, srf_matrix: Array, scale: int) -> tuple[Array, Array]:
    """Wald's protocol: ``(lr_hsi, hr_msi)`` from the HR hyperspectral reference.

    Args:
        hr_hsi: ``(C_hsi, H, W)`` numpy or ``(..., C_hsi, H, W)`` torch, H and W multiples of ``scale``.
        srf_matrix: ``(C_msi, C_hsi)`` response matrix (``SpectralResponse.matrix``).
        scale: integer resolution ratio s.

    Returns:
        ``lr_hsi (..., C_hsi, H / s, W / s)`` and ``hr_msi (..., C_msi, H, W)``, numpy or torch like
        ``hr_hsi``.
    """
    return spatial_degrade(hr_hsi, scale), spectral_degrade(hr_hsi, srf_matrix)


def _check_scale(scale: int) -> int:
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 1:
        raise InputError(f"The scale factor must be a positive integer (2, 4, 8, ...); got {scale!r}.")
    return int(scale)


def _via_torch(fn: Callable[..., torch.Tensor], x: Array, *args) -> Array:
    """Run the torch implementation ``fn(x, *args)``; a numpy ``x`` is wrapped and the result unwrapped."""
    if isinstance(x, torch.Tensor):
        return fn(x if x.is_floating_point() else x.float(), *args)
    arr = np.asarray(x)
    dtype = np.float64 if arr.dtype == np.float64 else np.float32
    with torch.no_grad():
        return fn(torch.from_numpy(np.ascontiguousarray(arr, dtype=dtype)), *args).numpy()


def _spatial_degrade(x: torch.Tensor, scale: int) -> torch.Tensor:
    s = _check_scale(scale)
    if x.ndim < 2:
        raise InputError(f"Expected an image (..., H, W); got shape {tuple(x.shape)}.")
    h, w = x.shape[-2:]
    if h % s or w % s:
        raise InputError(f"The image size {h} x {w} (rows x cols) is not a multiple of the scale {s}; crop "
                         f"it to {h - h % s} x {w - w % s} first.")
    taps = blur_kernel(s)
    pad = (taps.size - s) // 2
    if pad >= min(h, w):
        raise InputError(f"The image ({h} x {w}) is too small to blur for scale {s}: it needs at least "
                         f"{pad + 1} rows and columns (better several LR pixels).")
    if fits_matrix(h, w):
        key = tuple(taps.tolist())
        return separable(x, decimation_matrix(h, key, s), decimation_matrix(w, key, s))
    kernel = torch.as_tensor(taps, dtype=x.dtype, device=x.device)
    y = x.reshape(-1, 1, h, w)
    y = F.pad(y, (pad, pad, pad, pad), mode="reflect")
    y = F.conv2d(y, kernel.view(1, 1, 1, -1), stride=(1, s))
    y = F.conv2d(y, kernel.view(1, 1, -1, 1), stride=(s, 1))
    return y.reshape(*x.shape[:-2], h // s, w // s)


def _spectral_degrade(x: torch.Tensor, srf_matrix: Array) -> torch.Tensor:
    R = torch.as_tensor(srf_matrix, dtype=x.dtype, device=x.device)
    if R.ndim != 2 or x.ndim < 3 or R.shape[1] != x.shape[-3]:
        raise InputError(f"The response matrix {tuple(R.shape)} does not fit the image {tuple(x.shape)}: it "
                         "needs one column per HSI band (C_msi, C_hsi) and the image (..., C_hsi, H, W).")
    return torch.einsum("mc,...chw->...mhw", R, x)
