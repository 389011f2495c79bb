# SPDX-License-Identifier: GPL-2.0-or-later
"""``python -m cofusion wavelengths --sensor SENSOR[:BANDS] IN OUT [--overwrite]``."""
from __future__ import annotations

import subprocess
import sys

import pytest

from cofusion import cli
from cofusion.core.raster import read_info
from cofusion.core.srf import sensor_wavelengths


def test_wavelengths_writes_a_vrt_with_the_band_table(make_raster, tmp_path, capsys):
    src = make_raster(bands=130, rows=4, cols=4, dtype="int16")
    out = tmp_path / "with_wl.vrt"
    assert cli.main(["wavelengths", "--sensor", "enmap:B1-B130", str(src), str(out)]) == 0
    assert capsys.readouterr().out == f"wrote {out}: the wavelengths and FWHM of 'enmap:B1-B130'\n"
    assert read_info(out).fwhm_nm == pytest.approx(tuple(sensor_wavelengths("enmap")[1][:130]))


def test_wavelengths_refusals_exit_2_with_the_fix(make_raster, tmp_path, capsys):
    bare = make_raster(bands=130, rows=4, cols=4)
    assert cli.main(["wavelengths", "--sensor", "enmap", str(bare), str(tmp_path / "o.tif")]) == cli.EXIT_ERROR
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "130 bands" in err and "224" in err and "enmap:B1-B130" in err
    labelled = make_raster(bands=2, wavelengths_nm=(500.0, 600.0))
    args = ["wavelengths", "--sensor", "desis:B1,B2", str(labelled), str(tmp_path / "o.tif")]
    assert cli.main(args) == cli.EXIT_ERROR and "--overwrite" in capsys.readouterr().err
    assert not (tmp_path / "o.tif").exists()
    assert cli.main([*args, "--overwrite"]) == 0
    assert read_info(tmp_path / "o.tif").wavelengths_nm == pytest.approx(tuple(sensor_wavelengths("desis")[0][:2]))


def test_wavelengths_help_names_the_sensors_and_outputs(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["wavelengths", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert exit_info.value.code == 0
    assert all(word in text for word in ("enmap, prisma, desis, emit", "enmap:B1-B130", ".vrt", "--overwrite"))


def test_python_m_cofusion_wavelengths(make_raster, tmp_path):
    src = make_raster(bands=224, rows=3, cols=3)
    result = subprocess.run([sys.executable, "-m", "cofusion", "wavelengths", "--sensor", "enmap", str(src),
                             str(tmp_path / "o.tif")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert read_info(tmp_path / "o.tif").wavelengths_nm == pytest.approx(tuple(sensor_wavelengths("enmap")[0]))
