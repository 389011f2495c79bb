# SPDX-License-Identifier: GPL-2.0-or-later
"""The training command line's stderr: one progress line, ended before the closing message (done or error)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from cofusion.core.errors import InputError
from cofusion.training import api
from cofusion.training import cli as training_cli

ARGS = ["pair", "--lrhsi", "lr.tif", "--hrmsi", "hr.tif", "--out", "m.safetensors", "--device", "cpu"]


def _stand_in(error: Exception | None):
    """A stand-in for ``api.train_pair`` that reports progress three times, then fails with ``error`` or returns."""
    def train_pair(lrhsi, hrmsi, out, srf=None, progress=None, **_hooks):
        for step in range(3):
            progress(step / 2, f"step {step}")
        if error is not None:
            raise error
        return SimpleNamespace(checkpoint=out, log="m.log.csv", steps=3, seconds=6.0, metrics={"PSNR": 30.0})
    return train_pair


@pytest.mark.parametrize("error, code, last", [(None, 0, "wrote m.safetensors (3 steps"),
                                               (InputError("the pair is too small"), 2, "error: the pair is")])
def test_the_cli_draws_one_progress_line_then_its_message(error, code, last, monkeypatch, capsys):
    monkeypatch.setattr(api, "train_pair", _stand_in(error))
    assert training_cli.main(ARGS) == code
    lines = capsys.readouterr().err.split("\n")
    assert len(lines) == 3 and lines[2] == "", lines  # the bar's line, the message, the final newline
    assert lines[0].startswith("\r[") and "100%" in lines[0] and lines[1].startswith(last), lines
