# SPDX-License-Identifier: GPL-2.0-or-later
"""Huge and odd settings are refused up front with one line that names the problem and the fix, never a MemoryError
traceback or a hang: the fusion engine's memory estimate (``core.tiling.engine_memory``) against the memory
available (``core.resources.available_memory``), with smaller --tile / --block / --batch that fit; training's
whole-region reads against the same; and a Ctrl-C (a cancel request) during the passes before the first tile.

The estimate was measured against peak RSS: ``fuse_raster`` on the CPU (2 threads), VmHWM reset after loading the
model, MiB above the RSS then (about 317 MiB with the default model). "sample" is resources/sample (48 x 96 HR
pixels, one tile), "sample x8" an 8 x enlarged copy (384 x 768, six tiles of 288); overlap 32, block 4096::

    bands  width  tile  batch  scene      measured peak    estimate   estimate / measured
    198    64     144   1      sample     281 / 318 / 320  736        2.3-2.6 (the fixed overhead dominates)
    198    64     288   1      sample     836 / 837 / 979  1133       1.16-1.36
    198    64     432   1      sample     1370             1822       1.33
    198    64     576   1      sample     2306             2785       1.21
    198    64     720   1      sample     3476             4022       1.16
    198    16     288   1      sample     721              1133       1.57
    198    16     576   1      sample     2101             2785       1.33
    198    128    288   1      sample     1202             1797       1.50
    198    128    576   1      sample     4167             5442       1.31
    66     64     288   1      sample     650              1013       1.56
    66     64     576   1      sample     1748             2316       1.33
    198    64     288   1      sample x8  1163             1147       0.99
    198    64     288   2      sample x8  1576             1695       1.08
    198    64     288   4      sample x8  2447             2791       1.14

The command: ``python -m cofusion fuse --lrhsi resources/sample/lrhsi.tif --hrmsi resources/sample/hrmsi.tif
--model resources/models/default.safetensors --out fused.tif --device cpu --tile T --batch B`` (in-process, to
read VmHWM around the call; widths 16 / 128 and 66 bands: untrained checkpoints of those configs).
"""
from __future__ import annotations

import ctypes
import os
import re
from dataclasses import dataclass, field, replace

import numpy as np
import pytest

from cofusion import cli
from cofusion.core import bands as bands_module
from cofusion.core import fuse as fuse_module
from cofusion.core import inference, resources
from cofusion.core.align import COPY_VALUES, copy_block
from cofusion.core.bands import screen_bands
from cofusion.core.errors import Canceled, InputError
from cofusion.core.fuse import fuse_raster
from cofusion.core.raster import RasterReader, read_raster
from cofusion.core.resources import format_bytes
from cofusion.core.tiling import (
    NETWORK_OVERHEAD,
    PREPASS_BYTES,
    EngineLoad,
    block_size,
    check_engine_memory,
    engine_memory,
    fitting_tiling,
    network_bytes_per_pixel,
)
from cofusion.core.window import Window
from cofusion.training import api as training_api
from cofusion.training.trainer import TrainSettings

from .conftest import HR_GT, HSI, LR_GT, MSI, SCALE, WAVELENGTHS, tree

MiB = 2 ** 20
SRF = "sentinel2a:B2,B3,B4"
#: The measured table of the module docstring: (bands, width, tile, batch, region width, measured peaks MiB).
MEASURED = [
    (198, 64, 144, 1, 48, (281, 318, 320)), (198, 64, 288, 1, 48, (836, 837, 979)), (198, 64, 432, 1, 48, (1370,)),
    (198, 64, 576, 1, 48, (2306,)), (198, 64, 720, 1, 48, (3476,)), (198, 16, 288, 1, 48, (721,)),
    (198, 16, 576, 1, 48, (2101,)), (198, 128, 288, 1, 48, (1202,)), (198, 128, 576, 1, 48, (4167,)),
    (66, 64, 288, 1, 48, (650,)), (66, 64, 576, 1, 48, (1748,)),
    (198, 64, 288, 1, 384, (1163,)), (198, 64, 288, 2, 384, (1576,)), (198, 64, 288, 4, 384, (2447,)),
]
ADVICE = re.compile(r"pass for example --tile (\d+)(?: --overlap (\d+))? --block (\d+) --batch (\d+) \(about ")


@dataclass
class Heavy:
    """A predictor of the engine's protocol that says it needs ``activation_bytes_per_pixel`` (as a network would)
    and returns the LRHSI upsampled; it records every event (calls, progress, cancel checks) in ``events``."""

    scale: int = SCALE
    hsi_bands: int = HSI
    msi_bands: int = MSI
    align: int = 16
    activation_bytes_per_pixel: float = 20_000.0
    hsi_fill: np.ndarray = field(default_factory=lambda: np.full(HSI, 0.5, np.float32))
    msi_fill: np.ndarray = field(default_factory=lambda: np.full(MSI, 0.5, np.float32))
    events: list = field(default_factory=list)

    def __call__(self, lr: np.ndarray, hr: np.ndarray) -> np.ndarray:
        self.events.append(("call", len(lr)))
        return lr.repeat(self.scale, axis=-2).repeat(self.scale, axis=-1)

    @property
    def calls(self) -> int:
        return sum(kind == "call" for kind, _ in self.events)


class Preparing(Heavy):
    """A Heavy predictor with scene statistics: ``prepare`` reads the grid in ``blocks`` strips, asking cancel and
    reporting progress between them as NetworkPredictor.prepare does."""

    blocks = 6

    def prepare(self, lr_reader, hr_reader, grid, *, progress=None, cancel=None) -> None:
        for k in range(self.blocks):
            if k and cancel is not None and cancel():
                raise Canceled("Canceled while fitting the model's scene statistics; nothing was written.")
            self.events.append(("prepare", k))
            if progress is not None:
                progress((k + 1) / self.blocks, f"statistics {k + 1}")


class Legacy(Heavy):
    """A predictor written for the old ``prepare(lr_reader, hr_reader, grid)``."""

    def prepare(self, lr_reader, hr_reader, grid) -> None:
        self.events.append(("prepare", 0))


def _load(predictor: Heavy, region_width: int = 32) -> EngineLoad:
    """The EngineLoad fuse_raster builds for ``predictor`` on the reliability scene (5 bands, all written)."""
    return EngineLoad(predictor.hsi_bands, predictor.msi_bands, predictor.scale,
                      predictor.activation_bytes_per_pixel, HSI, region_width)


def _available(monkeypatch, value: int | None) -> None:
    monkeypatch.setattr(fuse_module, "available_memory", lambda: value)


# ----------------------------------------------------------------------------------------------- fusion memory

#: (tile, overlap, batch, block): combinations too large for LIMIT, the examples of the campaign among them.
TOO_LARGE = {
    "campaign": (131072, 32, 1, 131072),
    "tile_4096": (4096, 32, 1, 4096),
    "batch_64": (288, 32, 64, 4096),
    "batch_and_block": (1024, 0, 8, 131072),
    "huge_overlap": (2048, 1024, 1, 2048),
    "default_tiling": (288, 32, 1, 4096),
}
#: The memory available in those tests: a Heavy predictor's overhead, the band screening's strip, 64 MiB more.
LIMIT = NETWORK_OVERHEAD + PREPASS_BYTES + 64 * MiB


@pytest.mark.parametrize("settings", TOO_LARGE.values(), ids=TOO_LARGE.keys())
def test_too_large_settings_are_refused_with_computed_advice_that_fits(scene, monkeypatch, settings):
    tile, overlap, batch, block = settings
    _available(monkeypatch, LIMIT)
    predictor = Heavy()
    before = tree(scene.out.parent)
    with pytest.raises(InputError) as info:
        fuse_raster(scene.lr, scene.hr, scene.out, predictor, tile=tile, overlap=overlap, batch=batch, block=block)
    message = str(info.value)
    need = _load(predictor).memory(tile, overlap, batch, block)
    assert "\n" not in message and need > LIMIT
    assert f"needs about {format_bytes(need)}" in message and f"{format_bytes(LIMIT)} are available" in message
    assert predictor.calls == 0 and tree(scene.out.parent) == before  # nothing read into a tile, nothing left
    found = ADVICE.search(message)
    assert found, message
    advised_tile, advised_block, advised_batch = int(found[1]), int(found[3]), int(found[4])
    advised_overlap = overlap if found[2] is None else int(found[2])
    assert advised_tile <= tile and advised_overlap <= overlap and advised_batch <= batch and advised_block <= block
    assert advised_tile % predictor.align == 0 and 2 * advised_overlap <= advised_tile <= advised_block
    assert _load(predictor).memory(advised_tile, advised_overlap, advised_batch, advised_block) <= LIMIT
    # the advice passes the check and the fusion runs
    result = fuse_raster(scene.lr, scene.hr, scene.out, predictor, tile=advised_tile, overlap=advised_overlap,
                         batch=advised_batch, block=advised_block)
    assert result.out_path.exists() and predictor.calls > 0


def test_advice_lowers_the_batch_first_then_the_block_then_the_tile():
    load = EngineLoad(198, 4, 4, network_bytes_per_pixel(198, 64, 4), 198, 100_000)
    available = load.memory(288, 32, 3, 4096)
    assert fitting_tiling(load, 288, 32, 8, 4096, 16, available) == (288, 32, 3, 4096)
    available = load.memory(2048, 32, 1, 2048) + 1
    tile, overlap, batch, block = fitting_tiling(load, 2048, 32, 1, 8192, 16, available)
    assert (tile, overlap, batch) == (2048, 32, 1) and 2048 <= block < 8192
    tile, overlap, batch, block = fitting_tiling(load, 131072, 32, 4, 131072, 16, 8 * 2 ** 30)
    assert batch == 1 and 32 < tile < 131072 and tile % 16 == 0 and tile <= block <= 4096
    assert load.memory(tile, overlap, batch, block) <= 8 * 2 ** 30 < load.memory(tile + 16, overlap, 1, tile + 16)


def test_when_nothing_fits_the_message_says_so(scene, monkeypatch):
    _available(monkeypatch, 100 * MiB)  # less than a network's overhead
    with pytest.raises(InputError, match="even the smallest tiling .* close other programs") as info:
        fuse_raster(scene.lr, scene.hr, scene.out, Heavy(), tile=32, overlap=0)
    assert "\n" not in str(info.value) and not scene.out.exists()


def test_an_unknown_amount_of_memory_is_not_checked(scene, monkeypatch):
    _available(monkeypatch, None)
    assert fuse_raster(scene.lr, scene.hr, scene.out, Heavy(), tile=64, overlap=16).out_path.exists()


def test_the_cli_refuses_the_campaign_settings_in_one_line(scene, monkeypatch, capsys):
    _available(monkeypatch, 8 * 2 ** 30)
    code = cli.main(["fuse", "--lrhsi", str(scene.lr), "--hrmsi", str(scene.hr), "--model", str(scene.model),
                     "--out", str(scene.out), "--device", "cpu", "--tile", "131072", "--block", "131072", "-q"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_ERROR and err.count("\n") == 1 and "Traceback" not in err and "MemoryError" not in err
    assert err.startswith("error: Fusing with tile 131072") and ADVICE.search(err)
    assert os.listdir(scene.out.parent) == []


def test_a_block_below_the_tile_is_advised_a_block_that_fits(scene, monkeypatch):
    _available(monkeypatch, LIMIT)
    with pytest.raises(InputError, match=r"--block 32\)") as info:
        fuse_raster(scene.lr, scene.hr, scene.out, Heavy(), tile=32, overlap=0, block=16)
    assert "smaller --tile" in str(info.value)
    assert _load(Heavy()).memory(32, 0, 1, 32) <= LIMIT


# ----------------------------------------------------------------------------------------------- the estimate


def _documented(tile: int, overlap: int, batch: int, block: int, c: int, m: int, s: int) -> float:
    """The memory ``core.fuse``'s docstring gives, in bytes: the merger's (C + 1) planes of overlap x block, tile x
    overlap and tile x tile, the C planes it writes, and per batch tile its inputs and its prediction."""
    return 4.0 * ((c + 1) * (overlap * block + tile * overlap + tile * tile) + c * tile * tile
                  + batch * (c + c / s ** 2 + m) * tile * tile)


@pytest.mark.parametrize("tile,overlap,batch,block", [(32, 0, 1, 32), (288, 32, 1, 4096), (288, 32, 4, 4096),
                                                      (1024, 64, 2, 8192), (4096, 512, 1, 4096)])
@pytest.mark.parametrize("bands", [3, 198, 300])
def test_the_estimate_stays_within_a_factor_of_the_documented_formula(tile, overlap, batch, block, bands):
    documented = _documented(tile, overlap, batch, block, bands, 4, 3)
    estimate = engine_memory(tile, overlap, batch, block, bands, 4, 3)
    assert documented <= max(estimate, PREPASS_BYTES) and estimate <= 2.5 * documented + PREPASS_BYTES
    # a network adds its activations per batch tile (or what blending needs, when that is more) and its overhead
    net = network_bytes_per_pixel(bands, 64, 4)
    with_net = engine_memory(tile, overlap, batch, block, bands, 4, 3, net)
    added = with_net - estimate - NETWORK_OVERHEAD
    assert 0 <= added <= batch * tile * tile * net + 1


def test_the_estimate_grows_with_every_setting_and_band_count():
    base = dict(tile=288, overlap=32, batch=1, block=4096, hsi_bands=198, msi_bands=4, scale=4,
                network_bytes_per_pixel=network_bytes_per_pixel(198, 64, 4))
    reference = engine_memory(**base)
    for name, larger in [("tile", 576), ("overlap", 64), ("batch", 2), ("block", 8192), ("hsi_bands", 224),
                         ("msi_bands", 12), ("network_bytes_per_pixel", 20_000.0)]:
        assert engine_memory(**{**base, name: larger}) > reference, name
    assert engine_memory(**{**base, "scale": 2}) > reference  # coarser LR tiles: more LR pixels per tile
    # the batch and the tile area scale the per-tile part
    per_tile = engine_memory(**{**base, "batch": 2}) - reference
    assert engine_memory(**{**base, "batch": 5}) - reference == pytest.approx(4 * per_tile, rel=1e-6)
    # a wider network needs more, on the feature stage; more bands more, on the band stage
    assert network_bytes_per_pixel(198, 128, 4) > network_bytes_per_pixel(198, 64, 4)
    assert network_bytes_per_pixel(300, 16, 4) > network_bytes_per_pixel(198, 16, 4)


@pytest.mark.parametrize("bands,width,tile,batch,region,measured", MEASURED)
def test_the_estimate_matches_the_measured_peaks(bands, width, tile, batch, region, measured):
    load = EngineLoad(bands, 4, 4, network_bytes_per_pixel(bands, width, 4), 198, region)
    ratio = load.memory(tile, 32, batch, 4096) / MiB / np.asarray(measured)
    assert (ratio >= 0.95).all() and (ratio <= (1.7 if tile >= 288 else 2.7)).all(), ratio


def test_the_block_the_estimate_counts_is_the_one_the_engine_walks():
    load = EngineLoad(198, 4, 4, 0.0, 198, None)
    assert load.memory(288, 32, 1, 5000) == engine_memory(288, 32, 1, block_size(5000, 288, 32), 198, 4, 4)
    narrow = EngineLoad(198, 4, 4, 0.0, 198, 300)
    assert narrow.memory(288, 32, 1, 4096) == narrow.memory(288, 32, 1, 100_000) == \
        engine_memory(288, 32, 1, 300, 198, 4, 4)


def test_check_engine_memory_returns_the_estimate_when_it_fits():
    load = EngineLoad(5, 3, 2)
    need = load.memory(64, 16, 2, 256)
    assert check_engine_memory(load, 64, 16, 2, 256, 16, need) == need
    assert check_engine_memory(load, 64, 16, 2, 256, 16, None) == need
    with pytest.raises(InputError):
        check_engine_memory(load, 64, 16, 2, 256, 16, need - 1)


# ----------------------------------------------------------------------------------------------- available memory


def test_the_available_memory_here_is_a_positive_int_or_unknown():
    found = resources.available_memory()
    assert found is None or (isinstance(found, int) and found > 0)


def _no_linux(monkeypatch, tmp_path):
    monkeypatch.setattr(resources, "MEMINFO", str(tmp_path / "missing_meminfo"))
    monkeypatch.setattr(resources, "CGROUP_LIMITS", ((str(tmp_path / "no.max"), str(tmp_path / "no.current")),))


def _sysconf(monkeypatch, pages: dict[str, int]) -> None:
    names = {name: k for k, name in enumerate(pages)}
    monkeypatch.setattr(os, "sysconf_names", names, raising=False)
    monkeypatch.setattr(os, "sysconf", lambda name: pages[name], raising=False)


def test_linux_reads_mem_available_capped_by_the_cgroup(monkeypatch, tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       16000000 kB\nMemFree:         1000000 kB\nMemAvailable:    8000000 kB\n")
    monkeypatch.setattr(resources, "_platform", lambda: "linux")
    monkeypatch.setattr(resources, "MEMINFO", str(meminfo))
    monkeypatch.setattr(resources, "CGROUP_LIMITS", ((str(tmp_path / "no.max"), str(tmp_path / "no.current")),))
    assert resources.available_memory() == 8_000_000 * 1024
    group = tmp_path / "cgroup"
    group.mkdir()
    (group / "memory.max").write_text(f"{2 * 2 ** 30}\n")
    (group / "memory.current").write_text(f"{2 ** 30}\n")
    (group / "memory.stat").write_text(f"anon 1\ninactive_file {256 * MiB}\n")
    monkeypatch.setattr(resources, "CGROUP_LIMITS", ((str(group / "memory.max"), str(group / "memory.current")),))
    assert resources.available_memory() == 2 ** 30 + 256 * MiB  # the limit less the use, reclaimable cache free
    (group / "memory.max").write_text("max\n")
    assert resources.available_memory() == 8_000_000 * 1024


def test_posix_without_meminfo_counts_free_pages(monkeypatch, tmp_path):
    monkeypatch.setattr(resources, "_platform", lambda: "freebsd13")
    _no_linux(monkeypatch, tmp_path)
    _sysconf(monkeypatch, {"SC_AVPHYS_PAGES": 1000, "SC_PHYS_PAGES": 4000, "SC_PAGE_SIZE": 4096})
    assert resources.available_memory() == 1000 * 4096


def test_macos_falls_back_to_the_physical_memory(monkeypatch, tmp_path):
    monkeypatch.setattr(resources, "_platform", lambda: "darwin")
    _no_linux(monkeypatch, tmp_path)
    _sysconf(monkeypatch, {"SC_PHYS_PAGES": 4000, "SC_PAGE_SIZE": 16384})
    assert resources.available_memory() == 4000 * 16384
    _sysconf(monkeypatch, {"SC_PAGE_SIZE": 16384})  # no page counts at all: sysctl hw.memsize

    class Libc:
        @staticmethod
        def sysctlbyname(name, value, size, _new, _new_size):
            assert name == b"hw.memsize"
            value._obj.value = 8 * 2 ** 30
            return 0

    monkeypatch.setattr(ctypes, "CDLL", lambda _name: Libc())
    assert resources.available_memory() == 8 * 2 ** 30


def test_windows_asks_global_memory_status(monkeypatch):
    monkeypatch.setattr(resources, "_platform", lambda: "win32")

    class Kernel32:
        @staticmethod
        def GlobalMemoryStatusEx(pointer):  # noqa: N802 - the Windows API's name
            status = pointer._obj
            assert status.dwLength == ctypes.sizeof(status)
            status.ullAvailPhys = 3 * 2 ** 30
            return 1

    class Windll:
        kernel32 = Kernel32()

    monkeypatch.setattr(ctypes, "windll", Windll(), raising=False)
    assert resources.available_memory() == 3 * 2 ** 30
    monkeypatch.setattr(Kernel32, "GlobalMemoryStatusEx", staticmethod(lambda pointer: 0))
    assert resources.available_memory() is None


def test_a_system_that_says_nothing_gives_none(monkeypatch, tmp_path):
    monkeypatch.setattr(resources, "_platform", lambda: "darwin")
    _no_linux(monkeypatch, tmp_path)
    _sysconf(monkeypatch, {})

    def no_libc(_name):
        raise OSError("no libc")

    monkeypatch.setattr(ctypes, "CDLL", no_libc)
    assert resources.available_memory() is None


# ----------------------------------------------------------------------------------------------- cancel, progress


class FlipAfter:
    """A cancel callable that answers False ``n`` times, then True; it records its answers in ``events``."""

    def __init__(self, n: int, events: list) -> None:
        self.n, self.events, self.asked = n, events, 0

    def __call__(self) -> bool:
        self.asked += 1
        answer = self.asked > self.n
        self.events.append(("cancel", answer))
        return answer


def _after_first_true(events: list) -> list:
    first = next(k for k, (kind, value) in enumerate(events) if kind == "cancel" and value)
    return events[first + 1:]


@pytest.mark.parametrize("n", [0, 1, 5])
def test_a_cancel_during_screen_bands_stops_within_one_strip(scene, monkeypatch, n):
    monkeypatch.setattr(bands_module, "SCREEN_CHUNK_VALUES", HSI * 16)  # one LR row a strip: 16 strips
    events: list = []
    with RasterReader(scene.lr) as reader:
        read_masked = reader.read_masked

        def counted(window, *args, **kwargs):
            events.append(("strip", window.row))
            return read_masked(window, *args, **kwargs)

        reader.read_masked = counted
        with pytest.raises(Canceled, match="screening the bands") as info:
            screen_bands(reader, cancel=FlipAfter(n, events),
                         progress=lambda f, m: events.append(("progress", f)))
    assert "\n" not in str(info.value)
    assert sum(kind == "strip" for kind, _ in events) == n + 1 < 16
    assert _after_first_true(events) == []  # no strip read, no progress after the cancel


def test_screen_bands_without_cancel_reads_every_strip_and_reports_them(scene, monkeypatch):
    monkeypatch.setattr(bands_module, "SCREEN_CHUNK_VALUES", HSI * 16 * 4)  # four LR rows a strip
    seen: list[float] = []
    with RasterReader(scene.lr) as reader:
        screen_bands(reader, progress=lambda f, m: seen.append(f))
    assert seen == [0.25, 0.5, 0.75, 1.0]


@pytest.mark.parametrize("n", [0, 3])
def test_a_cancel_during_the_fusion_pre_pass_leaves_nothing(scene, monkeypatch, n):
    monkeypatch.setattr(bands_module, "SCREEN_CHUNK_VALUES", HSI * 16)
    _available(monkeypatch, None)
    predictor = Preparing()
    cancel = FlipAfter(n, predictor.events)
    with pytest.raises(Canceled, match="screening the bands"):
        fuse_raster(scene.lr, scene.hr, scene.out, predictor, tile=32, overlap=0, cancel=cancel,
                    progress=lambda f, m: predictor.events.append(("progress", f)))
    assert predictor.calls == 0 and not any(kind == "prepare" for kind, _ in predictor.events)
    assert _after_first_true(predictor.events) == []
    assert sorted(p.name for p in scene.out.parent.iterdir()) == []


@pytest.mark.parametrize("n", [0, 2])
def test_a_cancel_during_prepare_stops_within_one_block(scene, monkeypatch, n):
    _available(monkeypatch, None)
    predictor = Preparing()
    cancel = FlipAfter(n, predictor.events)  # the scene screens in one strip: no check there
    with pytest.raises(Canceled, match="scene statistics"):
        fuse_raster(scene.lr, scene.hr, scene.out, predictor, tile=32, overlap=0, cancel=cancel)
    assert [v for kind, v in predictor.events if kind == "prepare"] == list(range(n + 1))
    assert predictor.calls == 0 and _after_first_true(predictor.events) == []
    assert sorted(p.name for p in scene.out.parent.iterdir()) == []


def test_network_prepare_checks_cancel_between_blocks(scene, monkeypatch):
    monkeypatch.setattr(inference, "PREPARE_BLOCK", 4)  # 16 x 16 LR pixels: 16 blocks
    predictor = inference.NetworkPredictor.from_checkpoint(scene.model, device="cpu")
    events: list = []
    with RasterReader(scene.lr) as lr_reader, RasterReader(scene.hr) as hr_reader:
        from cofusion.core.grid import check_coregistration

        grid = check_coregistration(lr_reader.info, hr_reader.info)
        predictor.prepare(lr_reader, hr_reader, grid, progress=lambda f, m: events.append(("progress", f)))
        done = [f for kind, f in events if kind == "progress"]
        assert len(done) == 16 and done == sorted(done) and done[-1] == 1.0
        events.clear()
        with pytest.raises(Canceled, match="scene statistics"):
            predictor.prepare(lr_reader, hr_reader, grid, cancel=FlipAfter(3, events),
                              progress=lambda f, m: events.append(("progress", f)))
    assert sum(kind == "progress" for kind, _ in events) == 4 and _after_first_true(events) == []


def test_progress_is_monotone_and_starts_before_the_first_tile(scene, monkeypatch):
    monkeypatch.setattr(bands_module, "SCREEN_CHUNK_VALUES", HSI * 16 * 4)
    _available(monkeypatch, None)
    predictor = Preparing()
    reports: list[tuple[float, str]] = []

    def progress(fraction: float, message: str) -> None:
        reports.append((fraction, message))
        predictor.events.append(("progress", fraction))

    fuse_raster(scene.lr, scene.hr, scene.out, predictor, tile=32, overlap=16, progress=progress)
    fractions = [f for f, _ in reports]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0
    first_call = next(k for k, (kind, _) in enumerate(predictor.events) if kind == "call")
    before = [v for kind, v in predictor.events[:first_call] if kind == "progress"]
    assert len(before) >= 6 and 0 < max(before) < 0.1  # the pre-pass moves the bar, in its first few %
    messages = [m for _, m in reports]
    assert any("screening" in m for m in messages) and any("statistics" in m for m in messages)


def test_a_predictor_with_the_old_prepare_signature_still_works(scene, monkeypatch):
    _available(monkeypatch, None)
    predictor = Legacy()
    fuse_raster(scene.lr, scene.hr, scene.out, predictor, tile=32, overlap=0, cancel=lambda: False)
    assert ("prepare", 0) in predictor.events and predictor.calls > 0


# ----------------------------------------------------------------------------------------------- training memory


@pytest.fixture
def no_pixel_reads(monkeypatch):
    """Every way of reading pixels fails the test: a refusal must come before them."""
    def fail(*_args, **_kwargs):
        raise AssertionError("pixels were read before the memory check")

    for name in ("read", "read_masked", "read_valid"):
        monkeypatch.setattr(RasterReader, name, fail)


def _region_advice(message: str) -> int:
    found = re.search(r"--region of at most (\d+) x (\d+) HR pixels", message)
    assert found and found[1] == found[2], message
    return int(found[1])


@pytest.mark.parametrize("scenes", [1, 3])
def test_training_on_a_reference_too_large_is_refused_before_reading(make_raster, tmp_path, monkeypatch,
                                                                      no_pixel_reads, scenes):
    hsi = [make_raster(HSI, 96, 96, geotransform=HR_GT, wavelengths_nm=WAVELENGTHS, name=f"ref{k}.tif")
           for k in range(scenes)]
    per_pixel = training_api.reference_bytes_per_pixel(HSI, SCALE, TrainSettings())
    available = training_api.TRAIN_STEP_BYTES + int(per_pixel * 40 * 40 * scenes)  # room for 40 x 40 a scene
    monkeypatch.setattr(training_api, "available_memory", lambda: available)
    (tmp_path / "model").mkdir()
    out = tmp_path / "model" / "m.safetensors"
    with pytest.raises(InputError) as info:
        training_api.train_reference(hsi, SRF, SCALE, out, settings=TrainSettings(iterations=1))
    message = str(info.value)
    need = training_api.training_memory(per_pixel, [96 * 96] * scenes)
    assert "\n" not in message and f"about {format_bytes(need)}" in message and format_bytes(available) in message
    side = _region_advice(message)
    align = training_api.check_patch(TrainSettings(), SCALE)
    assert side % align == 0 and side <= 40
    assert training_api.training_memory(per_pixel, [side * side] * scenes) <= available
    assert training_api.training_memory(per_pixel, [(side + align) ** 2] * scenes) > available
    assert os.listdir(tmp_path / "model") == []


def test_training_on_a_pair_too_large_is_refused_before_reading(make_raster, tmp_path, monkeypatch, no_pixel_reads):
    lr = make_raster(HSI, 64, 64, geotransform=LR_GT, wavelengths_nm=WAVELENGTHS, name="lr.tif")
    hr = make_raster(MSI, 128, 128, geotransform=HR_GT, name="hr.tif")
    (tmp_path / "model").mkdir()
    out = tmp_path / "model" / "m.safetensors"
    per_pixel = training_api.pair_bytes_per_pixel(HSI, MSI, SCALE, TrainSettings())
    available = training_api.TRAIN_STEP_BYTES + int(per_pixel * 300)  # less than the smallest region, 32 x 32
    monkeypatch.setattr(training_api, "available_memory", lambda: available)
    with pytest.raises(InputError, match="even the smallest region .* more memory"):
        training_api.train_pair(lr, hr, out, settings=TrainSettings(iterations=1))
    assert os.listdir(tmp_path / "model") == []
    available = training_api.TRAIN_STEP_BYTES + int(per_pixel * 50 * 50)
    monkeypatch.setattr(training_api, "available_memory", lambda: available)
    with pytest.raises(InputError) as info:
        training_api.train_pair(lr, hr, out, settings=TrainSettings(iterations=1), region=Window(0, 0, 96, 96))
    message = str(info.value)
    need = training_api.training_memory(per_pixel, [96 * 96])
    assert "\n" not in message and f"about {format_bytes(need)}" in message
    assert _region_advice(message) == 48 and os.listdir(tmp_path / "model") == []
    assert training_api.training_memory(per_pixel, [48 * 48]) <= available


@pytest.mark.parametrize("mode,bands,side,scale,measured", [
    ("reference", 198, 384, 4, 1180), ("pair", 198, 1536, 4, 1145)])
def test_the_training_estimate_matches_the_measured_peaks(mode, bands, side, scale, measured):
    """Whole runs (2 steps, a validation each) on the 8 x (reference) and 32 x (pair) enlarged bundled sample:
    peak RSS above the RSS at the call, MiB."""
    settings = TrainSettings()
    per_pixel = training_api.reference_bytes_per_pixel(bands, scale, settings) if mode == "reference" else \
        training_api.pair_bytes_per_pixel(bands, 4, scale, settings)
    ratio = training_api.training_memory(per_pixel, [side * side]) / MiB / measured
    assert 1.0 <= ratio <= 1.3, ratio


def test_with_few_bands_the_validation_forward_is_the_peak():
    settings = TrainSettings()
    few = training_api.reference_bytes_per_pixel(5, 4, settings)
    assert few > 4 * 5 * training_api.REFERENCE_COPIES
    assert training_api.reference_bytes_per_pixel(198, 4, settings) == 4 * 198 * training_api.REFERENCE_COPIES
    wide = replace(settings, model={"width": 128})
    assert training_api.reference_bytes_per_pixel(5, 4, wide) > few


def test_training_within_the_memory_is_not_refused(make_raster, tmp_path, monkeypatch):
    reference = make_raster(HSI, 48, 48, geotransform=HR_GT, wavelengths_nm=WAVELENGTHS)
    per_pixel = training_api.reference_bytes_per_pixel(HSI, SCALE, TrainSettings())
    monkeypatch.setattr(training_api, "available_memory",
                        lambda: training_api.training_memory(per_pixel, [48 * 48]))
    monkeypatch.setattr(training_api, "train", lambda *args: "trained")  # the data were read and prepared
    assert training_api.train_reference([reference], SRF, SCALE, tmp_path / "m.safetensors",
                                        settings=TrainSettings(iterations=1)) == "trained"


# ----------------------------------------------------------------------------------------------- streaming


def test_aligning_copies_in_blocks_bounded_by_their_values():
    assert copy_block(4) == 1024
    for bands in (1, 16, 17, 64, 300, 5000):
        side = copy_block(bands)
        assert side in (1024, 512, 256) and (side * side * bands <= COPY_VALUES or side == 256)


def test_aligning_gives_the_same_pixels_with_the_bounded_block(scene, tmp_path, monkeypatch):
    """The copy block only changes how the warp is read: a raster already on the grid comes out unchanged, also
    when it is copied in many blocks."""
    from cofusion.core import align

    monkeypatch.setattr(align, "copy_block", lambda bands: 8)
    out = align.align_to_grid(scene.lr, scene.hr, tmp_path / "aligned.tif", SCALE, resampling="nearest")
    np.testing.assert_array_equal(read_raster(out), read_raster(scene.hr))
