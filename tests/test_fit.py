# SPDX-License-Identifier: GPL-2.0-or-later
"""Fit a model on the pair, then fuse (core.fit.fit_and_fuse and ``python -m cofusion fit``): a tiny fit writes the
model and the output, which equals a plain fusion with that model; the model never scores below its classical base
on the validation strip; a cancel or a signal during either phase leaves nothing; a zero budget, a pair too small,
an area outside the pair or without valid data are refused in one line before any training."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from cofusion import cli
from cofusion.core import fit, service
from cofusion.core.checkpoint import read_card
from cofusion.core.degrade import spatial_degrade
from cofusion.core.errors import Canceled, EmptyOutputError, GridError, InputError, OutputError
from cofusion.core.raster import read_raster
from cofusion.core.service import FusionRequest
from cofusion.core.srf import gaussian_bands
from cofusion.core.window import Window

WAVELENGTHS = (450.0, 550.0, 650.0, 750.0, 850.0)
LR_GT = (500000.0, 20.0, 0.0, 5000000.0, 0.0, -20.0)
HR_GT = (500000.0, 10.0, 0.0, 5000000.0, 0.0, -10.0)
TINY = {"batch_size": 1, "validate_every": 2, "warmup": 1, "model": {"width": 8, "top_k": 2}}
#: The default network's alignment at x2 (16 LR pixels): pair-mode training needs 32 x 16 LR pixels at least.
ALIGN = 16


def _scene(size: int) -> np.ndarray:
    """A smooth positive hyperspectral scene (5, size, size): a few blobs with their own spectra."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] / size
    image = np.full((5, size, size), 0.1, np.float32)
    for _ in range(5):
        cy, cx, radius = rng.uniform(0, 1, 2).tolist() + [rng.uniform(0.1, 0.3)]
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / radius**2).astype(np.float32)
        image += rng.uniform(0.05, 0.5, (5, 1, 1)).astype(np.float32) * blob
    return image


@pytest.fixture
def make_fit_pair(make_raster, tmp_path):
    """make_fit_pair(lr_size, nodata_block=None) -> (LRHSI, HRMSI): x2, 5 + 3 bands, the HRMSI the scene seen through
    three Gaussian bands; with ``nodata_block`` (LR pixels) the LRHSI's top-left block of that size is nodata."""
    def make(lr_size: int = 32, nodata_block: int | None = None) -> tuple[Path, Path]:
        scene = _scene(2 * lr_size)
        lr = spatial_degrade(scene, 2)
        hr = np.einsum("mc,chw->mhw", gaussian_bands([480, 560, 800], [60, 60, 100]).matrix(WAVELENGTHS),
                       scene).astype(np.float32)
        nodata = None
        if nodata_block:
            lr[:, :nodata_block, :nodata_block] = -1.0
            nodata = -1.0
        lr_path = make_raster(data=lr, name="lr.tif", geotransform=LR_GT, wavelengths_nm=WAVELENGTHS, nodata=nodata)
        hr_path = make_raster(data=hr, name="hr.tif", geotransform=HR_GT)
        (tmp_path / "out").mkdir()
        return lr_path, hr_path

    return make


def _tiny(**changes):
    from cofusion.training.trainer import TrainSettings

    return TrainSettings(**{**TINY, **changes})


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _fit(lr, hr, out_dir: Path, **kwargs):
    request = FusionRequest(lr, hr, out_dir / "fused.tif", device="cpu", tile=32, overlap=0)
    options = {"minutes": None, "iterations": 4, "device": "cpu", "settings": _tiny(), **kwargs}
    return fit.fit_and_fuse(request, out_dir / "model.safetensors", **options)


def test_a_tiny_fit_keeps_the_model_and_fuses_exactly_as_a_plain_fusion_with_it(make_fit_pair, tmp_path):
    lr, hr = make_fit_pair()
    out_dir = tmp_path / "out"
    seen = []
    result = _fit(lr, hr, out_dir, progress=lambda fraction, message: seen.append((fraction, message)))
    assert _files(out_dir) == ["fused.tif", "model.log.csv", "model.safetensors"]  # no temporary, no lock
    assert result.out_path == out_dir / "fused.tif" and result.model == out_dir / "model.safetensors"
    assert result.training.checkpoint == result.model and result.log == out_dir / "model.log.csv"
    card = read_card(result.model)
    assert card.provenance["mode"] == "pair" and card.provenance["fitted_by"].startswith("fit_and_fuse")
    assert card.provenance["fit"]["lrhsi"] == str(lr) and card.provenance["fit"]["fused"] == str(result.out_path)
    assert card.config.scale == 2 and card.config.width == 8 and card.metrics["PSNR"] == result.metrics["PSNR"]
    # the guarantee: the starting point (the classical base, step 0 of the log) is a candidate
    assert result.metrics["PSNR"] >= result.base_metrics["PSNR"]
    assert result.log.read_text().splitlines()[1].startswith("0,")
    plain = service.fuse(FusionRequest(lr, hr, tmp_path / "plain.tif", model=result.model, device="cpu", tile=32,
                                       overlap=0))
    np.testing.assert_array_equal(read_raster(result.out_path), read_raster(plain.out_path))
    # one bar over both phases, the phase and the trainer's status in the words
    fractions = [f for f, _m in seen]
    assert fractions == sorted(fractions) and fractions[0] == 0 and fractions[-1] == 1
    training = [m for _f, m in seen if m.startswith("fitting the model (1 of 2): step")]
    assert training and all("val PSNR" in m and "ETA" in m for m in training), seen
    assert any(m.startswith("fusing with the fitted model (2 of 2): tile") for _f, m in seen)
    share = max(f for f, m in seen if "(1 of 2)" in m)
    assert share == pytest.approx(result.training_share)


@pytest.mark.parametrize("phase", ["training", "fusion"])
def test_a_cancel_in_either_phase_leaves_no_model_and_no_output(make_fit_pair, tmp_path, phase):
    lr, hr = make_fit_pair()
    out_dir = tmp_path / "out"
    asked = []
    trigger = "(1 of 2): step 2," if phase == "training" else "(2 of 2): tile 1 of"

    def progress(_fraction: float, message: str) -> None:
        if trigger in message:
            asked.append(time.monotonic())

    with pytest.raises(Canceled, match=f"canceled while {'training' if phase == 'training' else 'fusing'}"):
        _fit(lr, hr, out_dir, progress=progress, cancel=lambda: bool(asked))
    assert asked and _files(out_dir) == []


def test_budgets_of_zero_or_below_are_refused_in_one_line_before_any_work(make_fit_pair, tmp_path, monkeypatch):
    lr, hr = make_fit_pair()
    monkeypatch.setattr(fit, "_train", lambda *a, **k: pytest.fail("the training started"))
    for budget, words in (({"minutes": 0.0}, "minutes 0.0"), ({"minutes": -1.0}, "minutes -1.0"),
                          ({"iterations": 0}, "iterations 0"), ({}, "give a training budget")):
        options = {"minutes": None, "iterations": None, **budget}
        with pytest.raises(InputError, match=words) as raised:
            _fit(lr, hr, tmp_path / "out", **options)
        assert "\n" not in str(raised.value)
    assert _files(tmp_path / "out") == []


def test_a_pair_too_small_is_refused_naming_the_minimum(make_fit_pair, tmp_path, monkeypatch):
    lr, hr = make_fit_pair(lr_size=24)  # 24 x 24 LR pixels: the validation strip and the rest need 32 x 16
    monkeypatch.setattr(fit, "check_area_has_data", lambda *a, **k: pytest.fail("pixels were read"))
    with pytest.raises(InputError, match=r"the pair is too small .* 24 x 24 LR pixels.* at least 32 x 16 LR pixels"
                                         r" \(64 x 32 HRMSI pixels") as raised:
        _fit(lr, hr, tmp_path / "out", settings=None)  # the default network
    assert "\n" not in str(raised.value) and _files(tmp_path / "out") == []
    with pytest.raises(InputError, match="the training area is too small"):  # a training area likewise
        _fit(lr, hr, tmp_path / "out", settings=None, training_region=Window(0, 0, 48, 30))


def test_areas_outside_the_pair_or_without_valid_pixels_are_refused_before_the_training(make_fit_pair, tmp_path,
                                                                                          monkeypatch):
    lr, hr = make_fit_pair(48, nodata_block=32)  # the top-left 32 x 32 LR pixels (64 x 64 output pixels): nodata
    out_dir = tmp_path / "out"
    train_pair = fit._train
    monkeypatch.setattr(fit, "_train", lambda *a, **k: pytest.fail("the training started"))
    with pytest.raises(InputError, match="Region .* is not a non-empty window inside the 96 x 96 output grid"):
        _fit(lr, hr, out_dir, training_region=Window(90, 0, 32, 32))
    with pytest.raises(InputError, match="Region"):
        request = FusionRequest(lr, hr, out_dir / "fused.tif", device="cpu", region=Window(96, 96, 8, 8))
        fit.fit_and_fuse(request, out_dir / "model.safetensors", minutes=1.0, device="cpu", settings=_tiny())
    with pytest.raises(EmptyOutputError, match="the area to fuse .* holds no pixel valid") as raised:
        request = FusionRequest(lr, hr, out_dir / "fused.tif", device="cpu", region=Window(4, 4, 56, 56))
        fit.fit_and_fuse(request, out_dir / "model.safetensors", minutes=1.0, device="cpu", settings=_tiny())
    assert "\n" not in str(raised.value) and _files(out_dir) == []
    monkeypatch.setattr(fit, "_train", train_pair)  # a training area on nodata: the trainer's own check, first
    with pytest.raises(InputError, match="every band is bad .* nodata everywhere.* holds no data") as raised:
        _fit(lr, hr, out_dir, training_region=Window(0, 0, 64, 64))
    assert "\n" not in str(raised.value) and _files(out_dir) == []


def test_the_model_must_not_be_an_input_nor_the_fusion_an_existing_model(make_fit_pair, tmp_path):
    lr, hr = make_fit_pair()
    out_dir = tmp_path / "out"
    request = FusionRequest(lr, hr, out_dir / "fused.tif", device="cpu")
    with pytest.raises(OutputError, match=".safetensors"):
        fit.fit_and_fuse(request, out_dir / "model.pt", settings=_tiny())
    with pytest.raises(InputError, match="start_from, --start-from"):
        fit.fit_and_fuse(FusionRequest(lr, hr, out_dir / "f.tif", model="m.safetensors"), out_dir / "m.safetensors")
    with pytest.raises(GridError):  # the co-registration is the fusion's own check
        fit.fit_and_fuse(FusionRequest(hr, lr, out_dir / "f.tif"), out_dir / "m.safetensors", settings=_tiny())
    assert _files(out_dir) == []


def test_a_model_below_the_best_classical_candidate_is_kept_but_the_pair_is_fused_with_that_method(
        make_fit_pair, tmp_path, monkeypatch):
    from cofusion.core.classic_raster import fuse_classic_raster
    from cofusion.training import trainer

    lr, hr = make_fit_pair()
    out_dir = tmp_path / "out"
    real = trainer.classical_scores

    def gsa_far_ahead(source, cancel=None):  # the real scores, GSA's PSNR raised above anything a model reaches
        scores = real(source, cancel)
        return {**scores, "gsa": {**scores["gsa"], "PSNR": 500.0}}

    monkeypatch.setattr(trainer, "classical_scores", gsa_far_ahead)
    result = _fit(lr, hr, out_dir)
    assert result.used == "gsa" and result.classical["gsa"]["PSNR"] == 500.0 and result.metrics["PSNR"] < 500.0
    assert set(result.classical) == set(trainer.CLASSICAL_CANDIDATES)
    assert _files(out_dir) == ["fused.tif", "model.log.csv", "model.safetensors"]  # the model is kept all the same
    assert read_card(result.model).provenance["fit"]["fused_with"] == "gsa"
    plain = fuse_classic_raster(lr, hr, tmp_path / "gsa.tif", "gsa")
    np.testing.assert_array_equal(read_raster(result.out_path), read_raster(plain))
    request = FusionRequest(lr, hr, out_dir / "part.tif", device="cpu", tile=32, overlap=0, region=Window(0, 0, 32, 32))
    part = fit.fit_and_fuse(request, out_dir / "part.safetensors", minutes=None, iterations=2, device="cpu",
                            settings=_tiny())
    assert part.used == "gsa"  # an area to fuse: the classical method fuses that area
    area = fuse_classic_raster(lr, hr, tmp_path / "gsa_area.tif", "gsa", region=Window(0, 0, 32, 32))
    np.testing.assert_array_equal(read_raster(part.out_path), read_raster(area))
    assert read_raster(area).shape[1:] == (32, 32)


def test_a_fit_can_start_from_a_model_that_fits_the_pair(make_fit_pair, make_raster, tmp_path):
    import torch

    lr, hr = make_fit_pair()
    first = _fit(lr, hr, tmp_path / "out")
    before = torch.get_num_threads()
    try:
        request = FusionRequest(lr, hr, tmp_path / "tuned.tif", device="cpu", tile=32, overlap=0)
        tuned = fit.fit_and_fuse(request, tmp_path / "tuned.safetensors", minutes=None, iterations=2, device="cpu",
                                 settings=_tiny(model={"width": 16}), start_from=first.model, threads=1)
        assert torch.get_num_threads() == 1  # the training's and the fusion's threads
    finally:
        torch.set_num_threads(before)
    card = read_card(tuned.model)
    assert card.config == read_card(first.model).config  # its architecture and base, not the settings'
    assert card.provenance["started_from"]["model"] == str(first.model)
    two_bands = make_raster(data=read_raster(hr)[:2], name="hr2.tif", geotransform=HR_GT)
    request = FusionRequest(lr, two_bands, tmp_path / "x.tif", device="cpu")
    with pytest.raises(InputError, match="cannot be fine-tuned on this pair: the pair has 2 multispectral bands "
                                         "where the model has 3.*fit from scratch") as raised:
        fit.fit_and_fuse(request, tmp_path / "x.safetensors", iterations=2, device="cpu", settings=_tiny(),
                         start_from=first.model)
    assert "\n" not in str(raised.value) and not (tmp_path / "x.tif").exists()


def test_the_progress_split_follows_the_expected_times():
    settings = _tiny(minutes=5.0, iterations=None)
    share = fit.training_share(settings, 512 * 512, "cpu", 2)
    fuse_seconds = fit.FUSE_START_SECONDS + 512 * 512 / (2 * fit.FUSE_PIXELS_PER_SECOND_PER_THREAD)
    assert share == pytest.approx(300 / (300 + fuse_seconds))
    assert fit.training_share(settings, 10 ** 12, "cpu", 2) == 0.05  # each phase keeps a part of the bar
    assert fit.training_share(_tiny(minutes=None, iterations=10), 0, "cpu", 2) == pytest.approx(
        10 * fit.SECONDS_PER_STEP / (10 * fit.SECONDS_PER_STEP + fit.FUSE_START_SECONDS))


# ------------------------------------------------------------------------------------------------ the command line


def test_the_command_fits_and_fuses(make_fit_pair, tmp_path, monkeypatch, capsys):
    lr, hr = make_fit_pair()
    out_dir = tmp_path / "out"
    original = fit.fit_and_fuse
    monkeypatch.setattr(fit, "fit_and_fuse", lambda *a, **k: original(*a, settings=_tiny(), **k))
    code = cli.main(["fit", "--lrhsi", str(lr), "--hrmsi", str(hr), "--out", str(out_dir / "fused.tif"),
                     "--model-out", str(out_dir / "model.safetensors"), "--iterations", "2", "--device", "cpu",
                     "-q"])
    out = capsys.readouterr().out
    assert code == 0 and f"wrote {out_dir / 'fused.tif'}: 64 x 64 pixels, x2" in out, out
    assert "the classical base" in out and _files(out_dir) == ["fused.tif", "model.log.csv", "model.safetensors"]


def test_the_command_refuses_a_zero_budget_in_one_line(make_fit_pair, tmp_path, capsys):
    lr, hr = make_fit_pair()
    code = cli.main(["fit", "--lrhsi", str(lr), "--hrmsi", str(hr), "--out", str(tmp_path / "out" / "f.tif"),
                     "--model-out", str(tmp_path / "out" / "m.safetensors"), "--minutes", "0", "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == cli.EXIT_ERROR and len(err) == 1 and err[0].startswith("error: minutes 0.0 (--minutes, MINUTES)")


# The child: ``python -m cofusion fit`` through the real ``__main__``, the training tiny, and the process signalling
# itself during training step N ("train:N") or while the fusion predicts its first batch ("fuse").
CHILD = textwrap.dedent("""
    import json, os, runpy, sys
    from cofusion.core import fit, fuse
    from cofusion.training import trainer

    case = json.loads(sys.argv[1])
    kind, _, at = case["moment"].partition(":")
    steps = []
    original_fit, original_loss, original_predict = fit.fit_and_fuse, trainer._loss, fuse._predict

    def tiny_fit(*args, **kwargs):
        settings = trainer.TrainSettings(batch_size=1, validate_every=2, warmup=1, model={"width": 8, "top_k": 2})
        return original_fit(*args, settings=settings, **kwargs)

    def loss(*args, **kwargs):
        steps.append(1)
        if kind == "train" and len(steps) == int(at):
            os.kill(os.getpid(), case["signal"])
        return original_loss(*args, **kwargs)

    def predict(*args, **kwargs):
        if kind == "fuse":
            os.kill(os.getpid(), case["signal"])
        return original_predict(*args, **kwargs)

    fit.fit_and_fuse, trainer._loss, fuse._predict = tiny_fit, loss, predict
    sys.argv = ["cofusion", *case["argv"]]
    try:
        runpy.run_module("cofusion", run_name="__main__", alter_sys=True)
    finally:
        sys.stderr.write(f"\\nsteps={len(steps)}\\n")
""")


@pytest.mark.skipif(sys.platform == "win32", reason="the child process signals itself (POSIX)")
@pytest.mark.parametrize("moment", ["train:2", "fuse"])
def test_sigterm_stops_the_command_with_143_and_leaves_nothing(make_fit_pair, tmp_path, moment):
    lr, hr = make_fit_pair()
    out_dir = tmp_path / "out"
    argv = ["fit", "--lrhsi", str(lr), "--hrmsi", str(hr), "--out", str(out_dir / "fused.tif"), "--model-out",
            str(out_dir / "model.safetensors"), "--iterations", "4", "--device", "cpu", "-q"]
    result = subprocess.run([sys.executable, "-c", CHILD, json.dumps({"signal": int(signal.SIGTERM),
                                                                      "moment": moment, "argv": argv})],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 143, result.stderr
    assert "Traceback" not in result.stderr and "canceled" in result.stderr
    steps = int(result.stderr.rsplit("steps=", 1)[1].split()[0])
    assert steps == (2 if moment == "train:2" else 4)  # the step in progress ended, no other began
    assert _files(out_dir) == []
