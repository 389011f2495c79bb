# SPDX-License-Identifier: GPL-2.0-or-later
"""Output path checks: extension, folder, name length, inputs by path, link and VRT source, free disk space."""
from __future__ import annotations

import os
import sys
from collections import namedtuple

import numpy as np
import pytest
from osgeo import gdal

from cofusion.core import outputs
from cofusion.core.errors import OutputError
from cofusion.core.outputs import (
    MAX_NAME_BYTES,
    check_free_space,
    check_output_path,
    files_read_by,
    temporary_path,
)
from cofusion.core.raster import RasterWriter

Usage = namedtuple("Usage", "total used free")


def test_check_output_path_accepts_a_new_tif(tmp_path):
    assert check_output_path(tmp_path / "a.TIFF") == tmp_path / "a.TIFF"


def test_check_output_path_rejections(tmp_path, monkeypatch):
    with pytest.raises(OutputError, match=r"extension \.tif"):
        check_output_path(tmp_path / "a.img")
    with pytest.raises(OutputError, match="does not exist"):
        check_output_path(tmp_path / "missing" / "a.tif")
    (tmp_path / "dir.tif").mkdir()
    with pytest.raises(OutputError, match="is a folder"):
        check_output_path(tmp_path / "dir.tif")
    monkeypatch.setattr(outputs.os, "access", lambda *_args: False)  # root can write anywhere: simulate
    with pytest.raises(OutputError, match="not writable"):
        check_output_path(tmp_path / "a.tif")


def test_check_output_path_refuses_to_overwrite_an_input(tmp_path, monkeypatch, make_raster):
    source = make_raster(name="in.tif")
    (tmp_path / "link.tif").symlink_to(source)
    os.link(source, tmp_path / "hard.tif")
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path)
    for output in (source, "in.tif", tmp_path / "sub" / ".." / "in.tif", tmp_path / "link.tif",
                   tmp_path / "hard.tif"):
        with pytest.raises(OutputError, match="is also an input"):
            check_output_path(output, inputs=[tmp_path / "other.tif", source])
    assert check_output_path("new.tif", inputs=[source]) == tmp_path / "new.tif"


def test_the_sources_of_an_input_vrt_are_inputs_too(tmp_path, make_raster):
    """A VRT reads other files: writing over one of them would overwrite the input; nested VRTs as well."""
    source = make_raster(name="source.tif")
    vrt = tmp_path / "cube.vrt"
    assert gdal.BuildVRT(str(vrt), [str(source)]) is not None
    nested = tmp_path / "nested.vrt"
    assert gdal.Translate(str(nested), str(vrt), format="VRT") is not None
    for reader in (vrt, nested):
        assert any(os.path.samefile(f, source) for f in files_read_by(reader))
        with pytest.raises(OutputError, match=f"read to open the input {reader}"):
            check_output_path(source, inputs=[reader])
    assert check_output_path(tmp_path / "fused.tif", inputs=[vrt, nested]) == tmp_path / "fused.tif"


def test_a_non_raster_input_such_as_the_model_is_an_input(tmp_path):
    model = tmp_path / "model.tif"  # a checkpoint renamed, or a model saved under a raster's name
    model.write_bytes(b"not a raster")
    assert files_read_by(model) == [model]
    with pytest.raises(OutputError, match="is also an input"):
        check_output_path(model, inputs=[model])


@pytest.mark.skipif(sys.platform == "win32", reason="FIFOs are a POSIX thing")
def test_a_fifo_input_is_never_opened(tmp_path):
    """Opening a FIFO blocks until a writer comes: the check must not even try."""
    fifo = tmp_path / "pipe.tif"
    os.mkfifo(fifo)
    assert files_read_by(fifo) == [fifo]


def test_a_legal_long_file_name_is_accepted_and_its_temporary_file_stays_legal(tmp_path):
    longest = "f" * (MAX_NAME_BYTES - 4) + ".tif"
    target = check_output_path(tmp_path / longest)
    temp = temporary_path(target)
    assert temp.parent == tmp_path and temp.name.startswith(".f") and temp.name.endswith(".tmp.tif")
    assert len(temp.name.encode()) <= MAX_NAME_BYTES
    with RasterWriter(target, width=4, height=3, band_count=1, geotransform=(0, 1, 0, 0, 0, -1),
                      crs_wkt="") as writer:
        writer.write(np.ones((1, 3, 4), np.float32), 0, 0)
    assert target.exists() and sorted(p.name for p in tmp_path.iterdir()) == [longest]
    with pytest.raises(OutputError, match="longer than|file systems allow"):
        check_output_path(tmp_path / ("f" + longest))


def test_temporary_names_cut_multibyte_names_at_a_character(tmp_path):
    target = tmp_path / ("é" * 120 + ".tif")  # 244 bytes
    name = temporary_path(target).name
    assert len(name.encode()) <= MAX_NAME_BYTES and name.encode().decode() == name


def test_an_output_that_cannot_fit_on_the_disk_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    monkeypatch.setattr(outputs.shutil, "disk_usage", lambda _path: Usage(10**12, 10**12 - 10**6, 10**6))
    with pytest.raises(OutputError, match=r"needs about .* of disk space but .* has 1\.0 MB free"):
        RasterWriter(tmp_path / "big.tif", width=1000, height=1000, band_count=10,
                     geotransform=(0, 1, 0, 0, 0, -1), crs_wkt="")
    assert list(tmp_path.iterdir()) == []


def test_an_output_that_may_not_fit_is_written_with_a_warning(tmp_path, monkeypatch, caplog):
    raw = 40 * 30 * 2 * 4
    monkeypatch.setattr(outputs.shutil, "disk_usage", lambda _path: Usage(10**12, 10**12, raw - 1))
    check_free_space(tmp_path / "a.tif", raw)
    assert "may not fit" in caplog.text
    caplog.clear()
    monkeypatch.setattr(outputs.shutil, "disk_usage", lambda _path: Usage(10**12, 10**12, raw))
    check_free_space(tmp_path / "a.tif", raw)
    assert caplog.text == ""
