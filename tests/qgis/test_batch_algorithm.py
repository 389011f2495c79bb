# SPDX-License-Identifier: GPL-2.0-or-later
"""cofusion:batch_fuse: the batch of core.batch through processing.run: the COGs equal single-process fusions, a
failing pair fails the run naming its line while the others are written, progress is reported, cancel stops it
leaving no output. Skips where Dask is not installed (the QGIS 3.40 / 3.44 chroot suites)."""
from __future__ import annotations

from pathlib import Path

import pytest
from osgeo import gdal

pytestmark = pytest.mark.qgis
qgis_core = pytest.importorskip("qgis.core")
pytest.importorskip("distributed")


def _manifest(path: Path, rows: list[tuple]) -> Path:
    path.write_text("lrhsi,hrmsi,model,output\n" + "".join(",".join(map(str, r)) + "\n" for r in rows),
                    encoding="utf-8")
    return path


class Recorder(qgis_core.QgsProcessingFeedback):
    """A feedback that keeps the progress values and the log lines."""

    def __init__(self) -> None:
        super().__init__()
        self.values: list[float] = []
        self.lines: list[str] = []
        self.errors: list[str] = []
        self.progressChanged.connect(self.values.append)

    def pushInfo(self, info: str) -> None:  # noqa: N802 (QGIS API name)
        self.lines.append(info)
        super().pushInfo(info)

    def reportError(self, error: str, fatalError: bool = False) -> None:  # noqa: N802, N803
        self.errors.append(error)
        super().reportError(error, fatalError)


def test_batch_fuse_writes_the_scenes_of_a_single_process_run(run, make_pair, model, tmp_path):
    from cofusion.core import service
    from cofusion.core.batch import local_threads

    pairs = [make_pair(16), make_pair(24)]  # HR 32 and 48 pixels wide: 1 and 2 stripes
    manifest = _manifest(tmp_path / "m.csv", [(lr.name, hr.name, model, f"fused_{k}.tif")
                                              for k, (lr, hr) in enumerate(pairs)])
    feedback = Recorder()
    result = run("batch_fuse", {"MANIFEST": str(manifest), "OUTPUT_FOLDER": str(tmp_path / "out"), "WORKERS": 1,
                                "DEVICE": "cpu", "TILE_SIZE": 32, "OVERLAP": 16, "BLOCK_SIZE": 32}, feedback)
    assert result["WRITTEN"] == 2 and result["FAILED"] == 0 and result["OUTPUT_FOLDER"] == str(tmp_path / "out")
    for k, (lr, hr) in enumerate(pairs):
        reference = tmp_path / f"ref_{k}.tif"
        service.fuse(service.FusionRequest(lr, hr, reference, model=model, device="cpu", tile=32, overlap=16,
                                           threads=local_threads(1, 1)))
        a, b = gdal.Open(str(reference)), gdal.Open(str(tmp_path / "out" / f"fused_{k}.tif"))
        assert a.ReadAsArray().tobytes() == b.ReadAsArray().tobytes()
        assert a.GetGeoTransform() == b.GetGeoTransform() and a.GetProjection() == b.GetProjection()
        assert a.GetRasterBand(1).GetMetadata() == b.GetRasterBand(1).GetMetadata()
        a = b = None
    assert feedback.values and max(feedback.values) == 100.0
    assert sum("block" in line and "done (" in line for line in feedback.lines) == 3
    assert any("written" in line for line in feedback.lines) and any("dashboard" in line for line in feedback.lines)


def test_a_failing_pair_fails_the_run_naming_its_line_and_the_others_are_written(run, pair, model, tmp_path):
    manifest = _manifest(tmp_path / "m.csv", [(pair[0].name, pair[1].name, model, "good.tif"),
                                              ("missing.tif", pair[1].name, model, "bad.tif")])
    feedback = Recorder()
    with pytest.raises(qgis_core.QgsProcessingException) as raised:
        run("batch_fuse", {"MANIFEST": str(manifest), "OUTPUT_FOLDER": str(tmp_path / "out"), "WORKERS": 1,
                           "DEVICE": "cpu", "TILE_SIZE": 32, "OVERLAP": 16}, feedback)
    assert "1 of 2 pairs failed" in str(raised.value) and "line 3" in str(raised.value)
    assert "missing.tif" in str(raised.value) and any("missing.tif" in e for e in feedback.errors)
    assert (tmp_path / "out" / "good.tif").is_file() and not (tmp_path / "out" / "bad.tif").exists()


def test_cancel_stops_the_batch_and_leaves_no_output(run, pair, model, tmp_path):
    manifest = _manifest(tmp_path / "m.csv", [(pair[0].name, pair[1].name, model, "fused.tif")])
    feedback = Recorder()
    feedback.cancel()
    with pytest.raises(qgis_core.QgsProcessingException, match="canceled"):
        run("batch_fuse", {"MANIFEST": str(manifest), "OUTPUT_FOLDER": str(tmp_path / "out"), "WORKERS": 1,
                           "DEVICE": "cpu", "TILE_SIZE": 32, "OVERLAP": 16}, feedback)
    assert not (tmp_path / "out" / "fused.tif").exists()
    assert not [p for p in (tmp_path / "out").rglob("*") if ".tmp" in p.name]
