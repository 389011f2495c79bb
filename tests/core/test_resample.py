# SPDX-License-Identifier: GPL-2.0-or-later
"""Separable resampling matrices: the same operators as torch's kernels, usable with autograd after inference."""
import pytest
import torch
import torch.nn.functional as F

from cofusion.core import resample
from cofusion.core.degrade import spatial_degrade
from cofusion.core.resample import upsample


@pytest.mark.parametrize("mode", ["bicubic", "bilinear"])
@pytest.mark.parametrize(("rows", "cols", "factor"), [(7, 9, 2), (5, 3, 4), (1, 4, 8), (18, 11, 4)])
def test_upsampling_matrices_equal_interpolate(mode, rows, cols, factor):
    x = torch.randn(2, 3, rows, cols, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    expected = F.interpolate(x, scale_factor=factor, mode=mode, align_corners=False)
    torch.testing.assert_close(upsample(x, factor, mode), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize(("rows", "cols", "scale"),
                         [(16, 24, 2), (48, 40, 4), (24, 32, 8), (96, 8, 2), (27, 36, 3), (40, 25, 5)])
def test_degradation_matrices_equal_the_strided_convolution(rows, cols, scale, monkeypatch):
    x = torch.randn(2, 3, rows, cols, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    by_matrix = spatial_degrade(x, scale)
    monkeypatch.setattr(resample, "MAX_MATRIX_SIZE", 0)  # forces the convolution path
    torch.testing.assert_close(by_matrix, spatial_degrade(x, scale), rtol=0, atol=1e-12)


def test_long_axes_use_the_direct_kernels(monkeypatch):
    assert resample.fits_matrix(resample.MAX_MATRIX_SIZE) and not resample.fits_matrix(resample.MAX_MATRIX_SIZE + 1)
    calls = []
    monkeypatch.setattr(resample, "separable", lambda *a: calls.append(a))
    x = torch.zeros(1, 1, 8, resample.MAX_MATRIX_SIZE // 2 + 8)
    assert upsample(x, 2, "bicubic").shape == (1, 1, 16, resample.MAX_MATRIX_SIZE + 16)
    assert not calls
    upsample(x[..., :8], 2, "bicubic")  # a small image does take the matrices
    assert len(calls) == 1


def test_matrices_made_in_inference_mode_still_work_with_autograd():
    # The matrices are cached; one first built under inference_mode must not poison later training steps.
    resample.upsample_matrix.cache_clear()
    resample.decimation_matrix.cache_clear()
    with torch.inference_mode():
        spatial_degrade(upsample(torch.rand(1, 2, 13, 13), 4, "bicubic"), 4)
    x = torch.rand(1, 2, 13, 13, requires_grad=True)
    spatial_degrade(upsample(x, 4, "bicubic"), 4).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0

