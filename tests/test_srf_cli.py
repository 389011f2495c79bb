# SPDX-License-Identifier: GPL-2.0-or-later
"""``python -m cofusion srf --list``: every sensor preset with its description, one line each."""
from __future__ import annotations

import subprocess
import sys

import pytest

from cofusion import cli
from cofusion.core.srf import describe_presets


def test_srf_list_prints_every_preset_with_its_description(capsys):
    assert cli.main(["srf", "--list"]) == 0
    out = capsys.readouterr().out.splitlines()
    lines = describe_presets()
    assert [row.split()[0] for row in out] == list(lines)
    assert all(row.endswith(lines[row.split()[0]]) for row in out)
    assert any(row.startswith("enmap ") and "224 bands" in row for row in out)


def test_srf_without_list_says_what_to_give(capsys):
    assert cli.main(["srf"]) == cli.EXIT_ERROR
    assert "give --list" in capsys.readouterr().err


def test_srf_help_explains_the_band_syntax(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["srf", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert exit_info.value.code == 0 and "--list" in text and "NAME:B2,B3" in text


def test_python_m_cofusion_srf_list():
    result = subprocess.run([sys.executable, "-m", "cofusion", "srf", "--list"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0 and result.stdout.startswith("sentinel2a ") and "emit " in result.stdout
