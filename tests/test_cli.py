# SPDX-License-Identifier: GPL-2.0-or-later
"""The command line: help, argument errors, clean errors on bad inputs, progress, Ctrl-C, a real model run."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cofusion import cli
from cofusion.core import service
from cofusion.core.raster import read_info, read_raster

HSI, MSI, SCALE = 5, 3, 2


class Upsampling:
    """Analytic stand-in for a model: the LRHSI upsampled by repetition; optionally presses Ctrl-C."""

    scale, hsi_bands, msi_bands, align = SCALE, HSI, MSI, SCALE
    hsi_fill = np.zeros(HSI, np.float32)
    msi_fill = np.zeros(MSI, np.float32)

    def __init__(self, interrupt: bool = False) -> None:
        self.interrupt = interrupt
        self.calls = 0

    def __call__(self, lr: np.ndarray, hr: np.ndarray) -> np.ndarray:
        self.calls += 1
        if self.interrupt:
            os.kill(os.getpid(), signal.SIGINT)
        return lr.repeat(self.scale, axis=2).repeat(self.scale, axis=3)


@pytest.fixture
def pair(make_raster) -> tuple[Path, Path]:
    lr = make_raster(HSI, 9, 11, name="lr.tif", wavelengths_nm=[450, 550, 650, 750, 850],
                     geotransform=(500000.0, 20.0, 0.0, 5000000.0, 0.0, -20.0))
    hr = make_raster(MSI, 9 * SCALE, 11 * SCALE, name="hr.tif",
                     geotransform=(500000.0, 10.0, 0.0, 5000000.0, 0.0, -10.0))
    return lr, hr


def _args(pair, out, *extra) -> list[str]:
    return ["fuse", "--lrhsi", str(pair[0]), "--hrmsi", str(pair[1]), "--model", "model.safetensors",
            "--out", str(out), *extra]


def test_help_explains_every_option_in_hr_pixels(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["fuse", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert exit_info.value.code == 0
    for option in ("--lrhsi", "--hrmsi", "--model", "--out", "--tile", "--overlap", "--batch", "--block",
                   "--device", "--region"):
        assert option in text
    assert "HR pixels" in text


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--region", "1,2,3"], "not four whole numbers"),
        (["--region", "5,0,5,9"], "is empty"),
        (["--tile", "0"], "must be at least 1"),
        (["--overlap", "-16"], "must be at least 0"),
        (["--batch", "two"], "not a whole number"),
    ],
)
def test_malformed_arguments_exit_2_with_the_reason(pair, tmp_path, capsys, extra, words):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(_args(pair, tmp_path / "out.tif", *extra))
    assert exit_info.value.code == 2
    assert words in capsys.readouterr().err


def test_no_command_prints_the_help_and_exits_2(capsys):
    assert cli.main([]) == 2
    assert "fuse" in capsys.readouterr().err


def test_bad_inputs_are_one_error_line_and_exit_2(pair, tmp_path, capsys):
    out = tmp_path / "out.tif"
    missing = ["fuse", "--lrhsi", str(tmp_path / "nope.tif"), "--hrmsi", str(pair[1]), "--model", "m",
               "--out", str(out)]
    assert cli.main(missing) == 2
    assert capsys.readouterr().err.startswith(f"error: {tmp_path / 'nope.tif'}: the file does not exist")
    assert cli.main(_args(pair, pair[0])) == 2
    assert "also an input" in capsys.readouterr().err
    assert cli.main(_args(pair, out)) == 2  # the model file does not exist (or PyTorch is missing)
    err = capsys.readouterr().err
    assert err.startswith("error: ") and ("model.safetensors" in err or "PyTorch" in err)
    assert err.count("\n") == 1 and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hr.tif", "lr.tif"]


def test_a_run_shows_progress_and_writes_the_output(pair, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(service, "load_predictor", lambda model, device, threads=None: Upsampling())
    out = tmp_path / "out.tif"
    assert cli.main(_args(pair, out, "--tile", "8", "--overlap", "2", "--region", "2,4,20,16")) == 0
    captured = capsys.readouterr()
    assert "100%" in captured.err and captured.err.endswith("\n") and "\n" not in captured.err[:-1]
    assert captured.out.startswith(f"wrote {out}: 18 x 12 pixels, x2")
    fused = read_raster(out)
    lr = read_raster(pair[0])
    np.testing.assert_allclose(fused, lr.repeat(2, axis=1).repeat(2, axis=2)[:, 4:16, 2:20], rtol=1e-6)
    assert read_info(out).wavelengths_nm == (450.0, 550.0, 650.0, 750.0, 850.0)


def test_ctrl_c_cancels_cleanly_with_exit_130(pair, tmp_path, capsys, monkeypatch):
    predictor = Upsampling(interrupt=True)
    monkeypatch.setattr(service, "load_predictor", lambda model, device, threads=None: predictor)
    handler = signal.getsignal(signal.SIGINT)
    assert cli.main(_args(pair, tmp_path / "out.tif", "--tile", "8", "--overlap", "2", "--batch", "2")) == 130
    assert predictor.calls == 1  # stopped after the batch in progress
    assert "canceled" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hr.tif", "lr.tif"]
    assert signal.getsignal(signal.SIGINT) is handler


def test_python_m_cofusion_reports_errors_with_exit_2(pair, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "cofusion", "fuse", "--lrhsi", str(tmp_path / "nope.tif"), "--hrmsi",
         str(pair[1]), "--model", "m", "--out", str(tmp_path / "o.tif")],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2 and result.stderr.startswith("error: ") and "nope.tif" in result.stderr


def test_a_real_checkpoint_runs_end_to_end(pair, make_raster, tmp_path, capsys):
    pytest.importorskip("cofusion.core.inference")
    from cofusion.core.checkpoint import ModelCard, Normalization, save_checkpoint
    from cofusion.core.model import ModelConfig, build_model

    config = ModelConfig(HSI, MSI, SCALE, width=8, top_k=4)
    card = ModelCard(config=config, normalization=Normalization.identity(HSI, MSI),
                     hsi_wavelengths_nm=(450.0, 550.0, 650.0, 750.0, 850.0),
                     srf=tuple(tuple(row) for row in np.full((MSI, HSI), 1 / HSI)),
                     msi_band_names=("B2", "B3", "B4"), provenance={"mode": "test"}, metrics={})
    model = save_checkpoint(tmp_path / "m.safetensors", build_model(config).eval(), card)
    out = tmp_path / "out.tif"
    args = ["fuse", "--lrhsi", str(pair[0]), "--hrmsi", str(pair[1]), "--model", str(model), "--out", str(out),
            "--device", "cpu", "--tile", "32", "--overlap", "16", "-q"]
    assert cli.main(args) == 0
    assert capsys.readouterr().err == ""
    fused = read_raster(out)
    assert fused.shape == (HSI, 9 * SCALE, 11 * SCALE) and np.isfinite(fused).all()
    four_bands = make_raster(4, 9, 11, name="lr4.tif", geotransform=(500000.0, 20.0, 0.0, 5000000.0, 0.0, -20.0))
    wrong = ["fuse", "--lrhsi", str(four_bands), "--hrmsi", str(pair[1]), "--model", str(model), "--out",
             str(tmp_path / "other.tif")]
    assert cli.main(wrong) == 2
    err = capsys.readouterr().err.splitlines()[-1]  # after the progress bar of the band screening
    assert err.startswith("error: The model expects 5 hyperspectral bands") and "lr4.tif has 4" in err
    assert not (tmp_path / "other.tif").exists()


def test_classic_fuses_with_a_classical_method_and_marks_the_bands(pair, tmp_path, capsys):
    out = tmp_path / "gsa.tif"
    assert cli.main(["classic", "--lrhsi", str(pair[0]), "--hrmsi", str(pair[1]), "--method", "gsa",
                     "--out", str(out), "--srf", "sentinel2a:B3,B4,B8", "-q"]) == 0
    assert capsys.readouterr().out.startswith(f"wrote {out} (gsa)")
    info = read_info(out)
    assert (info.band_count, info.width, info.height) == (HSI, 22, 18)
    assert np.isfinite(read_raster(out)).all()
    from cofusion.core.band_support import read_marking

    _dataset, bands = read_marking(out)
    detail = {nm: b["COFUSION_DETAIL"] for nm, b in zip(info.wavelengths_nm, bands)}
    assert (detail[450.0], detail[550.0], detail[750.0], detail[850.0]) == ("extrapolated", "measured",
                                                                             "extrapolated", "measured")


def test_classic_refuses_an_unknown_method_in_one_line(pair, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["classic", "--lrhsi", str(pair[0]), "--hrmsi", str(pair[1]), "--method", "pca",
                  "--out", str(tmp_path / "x.tif")])
    assert stop.value.code == 2 and "invalid choice: 'pca'" in capsys.readouterr().err
    assert not (tmp_path / "x.tif").exists()
