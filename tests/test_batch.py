# SPDX-License-Identifier: GPL-2.0-or-later
"""Batch fusion on Dask (core.batch, ``python -m cofusion batch``): the COGs equal single-process fusions bit for bit
(pixels, georeference, nodata, band metadata) with 1 and 2 workers; a batch killed with SIGKILL resumes computing
only the missing stripes; failing pairs are reported while the others are written; an unreachable scheduler is one
line; nothing half-written is ever at an output path. The tests that run Dask skip where it is not installed (the
QGIS 3.40 / 3.44 chroot suites); two in-process clusters (threads) are shared by the module, and the kill test runs
the command line with worker processes."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from cofusion import cli
from cofusion.core import allocator, batch, service
from cofusion.core.errors import Canceled, InputError, OutputError
from cofusion.core.producer import model_producer, read_producer
from cofusion.core.raster import read_info
from cofusion.core.window import Window

from .reliability.conftest import HR_GT, HSI, LR_GT, MSI, WAVELENGTHS, save_tiny_model

TILE, OVERLAP, BLOCK = 32, 16, 32  # HR pixels: stripes of 32 columns, two tile steps; the tiny model's alignment 16
SETTINGS = batch.BatchSettings(device="cpu", threads=1, tile=TILE, overlap=OVERLAP, block=BLOCK)
REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def clusters():
    """Two in-process local clusters (threads) for the module: {1: client of 1 worker, 2: client of 2 workers}."""
    distributed = pytest.importorskip("distributed")
    made = {}
    for workers in (1, 2):
        cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=False,
                                           dashboard_address=":0")
        made[workers] = (cluster, distributed.Client(cluster, set_as_default=False))
    yield {workers: client for workers, (_cluster, client) in made.items()}
    for cluster, client in made.values():
        client.close()
        cluster.close()


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("model") / "tiny.safetensors")


def _scene(make_raster, name: str, cols: int, seed: int, nodata: float | None = None,
           empty_cols: int = 0, wavelengths=WAVELENGTHS, rows: int = 24) -> tuple[Path, Path]:
    """An LRHSI (5 bands, ``rows`` x ``cols`` LR pixels, 20 m) and its HRMSI (3 bands, 10 m). ``nodata``: pixel (0, 0)
    holds it; ``empty_cols``: that many LR columns from the left are nodata too (whole stripes without a valid
    pixel)."""
    rng = np.random.default_rng(seed)
    lr = rng.random((HSI, rows, cols)).astype(np.float32)
    if empty_cols:
        lr[:, :, :empty_cols] = nodata
    hr = rng.random((MSI, 2 * rows, 2 * cols)).astype(np.float32)
    return (make_raster(data=lr, name=f"{name}_lr.tif", geotransform=LR_GT, wavelengths_nm=wavelengths,
                        fwhm_nm=[10.0 + k for k in range(HSI)], nodata=nodata),
            make_raster(data=hr, name=f"{name}_hr.tif", geotransform=HR_GT))


def _reference(lr: Path, hr: Path, model: Path, out: Path) -> Path:
    """The single-process fusion the batch must equal: the service with the batch's settings and threads."""
    service.fuse(service.FusionRequest(lr, hr, out, model=model, device="cpu", threads=1, tile=TILE, overlap=OVERLAP))
    return out


def _manifest(path: Path, rows: list[tuple[str, ...]], header: str = "lrhsi,hrmsi,model,output") -> Path:
    path.write_text(header + "\n" + "".join(",".join(map(str, row)) + "\n" for row in rows), encoding="utf-8")
    return path


def assert_same_raster(expected: Path, actual: Path) -> None:
    """Pixels bit for bit, georeference, nodata, descriptions and band metadata of every domain (the bands'
    IMAGERY items only where this GDAL's COG driver copies them, ``batch.cog_keeps_band_domains``)."""
    a, b = gdal.Open(str(expected)), gdal.Open(str(actual))
    assert (a.RasterXSize, a.RasterYSize, a.RasterCount) == (b.RasterXSize, b.RasterYSize, b.RasterCount)
    assert a.ReadAsArray().tobytes() == b.ReadAsArray().tobytes()
    assert a.GetGeoTransform() == b.GetGeoTransform()
    assert a.GetSpatialRef().IsSame(b.GetSpatialRef()) and a.GetProjection() == b.GetProjection()
    assert a.GetMetadata() == b.GetMetadata()
    assert b.GetMetadata("IMAGE_STRUCTURE").get("LAYOUT") == "COG"
    assert b.GetMetadata("IMAGE_STRUCTURE").get("COMPRESSION") == "DEFLATE"
    for k in range(1, a.RasterCount + 1):
        x, y = a.GetRasterBand(k), b.GetRasterBand(k)
        assert x.DataType == y.DataType == gdal.GDT_Float32
        assert str(x.GetNoDataValue()) == str(y.GetNoDataValue())  # nan == nan as text
        assert x.GetDescription() == y.GetDescription()
        assert x.GetMetadata() == y.GetMetadata() and "bbl" in y.GetMetadata()
        if batch.cog_keeps_band_domains():
            assert x.GetMetadata("IMAGERY") == y.GetMetadata("IMAGERY")
    x = y = a = b = None
    first, second = read_info(expected), read_info(actual)
    for name in ("wavelengths_nm", "fwhm_nm", "band_names", "bad_band_flags", "nodata", "crs_wkt", "geotransform"):
        assert str(getattr(first, name)) == str(getattr(second, name)), name


def _leftovers(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if ".tmp" in p.name)


# ------------------------------------------------------------------------------------------------------ no dask needed


def test_the_core_and_the_command_line_import_without_dask():
    code = ("import sys\n"
            "import cofusion.cli, cofusion.core.batch, cofusion.core.service\n"
            "print(sorted({'dask', 'distributed'} & set(sys.modules)))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr


def test_missing_dask_is_one_line_naming_the_requirements_file(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "distributed", None)
    manifest = _manifest(tmp_path / "m.csv", [("a.tif", "b.tif", "", "c.tif")])
    with pytest.raises(InputError) as raised:
        batch.run_batch(manifest, tmp_path)
    message = str(raised.value)
    assert "pip install -r requirements-batch.txt" in message and "\n" not in message


def test_the_manifest_columns_comments_and_line_numbers(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("# scenes of July\nLRHSI, hrmsi ,output,method\n\na.tif,b.tif,out/a.tif,gsa\n# skipped\n"
                    "c.tif,d.tif,e.tif,\n", encoding="utf-8")
    rows = batch.read_manifest(path)
    assert [(r.line, r.lrhsi, r.hrmsi, r.output, r.model, r.method) for r in rows] == [
        (4, "a.tif", "b.tif", "out/a.tif", "", "gsa"), (6, "c.tif", "d.tif", "e.tif", "", "")]
    path.write_text("lrhsi,model\na.tif,\n", encoding="utf-8")
    with pytest.raises(InputError, match="no column hrmsi, output"):
        batch.read_manifest(path)


def test_any_region_of_the_output_grid_equals_the_same_pixels_of_a_whole_run(make_raster, tiny_model, tmp_path):
    """What lets the stripes be tasks: region fusion is exact at any columns, on the tile grid or not (the batch's
    stripes are on it: multiples of tile - overlap from the grid's origin, like the engine's own blocks)."""
    lr, hr = _scene(make_raster, "r", 40, seed=3)
    whole = gdal.Open(str(_reference(lr, hr, tiny_model, tmp_path / "whole.tif"))).ReadAsArray()
    for col0, col1 in ((0, 7), (7, 45), (45, 80), (16, 48)):
        out = tmp_path / f"part_{col0}.tif"
        service.fuse(service.FusionRequest(lr, hr, out, model=tiny_model, device="cpu", threads=1, tile=TILE,
                                           overlap=OVERLAP, block=BLOCK, region=Window(col0, 0, col1 - col0, 48)))
        assert gdal.Open(str(out)).ReadAsArray().tobytes() == np.ascontiguousarray(whole[:, :, col0:col1]).tobytes()


def test_a_cog_is_never_half_written_at_its_path(make_raster, tmp_path):
    source = make_raster(5, 40, 40, name="source.tif", wavelengths_nm=WAVELENGTHS)
    target = tmp_path / "out" / "cog.tif"
    target.parent.mkdir()
    target.write_bytes(b"the file of an earlier run")
    with pytest.raises(Canceled):
        batch.write_cog(source, target, cancel=lambda: True)
    assert target.read_bytes() == b"the file of an earlier run" and _leftovers(tmp_path / "out") == []
    with pytest.raises(OutputError, match="cog.tif"):
        batch.write_cog(tmp_path / "not-a-raster.tif", target)
    assert target.read_bytes() == b"the file of an earlier run" and _leftovers(tmp_path / "out") == []
    batch.write_cog(source, target)
    assert gdal.Open(str(target)).ReadAsArray().tobytes() == gdal.Open(str(source)).ReadAsArray().tobytes()


@pytest.mark.parametrize("size, stripe, factors", [
    ((1152, 1152), 576, (2, 4, 8)),  # the COG driver's own levels: 576, 288, 144 pixels
    ((3000, 3000), 288, (2, 4, 8, 16)),  # an EnMAP scene at x3: down to 188 pixels
    ((10000, 300), 96, (2, 4, 8, 16, 32)),  # 64 does not divide the stripes: the smallest level is 313 pixels wide
    ((600, 100), None, (2, 4)),  # one part (a classical method): no stripe to divide
    ((256, 200), 32, ()),  # fits in one COG tile
])
def test_overview_factors_follow_the_cog_rule_within_whole_blocks_of_a_stripe(size, stripe, factors):
    assert batch.overview_factors(*size, stripe) == factors


def test_a_cog_is_compressed_on_the_tasks_threads():
    assert "NUM_THREADS=1" in batch.cog_options(224, 1) and "NUM_THREADS=ALL_CPUS" in batch.cog_options(224)


def _wide_plan(lr: Path, hr: Path, tiny_model: Path, tmp_path: Path):
    """The batch's plan of a 320-pixel wide pair (one overview level, x2) into ``tmp_path / "out"``."""
    row = batch.ManifestRow(2, str(lr), str(hr), "wide.tif", str(tiny_model))
    out = tmp_path / "out"
    out.mkdir()
    plan = batch._plan(row, tmp_path, out, SETTINGS, "no-event")
    assert all(job.overviews == (2,) for job in plan.blocks)
    return plan


def _one_stripe_job(make_raster, tiny_model, tmp_path) -> batch.BlockJob:
    return _wide_plan(*_scene(make_raster, "wide", 160, seed=5), tiny_model, tmp_path).blocks[0]  # 320 x 48 HR


def test_a_stripe_killed_while_its_overviews_are_made_is_not_fused_again(make_raster, tiny_model, tmp_path,
                                                                          monkeypatch):
    job = _one_stripe_job(make_raster, tiny_model, tmp_path)
    monkeypatch.setattr(batch._TaskCancel, "__call__", lambda self: False)  # no scheduler to ask
    real_add = batch.add_overviews
    monkeypatch.setattr(batch, "add_overviews", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):  # the process dies after the engine wrote the pixels
        batch.fuse_block(job)
    pixels = batch.pixels_path(job.part)
    assert pixels.exists() and not job.part.exists()
    monkeypatch.setattr(batch, "add_overviews", real_add)
    monkeypatch.setattr(service, "fuse", lambda *a, **k: pytest.fail("the stripe was fused again"))
    done = batch.fuse_block(job)
    assert done.part == job.part and job.part.exists() and not pixels.exists()
    assert gdal.Open(str(job.part)).GetRasterBand(1).GetOverviewCount() == 1


def test_the_mosaic_reads_the_parts_overviews_as_its_own(make_raster, tiny_model, tmp_path, monkeypatch):
    """What spares the COG driver computing overviews: the virtual mosaic of the parts has their levels, read
    from the parts' own."""
    lr, hr = _scene(make_raster, "wide", 160, seed=7, rows=130)
    plan = _wide_plan(lr, hr, tiny_model, tmp_path)
    monkeypatch.setattr(batch._TaskCancel, "__call__", lambda self: False)
    for job in plan.blocks:
        batch.fuse_block(job)
    mosaic = gdal.Open(str(batch.write_mosaic_vrt(plan.assemble, tmp_path / "mosaic.vrt")))
    reference = gdal.Open(str(_reference(lr, hr, tiny_model, tmp_path / "ref.tif")))
    assert mosaic.ReadAsArray().tobytes() == reference.ReadAsArray().tobytes()
    band = mosaic.GetRasterBand(1)
    assert band.GetOverviewCount() == 1 and (band.GetOverview(0).XSize, band.GetOverview(0).YSize) == (160, 130)
    assert band.GetMetadata() == reference.GetRasterBand(1).GetMetadata()
    stripe = plan.assemble.regions[1]
    part = gdal.Open(str(plan.assemble.parts[1]))
    assert band.GetOverview(0).ReadAsArray(stripe.col // 2, 0, 16, 130).tobytes() == \
        part.GetRasterBand(1).GetOverview(0).ReadAsArray().tobytes()


def test_a_part_gdal_cannot_extend_is_deleted_with_a_line_saying_so(make_raster, tiny_model, tmp_path, monkeypatch):
    job = _one_stripe_job(make_raster, tiny_model, tmp_path)
    monkeypatch.setattr(batch._TaskCancel, "__call__", lambda self: False)
    pixels = batch.pixels_path(job.part)
    pixels.write_bytes(b"II*\0 what a kill in the middle of a write may leave")
    with pytest.raises(OutputError, match="it is deleted: run the batch again"):
        batch.fuse_block(job)
    assert not pixels.exists() and not job.part.exists()


# ------------------------------------------------------------------------------------------------------ with Dask


@pytest.mark.parametrize("workers", [1, 2])
def test_two_scenes_equal_single_process_fusions_bit_for_bit(clusters, workers, make_raster, tiny_model, tmp_path):
    """Scene a: NaN nodata at one pixel; scene b: nodata -9999 over the first 16 LR columns, so its first stripe has
    no valid pixel at all (nodata in the COG, as in the single-process output)."""
    a = _scene(make_raster, "a", 40, seed=1, nodata=float("nan"))
    b = _scene(make_raster, "b", 40, seed=2, nodata=-9999.0, empty_cols=16)
    references = [_reference(*pair, tiny_model, tmp_path / f"ref_{k}.tif") for k, pair in enumerate((a, b))]
    manifest = _manifest(tmp_path / "m.csv", [(a[0].name, a[1].name, tiny_model, "a.tif"),
                                              (b[0].name, b[1].name, tiny_model, "sub/b.tif")])
    out = tmp_path / "out"
    out.mkdir()
    lines: list[str] = []
    report = batch.run_batch(manifest, out, settings=SETTINGS, client=clusters[workers],
                             progress=lambda _f, line: lines.append(line))
    assert report.ok, report.table()
    assert [(s.status, s.blocks, s.computed) for s in report.scenes] == [("written", 3, 3), ("written", 3, 3)]
    assert_same_raster(references[0], out / "a.tif")
    assert_same_raster(references[1], out / "sub" / "b.tif")
    assert read_producer(out / "a.tif") == model_producer(tiny_model)  # what made it, as the stripes recorded it
    assert any("no valid pixel" in line for line in lines)
    assert sum("block" in line and "done" in line for line in lines) == 6
    # the parts are gone once the COGs are in place; a rerun finds both done and computes nothing
    assert not list((out / batch.STATE_FOLDER).rglob("*.tif")) and _leftovers(out) == []
    again = batch.run_batch(manifest, out, settings=SETTINGS, client=clusters[workers])
    assert [s.status for s in again.scenes] == ["done before", "done before"]


def test_the_cog_carries_the_stripes_overviews_as_the_average_of_its_pixels(clusters, make_raster, tiny_model,
                                                                            tmp_path):
    """320 x 260 HR pixels in stripes of 32: the parts' overviews (one level, x2) side by side are the COG's, each
    pixel the mean of the valid pixels of its 2 x 2 block (nodata NaN at the LR pixel (0, 0), where all 4 are)."""
    lr, hr = _scene(make_raster, "wide", 160, seed=6, nodata=float("nan"), rows=130)
    reference = _reference(lr, hr, tiny_model, tmp_path / "ref.tif")
    out = tmp_path / "out"
    out.mkdir()
    report = batch.run_batch(_manifest(tmp_path / "m.csv", [(lr.name, hr.name, tiny_model, "w.tif")]), out,
                             settings=SETTINGS, client=clusters[2])
    assert report.ok, report.table()
    assert_same_raster(reference, out / "w.tif")
    cog = gdal.Open(str(out / "w.tif"))
    assert cog.GetRasterBand(1).GetOverviewCount() == 1
    full = cog.ReadAsArray().astype(np.float64)
    level = np.stack([cog.GetRasterBand(k).GetOverview(0).ReadAsArray() for k in range(1, cog.RasterCount + 1)])
    blocks = full.reshape(full.shape[0], 130, 2, 160, 2)
    counts = (~np.isnan(blocks)).sum(axis=(2, 4))
    expected = np.where(counts > 0, np.nansum(blocks, axis=(2, 4)) / np.maximum(counts, 1), np.nan)
    assert level.shape == expected.shape and np.isnan(level[:, 0, 0]).all() and np.isnan(expected[:, 0, 0]).all()
    np.testing.assert_allclose(level, expected, rtol=1e-6, atol=1e-7)


def test_a_local_clusters_workers_start_with_the_allocator_settings():
    """Dask's own MALLOC_TRIM_THRESHOLD_=65536 made a stripe 1.6 times as slow (core.batch.ALLOCATOR_SETTING); the
    workers of a local cluster start with core.allocator's settings instead."""
    pytest.importorskip("distributed")
    client = batch.open_client(None, 1, 1, True, 60.0)
    try:
        settings = list(client.run(batch._allocator_settings).values())
        assert settings == [allocator.ENVIRONMENT if allocator.is_glibc() else None]
        assert batch._slow_workers(client) == []
    finally:
        batch.close_client(client)


def test_workers_without_the_allocator_settings_are_named_in_a_note(clusters, make_raster, tiny_model, tmp_path,
                                                                   monkeypatch):
    if not allocator.is_glibc():
        pytest.skip("the allocator settings are glibc's")
    # the in-process workers of the module's clusters share this process's environment
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    lr, hr = _scene(make_raster, "t", 40, seed=8)
    out = tmp_path / "out"
    out.mkdir()
    lines: list[str] = []
    report = batch.run_batch(_manifest(tmp_path / "m.csv", [(lr.name, hr.name, tiny_model, "t.tif")]), out,
                             settings=SETTINGS, client=clusters[1], progress=lambda _f, line: lines.append(line))
    assert report.ok
    notes = [line for line in lines if "allocator settings" in line]
    assert len(notes) == 1 and "MALLOC_TRIM_THRESHOLD_=65536" in notes[0], lines
    assert all(f"pre-spawn-environ.{name}: {value}" in notes[0] for name, value in allocator.ENVIRONMENT.items())


def test_stripes_narrower_than_a_tile_are_fused(clusters, make_raster, tiny_model, tmp_path):
    """Tiles of 48 with an overlap of 16 and a block of 48: the block rounds down to stripes of one step, 32
    columns, narrower than a tile (x3's defaults, tile 336 and step 288, do the same with any block below 576).
    The engine must take them, and the COG equal the single-process fusion."""
    lr, hr = _scene(make_raster, "narrow", 40, seed=3)
    reference = tmp_path / "ref.tif"
    service.fuse(service.FusionRequest(lr, hr, reference, model=tiny_model, device="cpu", threads=1, tile=48,
                                       overlap=16, block=48))
    out = tmp_path / "out"
    out.mkdir()
    settings = batch.BatchSettings(device="cpu", threads=1, tile=48, overlap=16, block=48)
    report = batch.run_batch(_manifest(tmp_path / "m.csv", [(lr.name, hr.name, tiny_model, "n.tif")]), out,
                             settings=settings, client=clusters[1])
    assert report.ok, report.table()
    assert report.scenes[0].blocks == 3  # 80 HR columns in stripes of 32
    assert_same_raster(reference, out / "n.tif")


def test_failing_pairs_are_reported_and_the_others_written(clusters, make_raster, tiny_model, tmp_path, capsys):
    good = _scene(make_raster, "good", 40, seed=1)
    shifted = make_raster(data=np.zeros((MSI, 48, 80), np.float32), name="shifted_hr.tif",
                          geotransform=(HR_GT[0] + 5.0, *HR_GT[1:]))
    other_bands = _scene(make_raster, "swir", 40, seed=4, wavelengths=(1000.0, 1100.0, 1200.0, 1300.0, 1400.0))
    four_bands = save_tiny_model(tmp_path / "four.safetensors", msi=4)
    rows = [
        (good[0].name, good[1].name, tiny_model, "good.tif", ""),
        ("missing.tif", good[1].name, tiny_model, "missing.tif", ""),
        (good[0].name, shifted.name, tiny_model, "shifted.tif", ""),
        (good[0].name, good[1].name, four_bands, "four.tif", ""),
        (other_bands[0].name, other_bands[1].name, tiny_model, "swir.tif", ""),  # found by the task, not the plan
        (good[0].name, good[1].name, "", "gsa.tif", "gsa"),
    ]
    manifest = _manifest(tmp_path / "m.csv", rows, header="lrhsi,hrmsi,model,output,method")
    out = tmp_path / "out"
    out.mkdir()
    address = clusters[2].scheduler.address
    code = cli.main(["batch", str(manifest), "--out", str(out), "--scheduler", address, "--threads", "1",
                     "--device", "cpu", "--tile", str(TILE), "--overlap", str(OVERLAP), "--block", str(BLOCK)])
    captured = capsys.readouterr()
    assert code == cli.EXIT_ERROR, captured.err
    table = captured.out.splitlines()
    status = {line.split()[0]: line for line in table[1:]}
    assert "written" in status["2"] and "written" in status["7"]
    assert "failed" in status["3"] and "missing.tif" in status["3"] and "does not exist" in status["3"]
    assert "failed" in status["4"] and "shifted_hr.tif" in status["4"]
    assert "failed" in status["5"] and "4 multispectral bands" in status["5"]
    assert "failed" in status["6"] and "wavelengths" in status["6"]
    assert sorted(p.name for p in out.glob("*.tif")) == ["good.tif", "gsa.tif"]
    assert_same_raster(_reference(*good, tiny_model, tmp_path / "ref.tif"), out / "good.tif")
    from cofusion.core.classic_raster import fuse_classic_raster

    assert_same_raster(fuse_classic_raster(*good, tmp_path / "gsa_ref.tif", "gsa"), out / "gsa.tif")
    assert sum("FAILED" in line for line in captured.err.splitlines()) == 4
    assert "Traceback" not in captured.err and _leftovers(out) == []


def test_an_unreachable_scheduler_is_one_line_naming_it(tmp_path, capsys):
    pytest.importorskip("distributed")
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    manifest = _manifest(tmp_path / "m.csv", [("a.tif", "b.tif", "", "c.tif")])
    address = f"tcp://127.0.0.1:{port}"
    code = cli.main(["batch", str(manifest), "--out", str(tmp_path), "--scheduler", address,
                     "--connect-timeout", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == cli.EXIT_ERROR and len(err) == 1 and address in err[0] and err[0].startswith("error: ")


def _parts(out: Path) -> list[Path]:
    """The complete parts (a stripe's pixels without their overviews yet are not)."""
    return sorted(p for p in (out / batch.STATE_FOLDER).rglob("block-*.tif") if not p.name.endswith(".pixels.tif"))


def _wait_for_parts(process: subprocess.Popen, out: Path, count: int) -> None:
    deadline = time.monotonic() + 120
    while len(_parts(out)) < count and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert process.poll() is None, process.stderr.read() if process.stderr else ""


def test_an_interrupted_then_killed_batch_resumes_with_only_the_missing_stripes(make_raster, tiny_model, tmp_path):
    """The command line with its default local cluster of worker processes: Ctrl-C (SIGINT to the whole process
    group, as a terminal sends it) once parts exist stops it with 130, the parts kept and nothing half-written;
    a second run killed by SIGKILL (its workers exit with it); the third computes only the missing stripes and
    writes the same COGs as single-process runs."""
    pytest.importorskip("distributed")
    psutil = pytest.importorskip("psutil")  # a dependency of distributed
    if not hasattr(signal, "SIGKILL") or not hasattr(os, "killpg"):
        pytest.skip("no SIGKILL or process groups on this platform")
    scenes = [_scene(make_raster, name, 256, seed=k) for k, name in enumerate(("a", "b"))]  # 16 stripes each
    manifest = _manifest(tmp_path / "m.csv", [(lr.name, hr.name, tiny_model, f"{name}.tif")
                                              for (lr, hr), name in zip(scenes, "ab")])
    out = tmp_path / "out"
    out.mkdir()
    command = [sys.executable, "-m", "cofusion", "batch", str(manifest), "--out", str(out), "--workers", "2",
               "--threads", "1", "--device", "cpu", "--tile", str(TILE), "--overlap", str(OVERLAP),
               "--block", str(BLOCK)]
    outputs = [out / "a.tif", out / "b.tif"]

    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
    _wait_for_parts(first, out, 2)
    os.killpg(first.pid, signal.SIGINT)
    stdout, stderr = first.communicate(timeout=60)
    assert first.returncode == 130, stderr
    assert "SIGINT: stopping" in stderr and "canceled" in stdout + stderr and "Traceback" not in stderr
    interrupted = len(_parts(out))
    assert 2 <= interrupted < 32 and not any(p.exists() for p in outputs) and _leftovers(out) == [], stderr

    second = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _wait_for_parts(second, out, interrupted + 2)
    workers = psutil.Process(second.pid).children(recursive=True)
    os.kill(second.pid, signal.SIGKILL)
    second.wait(timeout=30)
    alive = psutil.wait_procs(workers, timeout=20)[1]  # the workers exit when their parent is gone
    assert workers and not alive, alive
    kept = len(_parts(out))
    assert interrupted + 2 <= kept < 32, kept
    assert not any(p.exists() for p in outputs)  # nothing half-written at the outputs
    before = list(_parts(out))

    third = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert third.returncode == 0, third.stderr
    computed = [line for line in third.stderr.splitlines() if "block" in line and " done (" in line]
    assert len(computed) == 32 - kept, third.stderr
    kept_lines = [line for line in third.stderr.splitlines() if "kept from an earlier run" in line]
    assert sum(int(line.split(": ")[1].split()[0]) for line in kept_lines) == kept
    for part in before:  # no finished stripe was fused again
        output = Path(json.loads((part.parent / "scene.json").read_text())["output"]).name
        c0, c1 = (int(v) for v in part.stem.split("-")[1:])
        assert not [line for line in computed if f" {output}:" in line and f"columns {c0}-{c1}," in line]
    for (lr, hr), name in zip(scenes, "ab"):
        assert_same_raster(_reference(lr, hr, tiny_model, tmp_path / f"ref_{name}.tif"), out / f"{name}.tif")
    assert _leftovers(out) == []
