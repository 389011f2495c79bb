# SPDX-License-Identifier: GPL-2.0-or-later
"""The training loss is the float32 loss of the prediction whatever the autocast dtype.

The network may run under bfloat16 autocast (the GPU path, ``core.device.ComputePlan.training_autocast``); L1 and SSIM
must not: SSIM's window sums are matrix products, which autocast runs in bfloat16, and E[x^2] - E[x]^2 then cancels to
noise. On CPU, ``torch.autocast("cpu", dtype=torch.bfloat16)`` does the same, so this runs anywhere.
"""
import pytest
import torch

from cofusion.core.metrics import ssim_torch
from cofusion.core.model import ModelConfig, build_model
from cofusion.training.data import Batch
from cofusion.training.trainer import SSIM_WEIGHT, _loss

BANDS, SIZE, VALUE_RANGE = 6, 48, 2.0
#: Identity normalisation: the network's output is the prediction in data units.
STATS = [torch.zeros(1, BANDS, 1, 1), torch.ones(1, BANDS, 1, 1), torch.zeros(1, 1, 1, 1), torch.ones(1, 1, 1, 1)]


def _bf16():
    return torch.autocast("cpu", dtype=torch.bfloat16)


def _scene(noise: float = 0.004, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A smooth target (1, C, H, W) with an offset (0.6 +- 0.1 of the value range, where E[x^2] - E[x]^2 cancels)
    and a prediction off by ``noise`` (of the value range): a true SSIM near 0.99."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, SIZE), torch.linspace(0, 1, SIZE), indexing="ij")
    target = torch.stack([0.6 + 0.1 * torch.sin(6 * xx + b) * torch.cos(5 * yy - b) for b in range(BANDS)])[None]
    gen = torch.Generator().manual_seed(seed)
    prediction = target + noise * torch.randn(target.shape, generator=gen)
    return VALUE_RANGE * target, VALUE_RANGE * prediction


class _Replay(torch.nn.Module):
    """A 'network' that returns a fixed prediction through an identity linear layer, so that under bfloat16
    autocast its output is bfloat16, as the real network's is."""

    def __init__(self, prediction: torch.Tensor) -> None:
        super().__init__()
        self.prediction = prediction
        self.linear = torch.nn.Linear(BANDS, BANDS, bias=False)
        torch.nn.init.eye_(self.linear.weight)

    def forward(self, lr: torch.Tensor, msi: torch.Tensor) -> torch.Tensor:
        return self.linear(self.prediction.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def _batch(target: torch.Tensor) -> Batch:
    return Batch(torch.zeros(1, BANDS, SIZE // 4, SIZE // 4), torch.zeros(1, 1, SIZE, SIZE), target)


def _float32_loss(prediction: torch.Tensor, target: torch.Tensor, weights=None):
    """The float32 loss of ``prediction``, autocast off: (loss, l1, ssim) as floats."""
    out, ref = prediction.detach().float() / VALUE_RANGE, target / VALUE_RANGE
    error = (out - ref).abs()
    l1 = float((error if weights is None else error * weights.view(1, -1, 1, 1)).mean())
    ssim_value = float(ssim_torch(ref, out))
    return l1 + SSIM_WEIGHT * (1.0 - ssim_value), l1, ssim_value


@pytest.mark.parametrize("weights", [None, torch.linspace(0.5, 2.0, BANDS)])
def test_the_loss_under_bfloat16_autocast_is_the_float32_loss_of_the_prediction(weights):
    target, prediction = _scene()
    model = _Replay(prediction)
    with _bf16():
        predicted = model(None, None)
        loss, l1, ssim_value = _loss(model, _batch(target), STATS, VALUE_RANGE, weights)
    assert predicted.dtype == torch.bfloat16  # the network did run in bfloat16
    assert loss.dtype == l1.dtype == ssim_value.dtype == torch.float32
    expected_loss, expected_l1, expected_ssim = _float32_loss(predicted, target, weights)
    assert 0.98 < expected_ssim < 0.995
    assert float(ssim_value) == pytest.approx(expected_ssim, rel=1e-6)
    assert float(l1) == pytest.approx(expected_l1, rel=1e-6)
    assert float(loss.detach()) == pytest.approx(expected_loss, rel=1e-6)
    loss.backward()  # the float32 loss back-propagates into the bfloat16 network
    assert torch.isfinite(model.linear.weight.grad).all() and model.linear.weight.grad.abs().max() > 0


def test_ssim_inside_bfloat16_autocast_is_wrong_which_is_what_the_loss_avoids():
    target, prediction = _scene()
    with _bf16():
        predicted = _Replay(prediction)(None, None).detach().float()
        inside = float(ssim_torch(target / VALUE_RANGE, predicted / VALUE_RANGE))  # the old way
    _, _, float32 = _float32_loss(predicted, target)
    assert abs(inside - float32) > 0.05  # 0.516 for a true 0.986 on this scene: the test can fail for this reason
    with _bf16():
        _, _, ssim_value = _loss(_Replay(prediction), _batch(target), STATS, VALUE_RANGE, None)
    assert float(ssim_value) == pytest.approx(float32, rel=1e-6)


def test_the_real_network_under_bfloat16_autocast_gets_the_float32_loss_of_its_prediction():
    torch.manual_seed(0)
    config = ModelConfig(BANDS, 2, 4, width=8, top_k=2, consistency_steps=1)
    model = build_model(config).eval()  # eval: no dropout, the same prediction twice
    torch.nn.init.normal_(model.head[-1].weight, std=0.1)
    gen = torch.Generator().manual_seed(1)
    lr = torch.rand(1, BANDS, SIZE // 4, SIZE // 4, generator=gen)
    msi = torch.rand(1, 2, SIZE, SIZE, generator=gen)
    with _bf16():
        predicted = model(lr, msi).detach().float()
    target = predicted + 0.01 * torch.randn(predicted.shape, generator=gen)
    batch = Batch(lr, msi, target)
    with _bf16():
        loss, l1, ssim_value = _loss(model, batch, STATS, VALUE_RANGE, None)
    expected_loss, expected_l1, expected_ssim = _float32_loss(predicted, target)
    assert float(ssim_value) == pytest.approx(expected_ssim, rel=1e-6)
    assert float(l1) == pytest.approx(expected_l1, rel=1e-6)
    assert float(loss.detach()) == pytest.approx(expected_loss, rel=1e-6)
