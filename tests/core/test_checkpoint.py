# SPDX-License-Identifier: GPL-2.0-or-later
"""Checkpoints: round trip, fp16 storage, and every way a bad file is refused without running code."""
import os
import pickle
import stat
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from cofusion.core.checkpoint import ModelCard, Normalization, load_checkpoint, read_card, save_checkpoint
from cofusion.core.errors import CheckpointError
from cofusion.core.inference import NetworkPredictor
from cofusion.core.model import ModelConfig, build_model


def _model_and_card(**config_args):
    config = ModelConfig(6, 3, 4, width=16, top_k=4, **config_args)
    model = build_model(config).eval()
    torch.nn.init.normal_(model.head[-1].weight, std=0.05)
    card = ModelCard(
        config=config,
        normalization=Normalization((100.0,) * 6, (50.0,) * 6, (80.0,) * 3, (40.0,) * 3),
        hsi_wavelengths_nm=tuple(float(w) for w in np.linspace(400, 900, 6)),
        srf=tuple(tuple(row) for row in np.full((3, 6), 1 / 6)),
        msi_band_names=("B2", "B3", "B4"),
        provenance={"mode": "test"},
        metrics={"PSNR": 40.0},
    )
    return model, card


def test_round_trip_keeps_weights_and_card(tmp_path):
    model, card = _model_and_card()
    path = save_checkpoint(tmp_path / "m.safetensors", model, card)
    loaded = load_checkpoint(path)
    assert loaded.card == card
    assert read_card(path) == card
    lr, hr = torch.rand(1, 6, 4, 4), torch.rand(1, 3, 16, 16)
    with torch.inference_mode():
        assert torch.equal(model(lr, hr), loaded.model(lr, hr))
    assert not list(tmp_path.glob(".*tmp"))


def test_a_saved_model_has_the_permissions_of_any_new_file(tmp_path):
    """A model in a shared folder is readable by whoever the user's umask lets read new files."""
    model, card = _model_and_card()
    previous = os.umask(0o022)
    try:
        path = save_checkpoint(tmp_path / "m.safetensors", model, card)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_float16_storage_is_close_and_small(tmp_path):
    model, card = _model_and_card()
    full = save_checkpoint(tmp_path / "a.safetensors", model, card)
    half = save_checkpoint(tmp_path / "b.safetensors", model, card, storage_dtype=torch.float16)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    lr, hr = torch.rand(1, 6, 4, 4), torch.rand(1, 3, 16, 16)
    with torch.inference_mode():
        torch.testing.assert_close(load_checkpoint(half).model(lr, hr), model(lr, hr), atol=2e-3, rtol=1e-2)


def test_predictor_normalises_with_the_checkpoint_statistics(tmp_path):
    model, card = _model_and_card()
    predictor = NetworkPredictor.from_checkpoint(save_checkpoint(tmp_path / "m.safetensors", model, card), "cpu")
    lr = np.random.default_rng(0).uniform(0, 200, (2, 6, 4, 4)).astype(np.float32)
    hr = np.random.default_rng(1).uniform(0, 200, (2, 3, 16, 16)).astype(np.float32)
    out = predictor(lr, hr)
    with torch.inference_mode():
        expected = model((torch.from_numpy(lr) - 100) / 50, (torch.from_numpy(hr) - 80) / 40) * 50 + 100
    np.testing.assert_allclose(out, expected.numpy(), rtol=1e-4, atol=1e-3)
    assert out.dtype == np.float32 and out.shape == (2, 6, 16, 16)
    np.testing.assert_array_equal(predictor.hsi_fill, np.full(6, 100, np.float32))


def test_check_fits_names_both_sides(tmp_path):
    model, card = _model_and_card()
    loaded = load_checkpoint(save_checkpoint(tmp_path / "m.safetensors", model, card))
    loaded.check_fits(6, 3, 4)
    with pytest.raises(CheckpointError, match="5 hyperspectral bands where the model expects 6.*scale factor of 2"):
        loaded.check_fits(5, 3, 2)


def test_missing_truncated_and_foreign_files_are_refused(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.safetensors")
    model, card = _model_and_card()
    good = save_checkpoint(tmp_path / "m.safetensors", model, card).read_bytes()
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good[: len(good) // 2])
    with pytest.raises(CheckpointError, match="corrupt, truncated or another format"):
        load_checkpoint(truncated)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(3)}, str(foreign))
    with pytest.raises(CheckpointError, match="not a CoFusion checkpoint"):
        load_checkpoint(foreign)
    text = tmp_path / "text.safetensors"
    text.write_text("hello world, not a model")
    with pytest.raises(CheckpointError):
        load_checkpoint(text)


def test_weights_that_do_not_match_the_card_are_refused(tmp_path):
    model, card = _model_and_card()
    other, _ = _model_and_card(sscfm=False)
    tensors = {k: v.contiguous() for k, v in other.state_dict().items()}
    path = tmp_path / "mismatch.safetensors"
    save_file(tensors, str(path), metadata={"cofusion": card.to_json()})
    with pytest.raises(CheckpointError, match="do not match the architecture"):
        load_checkpoint(path)


class _Exploit:
    """Unpickling this would create a marker file: proof that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickle_that_runs_code_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    payload = tmp_path / "evil.safetensors"
    payload.write_bytes(pickle.dumps({"state_dict": _Exploit(marker)}))
    with pytest.raises(CheckpointError):
        load_checkpoint(payload)
    torch_file = tmp_path / "evil.pt"
    torch.save({"x": _Exploit(marker)}, torch_file)
    with pytest.raises(CheckpointError):
        load_checkpoint(torch_file)
    assert not marker.exists()


def test_card_that_contradicts_itself_is_refused(tmp_path):
    model, card = _model_and_card()
    bad = ModelCard(config=card.config, normalization=Normalization((0.0,) * 5, (1.0,) * 5, (0.0,) * 3, (1.0,) * 3))
    path = tmp_path / "bad.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path),
              metadata={"cofusion": bad.to_json()})
    with pytest.raises(CheckpointError, match="hsi_mean' must hold 6"):
        load_checkpoint(path)


def test_the_bundled_default_model_loads_and_fits_the_bundled_sample():
    from cofusion.core.raster import read_info

    root = Path(__file__).resolve().parents[2] / "resources"
    checkpoint = load_checkpoint(root / "models" / "default.safetensors")
    lrhsi, hrmsi = read_info(root / "sample" / "lrhsi.tif"), read_info(root / "sample" / "hrmsi.tif")
    checkpoint.check_fits(lrhsi.band_count, hrmsi.band_count, round(lrhsi.geotransform[1] / hrmsi.geotransform[1]))
    assert checkpoint.card.hsi_wavelengths_nm == lrhsi.wavelengths_nm
