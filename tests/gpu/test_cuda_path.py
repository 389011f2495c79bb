# SPDX-License-Identifier: GPL-2.0-or-later
"""The CUDA path against the CPU path: the predictor, the engine through the fusion service, the trainer.

Runs where PyTorch sees a CUDA GPU (skipped elsewhere): ``python -m pytest tests/gpu -q -m gpu``; on a lent GPU
machine, which has no GDAL, with the set-up of bench/gpu_throughput.py's docstring (about a minute on an H200).
The model is the bundled trained model on the bundled sample pair (198 AVIRIS bands + 4 Sentinel-2 bands, x4).

Tolerances: float16 autocast moves that model's output by 5.5e-4 of its range on the CPU (its largest change,
tests/core/test_inference.py); CUDA's float16 kernels accumulate in another order, so CUDA against the CPU float32
path is held to 5e-3 of the range at any pixel and 1e-3 as RMS. With ``COFUSION_FP32=1`` and TF32 off, CUDA runs
float32 like the CPU and is held to 1e-4 of the range: the difference at float16 is the precision, not a bug.
"""
import csv
import math

import numpy as np
import pytest
import torch

from cofusion.core.checkpoint import load_checkpoint
from cofusion.core.device import FP32_VARIABLE, compute_plan
from cofusion.core.inference import NetworkPredictor
from cofusion.core.raster import read_info, read_raster, write_raster
from cofusion.core.service import DEFAULT_MODEL, FusionRequest, fuse

if not torch.cuda.is_available():
    pytest.skip("needs a CUDA GPU (torch.cuda.is_available() is False)", allow_module_level=True)

pytestmark = pytest.mark.gpu

SAMPLE = DEFAULT_MODEL.parents[1] / "sample"
#: CUDA float16 against CPU float32, as shares of the output's value range: at any pixel, and as RMS.
FP16_MAX, FP16_RMS = 5e-3, 1e-3
#: CUDA float32 (TF32 off) against CPU float32, share of the value range.
FP32_MAX = 1e-4


def _close_shares(cuda: np.ndarray, cpu: np.ndarray) -> tuple[float, float]:
    """(largest, RMS) difference over the CPU result's value range."""
    error = np.abs(cuda.astype(np.float64) - cpu)
    span = float(np.ptp(cpu))
    return float(error.max()) / span, float(np.sqrt((error ** 2).mean())) / span


@pytest.fixture(scope="module")
def inputs():
    """Random tiles in the sample's value range: lr (2, 198, 16, 16), hr (2, 4, 64, 64), float32."""
    rng = np.random.default_rng(0)
    lr, hr = read_raster(SAMPLE / "lrhsi.tif"), read_raster(SAMPLE / "hrmsi.tif")
    return (rng.uniform(lr.min(), lr.max(), (2, lr.shape[0], 16, 16)).astype(np.float32),
            rng.uniform(hr.min(), hr.max(), (2, hr.shape[0], 64, 64)).astype(np.float32))


def test_auto_is_this_gpu_in_float16_with_bfloat16_training_from_ampere_on(monkeypatch):
    monkeypatch.delenv(FP32_VARIABLE, raising=False)
    plan = compute_plan("auto")
    assert plan.device.type == "cuda" and plan.inference_dtype == torch.float16
    ampere = torch.cuda.get_device_capability(plan.device) >= (8, 0)
    assert plan.training_dtype == (torch.bfloat16 if ampere else torch.float32)
    assert compute_plan("cuda:0").device == torch.device("cuda:0")
    with plan.inference_autocast():
        assert torch.randn(8, 8, device="cuda").mm(torch.randn(8, 8, device="cuda")).dtype == torch.float16


def test_the_predictor_on_cuda_matches_the_cpu_within_float16(inputs, monkeypatch):
    monkeypatch.delenv(FP32_VARIABLE, raising=False)
    cpu = NetworkPredictor.from_checkpoint(DEFAULT_MODEL, "cpu")(*inputs)
    predictor = NetworkPredictor.from_checkpoint(DEFAULT_MODEL, "cuda")
    assert next(predictor.model.parameters()).is_cuda
    cuda = predictor(*inputs)
    assert cuda.dtype == np.float32 and cuda.shape == cpu.shape == (2, 198, 64, 64)
    assert np.isfinite(cuda).all()
    largest, rms = _close_shares(cuda, cpu)
    assert largest < FP16_MAX and rms < FP16_RMS, (largest, rms)


@pytest.fixture
def no_tf32():
    """cuDNN and cuBLAS in IEEE float32 (PyTorch lets cuDNN use TF32 by default), restored afterwards (the flags are
    module properties that monkeypatch cannot restore)."""
    backends = torch.backends
    before = backends.cudnn.allow_tf32, backends.cuda.matmul.allow_tf32
    backends.cudnn.allow_tf32 = backends.cuda.matmul.allow_tf32 = False
    yield
    backends.cudnn.allow_tf32, backends.cuda.matmul.allow_tf32 = before


def test_float32_on_cuda_is_the_cpu_result(inputs, monkeypatch, no_tf32):
    monkeypatch.setenv(FP32_VARIABLE, "1")
    cpu = NetworkPredictor.from_checkpoint(DEFAULT_MODEL, "cpu")(*inputs)
    predictor = NetworkPredictor.from_checkpoint(DEFAULT_MODEL, "cuda")
    assert predictor.plan.inference_dtype == torch.float32
    largest, _ = _close_shares(predictor(*inputs), cpu)
    assert largest < FP32_MAX, largest


@pytest.fixture
def sample_with_nodata(tmp_path):
    """The bundled pair with nodata: LRHSI value -1 in its first LR row (every band), so the outputs have a
    nodata band of 4 HR rows to agree on. Returns (lrhsi, hrmsi) paths."""
    info = read_info(SAMPLE / "lrhsi.tif")
    lr = read_raster(SAMPLE / "lrhsi.tif")
    lr[:, 0, :] = -1.0
    path = tmp_path / "lrhsi.tif"
    write_raster(path, lr, geotransform=info.geotransform, crs_wkt=info.crs_wkt, nodata=-1.0,
                 wavelengths_nm=info.wavelengths_nm, fwhm_nm=info.fwhm_nm)
    return path, SAMPLE / "hrmsi.tif"


def test_the_engine_on_cuda_writes_the_cpu_raster_within_float16(sample_with_nodata, tmp_path, monkeypatch):
    # Several tiles of 48 HR pixels with 16 of overlap, 2 a batch: tiling, batching and blending on the GPU's output.
    monkeypatch.delenv(FP32_VARIABLE, raising=False)
    lrhsi, hrmsi = sample_with_nodata
    results = {}
    for device in ("cpu", "cuda"):
        out = tmp_path / f"{device}.tif"
        result = fuse(FusionRequest(lrhsi, hrmsi, out, device=device, tile=48, overlap=16, batch=2))
        results[device] = result, read_info(out), read_raster(out)
    (cpu_result, cpu_info, cpu), (cuda_result, cuda_info, cuda) = results["cpu"], results["cuda"]
    assert cuda_result.tiles == cpu_result.tiles > 2
    for field in ("width", "height", "band_count", "geotransform", "crs_wkt", "nodata", "wavelengths_nm", "dtype"):
        assert getattr(cuda_info, field) == getattr(cpu_info, field), field
    nodata = cpu_info.nodata[0]
    assert nodata is not None
    cpu_valid, cuda_valid = cpu != nodata, cuda != nodata
    np.testing.assert_array_equal(cuda_valid, cpu_valid)
    assert not cpu_valid[:, :4].any() and cpu_valid[:, 4:].all()  # the nodata LR row, and nothing else
    assert np.isfinite(cuda).all()
    largest, rms = _close_shares(cuda[cpu_valid], cpu[cpu_valid])
    assert largest < FP16_MAX and rms < FP16_RMS, (largest, rms)


def test_a_few_training_steps_on_cuda_give_finite_losses_and_a_model_the_cpu_loads(tmp_path):
    from cofusion.training.api import train_reference
    from cofusion.training.trainer import TrainSettings

    settings = TrainSettings(iterations=6, batch_size=2, patch=16, validate_every=3, warmup=2, device="cuda",
                             model={"width": 8, "top_k": 2})
    out = tmp_path / "model.safetensors"
    result = train_reference([SAMPLE / "reference.tif"], "sentinel2a:B2,B3,B4,B8", 4, out, settings=settings)
    assert result.steps == 6 and result.checkpoint == out and out.is_file()
    with open(result.log, newline="") as log:
        losses = [float(row["loss"]) for row in csv.DictReader(log) if row["loss"]]
    assert len(losses) == 6 and all(math.isfinite(loss) for loss in losses)
    checkpoint = load_checkpoint(out)  # on the CPU: the file holds float32 weights whatever the autocast
    assert all(p.dtype == torch.float32 and p.device.type == "cpu" for p in checkpoint.model.parameters())
    lr, hr = read_raster(SAMPLE / "lrhsi.tif")[None], read_raster(SAMPLE / "hrmsi.tif")[None]
    fused = NetworkPredictor(checkpoint, "cpu")(lr, hr)
    assert fused.shape == (1, lr.shape[1], *hr.shape[2:]) and np.isfinite(fused).all()
