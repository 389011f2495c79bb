# SPDX-License-Identifier: GPL-2.0-or-later
"""Wald's protocol: the MTF-matched blur, the grid alignment of the decimation, numpy/torch agreement."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cofusion.core.degrade import blur_kernel, blur_sigma, simulate, spatial_degrade, spectral_degrade
from cofusion.core.errors import InputError

SCALES = (2, 3, 4, 5, 6, 7, 8)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """These tests run tiny convolutions: on a shared, busy CPU, OpenMP threads only wait for each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _kernel_offsets(s: int) -> np.ndarray:
    k = blur_kernel(s)
    pad = (k.size - s) // 2
    return np.arange(k.size) - pad - (s - 1) / 2


@pytest.mark.parametrize("s", SCALES)
def test_sigma_gives_mtf_03_at_lr_nyquist(s):
    # A Gaussian's MTF is exp(-2 pi^2 sigma^2 f^2); the LR Nyquist frequency is 1 / (2 s) cycles per HR pixel.
    sigma = blur_sigma(s)
    assert sigma == pytest.approx(0.494 * s, rel=1e-3)
    assert math.exp(-2 * math.pi ** 2 * sigma ** 2 / (2 * s) ** 2) == pytest.approx(0.3)
    # The sampled, truncated kernel keeps that gain.
    k, d = blur_kernel(s), _kernel_offsets(s)
    assert np.sum(k * np.cos(2 * np.pi * d / (2 * s))) == pytest.approx(0.3, abs=0.01)


@pytest.mark.parametrize("s", SCALES)
def test_kernel_sums_to_one_is_symmetric_and_reaches_three_sigma(s):
    k, d = blur_kernel(s), _kernel_offsets(s)
    assert k.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(k, k[::-1], atol=1e-15)
    np.testing.assert_allclose(d, -d[::-1])
    assert d[-1] >= 3 * blur_sigma(s)
    # Even scales sample the kernel at half-pixel offsets, odd scales at whole pixels.
    assert np.allclose(d % 1, 0.5 if s % 2 == 0 else 0.0)


@pytest.mark.parametrize("s", SCALES)
def test_constant_image_stays_constant(s):
    img = np.full((3, 4 * s, 6 * s), 0.37)
    out = spatial_degrade(img, s)
    assert out.shape == (3, 4, 6)
    np.testing.assert_allclose(out, 0.37, atol=1e-12)


@pytest.mark.parametrize("s", SCALES)
def test_lr_pixel_is_centred_on_its_hr_block(s):
    # A ramp along the columns: LR pixel k must read the value at HR column k*s + (s-1)/2, where the kernel
    # does not touch the border (the reflect padding bends the ramp there).
    n = 8 * s
    ramp = np.broadcast_to(np.arange(n, dtype=np.float64), (1, n, n))
    out = spatial_degrade(ramp, s)
    margin = math.ceil(blur_kernel(s).size / (2 * s))
    centres = np.arange(8) * s + (s - 1) / 2
    np.testing.assert_allclose(out[0, 3, margin:8 - margin], centres[margin:8 - margin], atol=1e-9)
    rows = spatial_degrade(np.ascontiguousarray(ramp.transpose(0, 2, 1)), s)
    np.testing.assert_allclose(rows[0, margin:8 - margin, 3], centres[margin:8 - margin], atol=1e-9)


@pytest.mark.parametrize("s", (2, 3, 4, 5))
def test_bright_block_gives_lr_maximum_at_its_pixel_with_symmetric_neighbours(s):
    k = 3
    img = np.zeros((1, 8 * s, 8 * s))
    img[0, k * s:(k + 1) * s, k * s:(k + 1) * s] = 1.0
    out = spatial_degrade(img, s)[0]
    assert np.unravel_index(out.argmax(), out.shape) == (k, k)
    assert out[k, k - 1] == pytest.approx(out[k, k + 1], abs=1e-12)
    assert out[k - 1, k] == pytest.approx(out[k + 1, k], abs=1e-12)
    assert out[k - 2, k] == pytest.approx(out[k + 2, k], abs=1e-12)
    assert out[k - 1, k - 1] == pytest.approx(out[k + 1, k + 1], abs=1e-12)


def test_numpy_and_torch_agree_and_dtypes_are_kept():
    rng = np.random.default_rng(0)
    img64 = rng.random((5, 32, 24))
    out64 = spatial_degrade(img64, 4)
    assert isinstance(out64, np.ndarray) and out64.dtype == np.float64
    t = spatial_degrade(torch.from_numpy(img64), 4)
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float64
    np.testing.assert_allclose(out64, t.numpy(), atol=1e-12)
    out32 = spatial_degrade(img64.astype(np.float32), 4)
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32, out64, atol=1e-5)
    out16 = spatial_degrade((img64 * 65535).astype(np.uint16), 4)
    assert out16.dtype == np.float32
    np.testing.assert_allclose(out16 / 65535, out64, atol=1e-4)


def test_batches_and_leading_dimensions():
    rng = np.random.default_rng(1)
    batch = torch.from_numpy(rng.random((2, 3, 4, 16, 16)).astype(np.float32))
    out = spatial_degrade(batch, 2)
    assert out.shape == (2, 3, 4, 8, 8)
    torch.testing.assert_close(out[1, 2], spatial_degrade(batch[1, 2], 2))
    assert spatial_degrade(batch[0, 0, 0].numpy(), 4).shape == (4, 4)


def test_spectral_degrade_is_the_matrix_product():
    rng = np.random.default_rng(2)
    hr = rng.random((6, 8, 8))
    R = rng.random((3, 6))
    R /= R.sum(axis=1, keepdims=True)
    out = spectral_degrade(hr, R)
    assert out.shape == (3, 8, 8) and out.dtype == np.float64
    np.testing.assert_allclose(out[:, 2, 5], R @ hr[:, 2, 5], atol=1e-12)
    batch = torch.from_numpy(np.stack([hr, 2 * hr]))
    torch.testing.assert_close(spectral_degrade(batch, R)[1], torch.from_numpy(2 * out))
    with pytest.raises(InputError, match="one column per HSI band"):
        spectral_degrade(hr, R[:, :5])


def test_simulate_returns_the_pair_like_its_input_and_backpropagates():
    rng = np.random.default_rng(3)
    hr = rng.random((4, 16, 16))
    R = np.full((2, 4), 0.25)
    lr, msi = simulate(hr, R, 4)
    assert isinstance(lr, np.ndarray) and lr.shape == (4, 4, 4) and msi.shape == (2, 16, 16)
    z = torch.tensor(hr[None], requires_grad=True)
    R_t = torch.tensor(R, requires_grad=True)
    lr_t, msi_t = simulate(z, R_t, 4)
    np.testing.assert_allclose(lr_t.detach().numpy()[0], lr, atol=1e-12)
    (lr_t.sum() + (msi_t ** 2).sum()).backward()
    assert z.grad is not None and torch.all(torch.isfinite(z.grad)) and z.grad.abs().sum() > 0
    assert R_t.grad is not None and R_t.grad.abs().sum() > 0
    small = torch.rand(1, 1, 8, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: spatial_degrade(x, 2), (small,))


@pytest.mark.parametrize("shape, s, match", [((1, 10, 16), 4, "crop it to 8 x 16"), ((1, 16, 18), 4, "16 x 16"),
                                             ((1, 8, 8), 8, "too small"), ((1, 8, 8), 0, "positive integer"),
                                             ((1, 8, 8), 2.0, "positive integer")])
def test_bad_sizes_and_scales_raise_input_error(shape, s, match):
    with pytest.raises(InputError, match=match):
        spatial_degrade(np.zeros(shape), s)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    x = torch.rand(2, 5, 32, 32)
    torch.testing.assert_close(spatial_degrade(x.cuda(), 4).cpu(), spatial_degrade(x, 4), atol=1e-5, rtol=1e-5)
