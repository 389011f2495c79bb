# SPDX-License-Identifier: GPL-2.0-or-later
"""The CoFusion network: shapes, the SCM update rule and its closed form, the wavelet split, gradients,
determinism, equivariance, ablations, and the CPU-fast forward against its plain reference formulation."""
import contextlib
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch

from cofusion.core import degrade, resample
from cofusion.core.checkpoint import load_checkpoint
from cofusion.core.degrade import spatial_degrade
from cofusion.core.errors import CheckpointError, InputError
from cofusion.core.injection import LOCAL_RADIUS, LOCAL_RIDGE, InjectionWeights
from cofusion.core.model import ModelConfig, blocks, build_model, prior
from cofusion.core.model.blocks import SpectralCoordinateMixing
from cofusion.core.model.layers import (
    WaveletSplit,
    coordinate_update,
    expand_saliency,
    pad_to_multiple,
    top_k_of_relu_outer,
)
from cofusion.core.resample import upsample


def _inputs(config: ModelConfig, lr_size=(5, 7), batch=1, seed=0):
    gen = torch.Generator().manual_seed(seed)
    h, w = lr_size
    lr = torch.rand(batch, config.hsi_bands, h, w, generator=gen)
    hr = torch.rand(batch, config.msi_bands, h * config.scale, w * config.scale, generator=gen)
    return lr, hr


@pytest.mark.parametrize("hsi,msi,scale", [(3, 1, 2), (20, 3, 4), (31, 4, 8), (103, 4, 4), (7, 16, 2),
                                           (224, 4, 3), (9, 3, 5), (6, 1, 6), (5, 2, 7)])
def test_output_shape_for_band_counts_and_scales(hsi, msi, scale):
    config = ModelConfig(hsi, msi, scale, width=16, top_k=4)
    lr, hr = _inputs(config, lr_size=(3, 5), batch=2)
    with torch.inference_mode():
        out = build_model(config).eval()(lr, hr)
    assert out.shape == (2, hsi, 3 * scale, 5 * scale)
    assert torch.isfinite(out).all()


def test_untrained_network_without_a_base_returns_bicubic_upsampling():
    config = ModelConfig(8, 3, 4, width=16, base="bicubic", consistency_steps=0)
    lr, hr = _inputs(config, lr_size=(8, 8))
    with torch.inference_mode():
        out = build_model(config).eval()(lr, hr)
    bicubic = torch.nn.functional.interpolate(lr, scale_factor=4, mode="bicubic", align_corners=False)
    torch.testing.assert_close(out, bicubic)


def test_the_scene_fitted_base_is_the_classical_gsa(shared_data):
    # Jasper Ridge by Wald's protocol at x4, moments added in two halves: the untrained net is core.classic.gsa.
    from cofusion.core.classic import gsa
    from cofusion.core.degrade import simulate, spatial_degrade
    from cofusion.core.injection import SceneMoments
    from cofusion.core.raster import read_info, read_raster
    from cofusion.core.srf import parse_srf

    path = shared_data / "aviris_jasper_ridge.tif"
    reference = read_raster(path)[:, :96, :96] / 10000.0
    srf = parse_srf("sentinel2a:B2,B3,B4,B8").matrix(read_info(path).wavelengths_nm)
    lr, hr = simulate(reference, srf, 4)
    lr_t, hr_t = torch.from_numpy(lr), torch.from_numpy(hr)
    moments = SceneMoments(lr.shape[0], hr.shape[0])
    msi_lr = spatial_degrade(hr_t, 4)
    moments.add(lr_t[:, :, :12], msi_lr[:, :, :12])
    moments.add(lr_t[:, :, 12:], msi_lr[:, :, 12:])
    model = build_model(ModelConfig(lr.shape[0], 4, 4, width=8, top_k=4, base="gsa", consistency_steps=0)).eval()
    model.base.set_weights(moments.weights())
    with torch.inference_mode():
        fused = model(lr_t[None], hr_t[None])[0].numpy()
    expected = gsa(lr, hr, 4)
    np.testing.assert_allclose(fused, expected, atol=1e-5 * abs(expected).max())


def test_coordinate_update_follows_eq4_on_a_hand_made_matrix():
    # Three channels, K = 3 candidates each (descending). Zeros are "no innovation": the state is kept.
    candidates = torch.tensor([[[0.9, 0.5, 0.2],    # all innovations -> last one, 0.2
                                [0.7, 0.0, 0.0],    # innovation then zeros -> 0.7 kept
                                [0.0, 0.0, 0.0]]])  # no innovation -> initial state
    initial = torch.tensor([-1.0, -2.0, -3.0], requires_grad=True)
    state = coordinate_update(candidates, initial)
    torch.testing.assert_close(state, torch.tensor([[0.2, 0.7, -3.0]]))
    state.sum().backward()
    torch.testing.assert_close(initial.grad, torch.tensor([0.0, 0.0, 1.0]))


def _loop_update(candidates, initial):
    """Eq. (4) as the paper writes it (and as SCM computed it until the closed form): a left-to-right loop."""
    state = initial.to(candidates.dtype).expand(candidates.shape[0], -1)
    for k in range(candidates.shape[-1]):
        column = candidates[..., k]
        state = torch.where(column != 0, column, state)
    return state


def _materialised_candidates(u, w, k):
    """M as SCM formed it before: the (N, D, D) matrix ReLU(u_c w_j), then each row's top-K, descending."""
    return torch.topk(torch.relu(u.unsqueeze(-1) * w.unsqueeze(-2)), k, dim=-1, sorted=True).values


def _smallest_positive(candidates, initial):
    """The closed form: the smallest positive candidate of each row, z^0 where a row has none."""
    smallest = candidates.masked_fill(candidates <= 0, float("inf")).amin(-1)
    return torch.where(torch.isinf(smallest), initial.expand_as(smallest), smallest)


def _hard_vectors(count, width, seed):
    """(u, w) pairs (count, width) with the awkward cases: ties (values rounded to few levels), u_c = 0, rows
    whose every product is negative (u > 0 with w < 0, u < 0 with w > 0), all-zero w, and -0.0."""
    gen = torch.Generator().manual_seed(seed)
    u, w = torch.randn(count, width, generator=gen), torch.randn(count, width, generator=gen)
    quarter = count // 4
    u[:quarter], w[:quarter] = (u[:quarter] * 2).round() / 2, (w[:quarter] * 2).round() / 2  # ties, zeros, -0.0
    w[quarter:2 * quarter] = -w[quarter:2 * quarter].abs()  # every w negative: only u_c < 0 rows are positive
    u[quarter:quarter + 10] = u[quarter:quarter + 10].abs()  # ... and here no row has a positive entry
    w[2 * quarter:2 * quarter + 10] = w[2 * quarter:2 * quarter + 10].abs()
    u[2 * quarter:2 * quarter + 10] = -u[2 * quarter:2 * quarter + 10].abs()  # u < 0 against w > 0: all zero
    w[2 * quarter + 10:2 * quarter + 20] = 0.0
    u[:, ::5] = 0.0  # some channels with u_c = 0 in every vector
    return u, w


@pytest.mark.parametrize(("width", "top_k"), [(8, 1), (8, 3), (8, 8), (16, 4), (64, 8), (12, 12)])
def test_scm_closed_form_equals_the_loop_over_the_sorted_relu_rank_one_matrix(width, top_k):
    u, w = _hard_vectors(2000, width, seed=width * 100 + top_k)
    initial = torch.randn(width, generator=torch.Generator().manual_seed(7))
    reference = _materialised_candidates(u, w, top_k)
    candidates = top_k_of_relu_outer(u, w, top_k)
    assert torch.equal(candidates, reference)  # M without the D x D matrix: the same numbers, bit for bit
    looped = _loop_update(reference, initial)
    assert torch.equal(coordinate_update(candidates, initial), looped)
    assert torch.equal(_smallest_positive(reference, initial), looped)  # what the loop amounts to on this M
    empty = reference.amax(-1) == 0
    assert empty.any() and (~empty).any()  # the cases where z^0 is read, and where it is not, both occur
    assert torch.equal(looped[empty], initial.expand_as(looped)[empty])
    u[:5, 0], w[5:10, 1] = float("nan"), float("nan")  # NaNs: topk ranks them first, in both ways of forming M
    nan_reference, nan_candidates = _materialised_candidates(u, w, top_k), top_k_of_relu_outer(u, w, top_k)
    assert torch.equal(nan_candidates.isnan(), nan_reference.isnan())
    assert torch.equal(nan_candidates.nan_to_num(), nan_reference.nan_to_num())


def test_the_closed_form_update_has_the_loops_values_and_gradients_on_any_matrix():
    gen = torch.Generator().manual_seed(3)
    candidates = torch.randn(500, 16, 6, generator=gen)
    candidates[candidates.abs() < 0.8] = 0.0  # unsorted, signed, zeros anywhere: zeros between innovations
    candidates[:20] = 0.0
    candidates[20:30, :, 2] = float("nan")  # NaN != 0: accepted, as by the loop
    candidates.requires_grad_(True)
    initial = torch.randn(16, generator=gen, requires_grad=True)
    looped, closed = _loop_update(candidates, initial), coordinate_update(candidates, initial)
    assert torch.equal(looped.isnan(), closed.isnan())
    assert torch.equal(looped.nan_to_num(), closed.nan_to_num())
    upstream = torch.randn(looped.shape, generator=gen)
    expected = torch.autograd.grad((looped.nan_to_num() * upstream).sum(), (candidates, initial))
    got = torch.autograd.grad((closed.nan_to_num() * upstream).sum(), (candidates, initial))
    assert all(torch.equal(a, b) for a, b in zip(expected, got))


def _scm_as_it_was(module, saliency):
    """SpectralCoordinateMixing.forward before the closed form: D x D matrix, top-K, loop."""
    z_in = module.gather(saliency)
    candidates = _materialised_candidates(module.row(z_in), module.column(z_in), module.top_k)
    return torch.sigmoid(module.map(_loop_update(candidates, module.initial_state)))


@pytest.mark.parametrize(("width", "top_k"), [(8, 2), (16, 4), (64, 8)])
def test_the_scm_module_gives_what_the_loop_gave_with_random_weights(width, top_k):
    torch.manual_seed(width + top_k)
    module = SpectralCoordinateMixing(width, top_k)
    with torch.no_grad():
        module.initial_state.normal_()
        module.row.weight[1].zero_()  # channel 1: u_1 = 0 in every vector, so its state is z^0
        module.row.bias[1] = 0.0
    saliency = torch.randn(3000, 2 * width)
    saliency[:100] = 0.0
    before, after = _scm_as_it_was(module, saliency), module(saliency)
    assert torch.equal(after, before)
    z_in = module.gather(saliency)
    state = coordinate_update(top_k_of_relu_outer(module.row(z_in), module.column(z_in), top_k), module.initial_state)
    assert torch.equal(state[:, 1], module.initial_state[1].expand(3000))
    expected = torch.autograd.grad(before.square().sum(), list(module.parameters()))
    got = torch.autograd.grad(after.square().sum(), list(module.parameters()))
    for (name, _), a, b in zip(module.named_parameters(), expected, got):  # the same, up to summation order
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6 * float(a.abs().max()), msg=name)
    assert float(expected[[n for n, _ in module.named_parameters()].index("initial_state")].abs().max()) > 0


def test_the_haar_split_is_a_two_by_two_box_filter_and_its_residual():
    pywt = pytest.importorskip("pywt")
    x = torch.rand(1, 1, 12, 12, generator=torch.Generator().manual_seed(0), dtype=torch.float32)
    low, high = WaveletSplit(1, "haar")(x)
    padded = torch.nn.functional.pad(x, (0, 1, 0, 1), mode="replicate")
    box = (padded[..., :-1, :-1] + padded[..., 1:, :-1] + padded[..., :-1, 1:] + padded[..., 1:, 1:]) / 4
    torch.testing.assert_close(low, box)
    torch.testing.assert_close(high, x - box)
    (approx, (horizontal, vertical, diagonal)), = pywt.swt2(x[0, 0].double().numpy(), "haar", level=1)
    np.testing.assert_allclose(low[0, 0, :-1, :-1].numpy(), approx[:-1, :-1] / 2, atol=1e-6)  # SWT, periodic
    np.testing.assert_allclose(high[0, 0, :-1, :-1].numpy(), (horizontal + vertical + diagonal)[:-1, :-1] / 2,
                               atol=1e-6)


@pytest.mark.parametrize("scale", [4, 3, 5])
@pytest.mark.parametrize(("height", "width", "multiple"), [(5, 7, 4), (3, 2, 8), (1, 1, 4), (8, 8, 4), (7, 5, 16)])
def test_padding_mirrors_half_sample_symmetric_and_keeps_lr_and_hr_registered(height, width, multiple, scale):
    lr = torch.arange(2 * height * width, dtype=torch.float32).view(1, 2, height, width)
    padded = pad_to_multiple(lr, multiple)
    rows, cols = -height % multiple, -width % multiple
    np.testing.assert_array_equal(padded.numpy(), np.pad(lr.numpy(), ((0, 0), (0, 0), (0, rows), (0, cols)),
                                                         mode="symmetric"))
    hr = lr.repeat_interleave(scale, -2).repeat_interleave(scale, -1)  # each LR pixel over its s x s HR pixels
    registered = pad_to_multiple(lr, multiple).repeat_interleave(scale, -2).repeat_interleave(scale, -1)
    torch.testing.assert_close(pad_to_multiple(hr, scale * multiple), registered)


def test_wavelet_split_is_complementary_and_low_pass():
    split = WaveletSplit(4, "db2")
    x = torch.rand(1, 4, 16, 16)
    low, high = split(x)
    torch.testing.assert_close(low + high, x)
    flat = torch.full((1, 4, 16, 16), 3.0)
    low, high = split(flat)
    torch.testing.assert_close(low, flat)
    assert high.abs().max() < 1e-5
    checker = (torch.arange(16)[:, None] + torch.arange(16)[None, :]) % 2 * 2.0 - 1.0  # Nyquist pattern
    low, _ = WaveletSplit(1, "haar")(checker.view(1, 1, 16, 16))
    assert low[..., :-1, :-1].abs().max() < 1e-6


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)  # on 8 x 8 inputs SSCFM's 10 % dropout can, for some draws, drop a whole spectral branch
    config = ModelConfig(6, 2, 2, width=16, top_k=4)
    model = build_model(config).train()
    # The head's last layer starts at zero (the untrained net is bicubic), which blocks gradients upstream for the
    # first step only; give it weights so every parameter's gradient is observable at once.
    torch.nn.init.normal_(model.head[-1].weight, std=0.1)
    lr, hr = _inputs(config, lr_size=(8, 8), batch=2)
    model(lr, hr).square().mean().backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing
    # z^0 only receives gradient where a channel's candidates are all zero (tested in the eq. 4 test above).
    zero = [name for name, p in model.named_parameters()
            if p.grad.abs().max() == 0 and not name.endswith("initial_state")]
    assert not zero


def test_eval_is_deterministic_and_training_uses_dropout():
    config = ModelConfig(6, 2, 4, width=16, top_k=4)
    model = build_model(config)
    torch.nn.init.normal_(model.head[-1].weight, std=0.1)
    lr, hr = _inputs(config, lr_size=(4, 4))
    model.eval()
    with torch.inference_mode():
        assert torch.equal(model(lr, hr), model(lr, hr))
    model.train()
    torch.manual_seed(1)
    first = model(lr, hr)
    torch.manual_seed(2)
    assert not torch.equal(first, model(lr, hr))


@pytest.mark.parametrize("scale", [4, 3, 5])
def test_translation_by_align_gives_the_same_interior(scale):
    """Shifting the inputs by `align` HR pixels shifts the output: what makes tiled fusion equal whole fusion."""
    config = ModelConfig(5, 3, scale, width=16, top_k=4)
    model = build_model(config).eval()
    torch.nn.init.normal_(model.head[-1].weight, std=0.1)
    lr, hr = _inputs(config, lr_size=(24, 24))
    shift_hr = config.align
    shift_lr = shift_hr // config.scale
    with torch.inference_mode():
        whole = model(lr, hr)
        shifted = model(lr[..., shift_lr:, shift_lr:], hr[..., shift_hr:, shift_hr:])
    margin = 40  # beyond the receptive field's reach of the borders
    a = whole[..., shift_hr + margin:-margin, shift_hr + margin:-margin]
    b = shifted[..., margin:-margin, margin:-margin]
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("switch", ["spacam", "specam", "sscfm"])
def test_ablation_switches_replace_the_module(switch):
    full = build_model(ModelConfig(6, 2, 2, width=16, top_k=4))
    ablated = build_model(ModelConfig(6, 2, 2, width=16, top_k=4, **{switch: False}))
    names = {"spacam": "SpaCAM", "specam": "SpeCAM", "sscfm": "SSCFM"}
    kinds = {type(m).__name__ for m in ablated.modules()}
    assert names[switch] not in kinds and names[switch] in {type(m).__name__ for m in full.modules()}
    lr, hr = _inputs(ablated.config, lr_size=(4, 4))
    assert ablated.eval()(lr, hr).shape == (1, 6, 8, 8)


def test_bad_configs_and_inputs_are_refused_clearly():
    for scale in (1, 9, 2.0, True):
        with pytest.raises(InputError, match=f"scale factor {scale!r} is not supported.*integer scales 2 to 8"):
            ModelConfig(10, 3, scale)
    with pytest.raises(InputError, match="1 to 16"):
        ModelConfig(10, 17, 4)
    model = build_model(ModelConfig(10, 3, 4, width=16))
    with pytest.raises(InputError, match="expects 10 hyperspectral and 3 multispectral"):
        model(torch.rand(1, 9, 4, 4), torch.rand(1, 3, 16, 16))
    with pytest.raises(InputError, match="times the scale"):
        model(torch.rand(1, 10, 4, 4), torch.rand(1, 3, 15, 16))


def test_config_round_trip_and_foreign_schema():
    config = ModelConfig(10, 3, 4, blocks_per_level=2, sscfm=False)
    assert ModelConfig.from_dict(config.to_dict()) == config
    with pytest.raises(CheckpointError, match="schema version"):
        ModelConfig.from_dict({**config.to_dict(), "schema_version": 99})
    with pytest.raises(CheckpointError, match="unknown fields"):
        ModelConfig.from_dict({**config.to_dict(), "layers": 5})


def test_a_version_3_config_keeps_the_trust_rule_it_was_trained_with():
    current = ModelConfig(10, 3, 4)
    version_3 = {k: v for k, v in current.to_dict().items() if k != "trust_falloff"} | {"schema_version": 3}
    assert ModelConfig.from_dict(version_3) == ModelConfig(10, 3, 4, trust_falloff=2.0)
    assert current.trust_falloff == 3.0
    with pytest.raises(InputError, match="trust_falloff"):
        ModelConfig(10, 3, 4, trust_falloff=1.0)


# The forward as it was written before its CPU rewrite (issue 20): the same network in the plainest formulation
# (channels-first products, a softmax over dim 1, einsums, torch.linalg.solve), patched in for comparison.
def _separable_reference(x, rows, cols):
    return rows.to(x) @ (x @ cols.to(x).T)


def _local_regression_reference(lr_hsi, hr_msi, scale, radius=LOCAL_RADIUS, ridge=LOCAL_RIDGE):
    msi_lr = spatial_degrade(hr_msi.double(), scale)
    x = lr_hsi.double()
    batch, bands, rows, cols = x.shape

    def window_mean(t):
        flat = t.reshape(batch, -1, rows, cols)
        padded = torch.nn.functional.pad(flat, (radius,) * 4, mode="replicate")
        return torch.nn.functional.avg_pool2d(padded, 2 * radius + 1, stride=1).view(t.shape)

    mean_m, mean_x = window_mean(msi_lr), window_mean(x)
    cov_mm = window_mean(msi_lr[:, :, None] * msi_lr[:, None]) - mean_m[:, :, None] * mean_m[:, None]
    cov_xm = window_mean(x[:, :, None] * msi_lr[:, None]) - mean_x[:, :, None] * mean_m[:, None]
    system = cov_mm.permute(0, 3, 4, 1, 2) + ridge * torch.eye(msi_lr.shape[1], dtype=x.dtype)
    gains = torch.linalg.solve(system, cov_xm.permute(0, 3, 4, 2, 1)).permute(0, 4, 3, 1, 2)
    offset = window_mean(mean_x - (gains * mean_m[:, None]).sum(2))
    gains = window_mean(gains)
    residual = x - (gains * msi_lr[:, None]).sum(2) - offset
    dtype = lr_hsi.dtype
    base = upsample(residual.to(dtype), scale, "bicubic") + upsample(offset.to(dtype), scale, "bilinear")
    for band in range(msi_lr.shape[1]):
        base = base + upsample(gains[:, :, band].to(dtype), scale, "bilinear") * hr_msi[:, band:band + 1]
    return base


def _inject_reference(upsampled, hr_msi, weights):
    intensity = torch.einsum("mc,bchw->bmhw", weights.intensity, upsampled)
    detail = hr_msi - intensity - weights.offset.view(1, -1, 1, 1)
    return upsampled + torch.einsum("cm,bmhw->bchw", weights.gains, detail)


def _gated_spatial_reference(self, features, context):
    gate = torch.softmax(context, dim=1) * context.shape[1]
    return gate * self.act(self.conv(features)) + features


def _specam_reference(self, x):
    low, high = self.split(x)
    low, high = self.act(self.low_conv(low)), self.act(self.high_conv(high))
    saliency = torch.cat([self.pool(low), self.pool(high)], dim=1)
    batch, channels, h, w = saliency.shape
    weights = self.mixing(saliency.permute(0, 2, 3, 1).reshape(-1, channels)).reshape(batch, h, w, -1)
    weights = expand_saliency(weights.permute(0, 3, 1, 2), x.shape[-2:])
    alpha = torch.sigmoid(self.alpha_logit)
    return self.act(self.out_conv(weights * (alpha * low + (1 - alpha) * high))) + x


@contextlib.contextmanager
def _reference_formulation():
    with contextlib.ExitStack() as stack:
        for owner, name, reference in [
            (resample, "separable", _separable_reference), (degrade, "separable", _separable_reference),
            (prior, "local_regression", _local_regression_reference), (prior, "inject", _inject_reference),
            (blocks.GatedSpatialBlock, "forward", _gated_spatial_reference),
            (blocks.SpeCAM, "forward", _specam_reference),
        ]:
            stack.enter_context(mock.patch.object(owner, name, reference))
        yield


def _randomised(config: ModelConfig, seed: int = 0):
    """A network of ``config`` whose every parameter is moved off its initial value (the head's last layer is
    zero-initialised: an untrained network would return its base and hide the blocks), with GSA weights set."""
    torch.manual_seed(seed)
    model = build_model(config)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn(parameter.shape, generator=gen))
    c_h, c_m = config.hsi_bands, config.msi_bands
    model.base.set_weights(InjectionWeights(torch.rand(c_m, c_h, generator=gen) / c_h, torch.rand(c_m, generator=gen),
                                            torch.rand(c_h, c_m, generator=gen) / c_m))
    return model


def _close_to_reference(out, ref, tolerance=1e-4):
    spread = float(ref.max() - ref.min())
    assert spread > 0
    assert float((out - ref).abs().max()) <= tolerance * spread


@pytest.mark.parametrize(("hsi", "msi", "scale"), [(198, 4, 4), (224, 4, 3), (20, 3, 2)])
@pytest.mark.parametrize("layout", [torch.channels_last, torch.contiguous_format])
def test_the_forward_equals_its_reference_formulation_in_eval(hsi, msi, scale, layout):
    config = ModelConfig(hsi, msi, scale)
    model = _randomised(config).to(memory_format=layout).eval()
    lr, hr = (t.contiguous(memory_format=layout) for t in _inputs(config, lr_size=(24, 20), batch=2))
    with torch.inference_mode():
        out = model(lr, hr)
        with _reference_formulation():
            ref = model(lr, hr)
    _close_to_reference(out, ref)


def test_the_bundled_checkpoint_gives_its_reference_output():
    model = load_checkpoint(Path(__file__).resolve().parents[2] / "resources" / "models" / "default.safetensors").model
    model = model.to(memory_format=torch.channels_last).eval()
    lr, hr = (t.contiguous(memory_format=torch.channels_last) for t in _inputs(model.config, lr_size=(24, 24)))
    with torch.inference_mode():
        out = model(lr, hr)
        with _reference_formulation():
            ref = model(lr, hr)
    _close_to_reference(out, ref)


def test_training_gradients_equal_the_reference_formulations():
    config = ModelConfig(20, 3, 4, dropout=0.0)
    model = _randomised(config).train()
    lr, hr = _inputs(config, lr_size=(12, 12))

    def gradients():
        model.zero_grad()
        lr_in, hr_in = lr.clone().requires_grad_(), hr.clone().requires_grad_()
        out = model(lr_in, hr_in)
        (out * torch.linspace(-1, 1, out.numel()).view(out.shape)).sum().backward()
        return [p.grad.clone() for p in model.parameters()] + [lr_in.grad, hr_in.grad]

    got = gradients()
    with _reference_formulation():
        expected = gradients()
    for g, e in zip(got, expected):
        assert torch.isfinite(g).all()
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-4 * float(e.abs().max()) + 1e-12)
