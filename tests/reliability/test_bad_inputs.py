# SPDX-License-Identifier: GPL-2.0-or-later
"""Bad inputs through all three entry points (core API, CLI, Processing `fuse`): one table of cases.

A refused case must fail with its error class in the core, exit 2 with one 'error: ...' line in the CLI, and raise
a QgsProcessingException in Processing, each message naming the problem and the fix, and leave the disk exactly
as it was (no output, no temporary file, no marker of executed code). An accepted case (data a user may
legitimately have) must fuse correctly through every entry point.
"""
from __future__ import annotations

import json
import os
import pickle
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
from osgeo import gdal

from cofusion.core.errors import CheckpointError, CoFusionError, GridError, InputError, OutputError
from cofusion.core.raster import read_info, read_raster

from .conftest import (
    ENTRIES,
    ENTRY_PARAMS,
    HR_GT,
    HR_SIZE,
    HSI,
    LR_GT,
    LR_SIZE,
    MSI,
    WAVELENGTHS,
    Scene,
    run_core,
    tree,
    valid_mask,
)

HR_5M = (500000.0, 5.0, 0.0, 5000000.0, 0.0, -5.0)


class Kit(NamedTuple):
    """What a case builder may use: the raster factory, the test's folder, the read-only folder."""

    raster: Callable[..., Path]
    tmp: Path
    read_only: Callable[[], Path]


def _lr(kit: Kit, **changes) -> Path:
    return kit.raster(**{"bands": HSI, "rows": LR_SIZE, "cols": LR_SIZE, "geotransform": LR_GT,
                         "wavelengths_nm": WAVELENGTHS, **changes})


def _hr(kit: Kit, **changes) -> Path:
    return kit.raster(**{"bands": MSI, "rows": HR_SIZE, "cols": HR_SIZE, "geotransform": HR_GT, **changes})


def _with_band_metadata(path: Path, items: dict[str, list[str]]) -> Path:
    """Set band metadata item KEY to VALUES[b] on every band b of `path`."""
    ds = gdal.Open(str(path), gdal.GA_Update)
    for key, values in items.items():
        for b, value in enumerate(values):
            ds.GetRasterBand(b + 1).SetMetadataItem(key, value)
    ds = None
    return path


def _truncated(path: Path) -> Path:
    os.truncate(path, path.stat().st_size // 2)
    return path


class _Exploit:
    """Unpickling this creates the marker file: proof that code from the checkpoint ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _pickle_checkpoint(kit: Kit) -> Path:
    path = kit.tmp / "evil.safetensors"
    path.write_bytes(pickle.dumps({"state_dict": _Exploit(kit.tmp / "code-ran.txt")}))
    return path


def _card_with(scene: Scene, kit: Kit, name: str, **config_changes) -> Path:
    """The tiny model's weights under a card whose config is changed."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(scene.model), framework="pt") as handle:
        card = json.loads(handle.metadata()["cofusion"])
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    card["config"].update(config_changes)
    path = kit.tmp / name
    save_file(tensors, str(path), metadata={"cofusion": json.dumps(card)})
    return path


def _foreign_safetensors(kit: Kit) -> Path:
    import torch
    from safetensors.torch import save_file

    path = kit.tmp / "foreign.safetensors"
    save_file({"weight": torch.zeros(3)}, str(path))
    return path


def _copy_truncated(source: Path, target: Path) -> Path:
    data = source.read_bytes()
    target.write_bytes(data[: len(data) // 2])
    return target


@dataclass(frozen=True)
class Refused:
    """A bad input: how to make it from the good scene, the core's error class, and regular expressions the message
    must contain (the problem and the fix). `qgis_words` replace `words` where QGIS refuses the input itself."""

    build: Callable[[Scene, Kit], Scene]
    error: type[CoFusionError]
    words: tuple[str, ...]
    qgis_words: tuple[str, ...] | None = None


REFUSED: dict[str, Refused] = {
    "crs_differs": Refused(lambda s, k: s.replace(hr=_hr(k, epsg=32633)), GridError,
                           ("CRS differ", "UTM zone 32N", "UTM zone 33N", "gdalwarp")),
    "grid_shifted_by_a_sub_pixel": Refused(
        lambda s, k: s.replace(hr=_hr(k, geotransform=(500003.0, *HR_GT[1:]))), GridError,
        ("not aligned", "0.3", "gdalwarp", "align_to_grid")),
    "pixel_ratio_not_an_integer": Refused(
        lambda s, k: s.replace(hr=_hr(k, rows=45, cols=45, geotransform=(500000.0, 7.0, 0.0, 5e6, 0.0, -7.0))),
        GridError, ("not in an integer ratio", "20 x 20", "7 x 7", "gdalwarp")),
    "scale_not_the_models": Refused(lambda s, k: s.replace(hr=_hr(k, rows=64, cols=64, geotransform=HR_5M)),
                                    CheckpointError, ("trained for scale 2", "4 times finer", "train")),
    "hsi_band_count_differs": Refused(lambda s, k: s.replace(lr=_lr(k, bands=4, wavelengths_nm=None)),
                                      CheckpointError, ("expects 5 hyperspectral bands", "has 4", "train")),
    "msi_band_count_differs": Refused(lambda s, k: s.replace(hr=_hr(k, bands=4)), CheckpointError,
                                      ("expects 3 multispectral bands", "has 4", "train")),
    "lrhsi_single_band": Refused(lambda s, k: s.replace(lr=_lr(k, bands=1, wavelengths_nm=None)),
                                 CheckpointError, ("expects 5 hyperspectral bands", "has 1")),
    "hrmsi_single_band": Refused(lambda s, k: s.replace(hr=_hr(k, bands=1)), CheckpointError,
                                 ("expects 3 multispectral bands", "has 1")),
    "extents_do_not_overlap": Refused(lambda s, k: s.replace(hr=_hr(k, geotransform=(600000.0, *HR_GT[1:]))),
                                      GridError, ("do not share", "right pair of scenes", "gdalwarp")),
    "every_pixel_nodata": Refused(
        lambda s, k: s.replace(lr=_lr(k, nodata=-1.0, data=np.full((HSI, LR_SIZE, LR_SIZE), -1.0, np.float32))),
        InputError, ("every band is bad", "nodata everywhere", "nodata value")),
    "lrhsi_truncated": Refused(
        lambda s, k: s.replace(lr=_truncated(_lr(k))), InputError,
        ("truncated or corrupt", "gdalinfo -checksum")),
    "lrhsi_missing": Refused(lambda s, k: s.replace(lr=k.tmp / "absent.tif"), InputError,
                             ("absent.tif", "does not exist", "check the path"),
                             qgis_words=("LRHSI", "absent.tif")),
    "hrmsi_missing": Refused(lambda s, k: s.replace(hr=k.tmp / "absent.tif"), InputError,
                             ("absent.tif", "does not exist", "check the path"),
                             qgis_words=("HRMSI", "absent.tif")),
    # a folder on a read-only tmpfs (root ignores permission bits; a read-only mount stops root too)
    "output_folder_read_only": Refused(lambda s, k: s.replace(out=k.read_only() / "fused.tif"), OutputError,
                                       ("not writable", "choose a folder")),
    # the output's "folder" is a regular file: nothing can be created below it, for root either
    "output_folder_is_a_file": Refused(lambda s, k: s.replace(out=s.lr / "fused.tif"), OutputError,
                                       ("does not exist", "choose another folder")),
    "output_overwrites_the_lrhsi": Refused(lambda s, k: s.replace(out=s.lr), OutputError,
                                           ("also an input", "choose another output file name")),
    "output_overwrites_the_hrmsi": Refused(lambda s, k: s.replace(out=s.hr), OutputError,
                                           ("also an input", "choose another output file name")),
    "wavelength_unit_unknown": Refused(
        lambda s, k: s.replace(lr=_with_band_metadata(_lr(k), {"wavelength_units": ["furlongs"] * HSI})),
        InputError, ("unknown wavelength unit 'furlongs'", "Nanometers", "gdal_edit.py")),
    "wavelength_not_a_number": Refused(
        lambda s, k: s.replace(lr=_with_band_metadata(_lr(k), {"wavelength": ["blue", "2", "3", "4", "5"]})),
        InputError, ("not a number", "gdal_edit.py")),
    # the model's band i would get another wavelength: a silently wrong result
    "wavelengths_unsorted": Refused(
        lambda s, k: s.replace(lr=_lr(k, wavelengths_nm=WAVELENGTHS[::-1])), CheckpointError,
        ("other wavelengths than the model", "same order", "reorder or subset")),
    "checkpoint_missing": Refused(lambda s, k: s.replace(model=k.tmp / "absent.safetensors"), CheckpointError,
                                  ("absent.safetensors does not exist", "CoFusion .safetensors")),
    "checkpoint_truncated": Refused(
        lambda s, k: s.replace(model=_copy_truncated(s.model, k.tmp / "cut.safetensors")), CheckpointError,
        ("corrupt, truncated or another format", "only loads .safetensors")),
    "checkpoint_foreign_safetensors": Refused(lambda s, k: s.replace(model=_foreign_safetensors(k)),
                                              CheckpointError, ("not a CoFusion checkpoint", "no CoFusion model card")),
    "checkpoint_card_disagrees_with_weights": Refused(
        lambda s, k: s.replace(model=_card_with(s, k, "wide.safetensors", width=12)), CheckpointError,
        ("weights do not match the architecture",)),
    "checkpoint_card_config_invalid": Refused(
        lambda s, k: s.replace(model=_card_with(s, k, "scale9.safetensors", scale=9)), CheckpointError,
        ("model config is invalid", "scale factor 9 is not supported", "integer scales 2 to 8")),
    # unpickling it would create tmp/code-ran.txt: the unchanged tree proves no code ran
    "checkpoint_pickle_that_runs_code": Refused(lambda s, k: s.replace(model=_pickle_checkpoint(k)),
                                                CheckpointError, ("not a readable CoFusion checkpoint",
                                                                  "never unpickles")),
}


@pytest.fixture(scope="session")
def read_only_root(tmp_path_factory) -> Path:
    """A folder nobody can write to: a read-only tmpfs mount for root, permission bits for other users."""
    folder = tmp_path_factory.mktemp("read_only")
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)]).returncode != 0:
        pytest.skip("root cannot mount a read-only tmpfs here")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


@pytest.fixture
def kit(make_raster, tmp_path, request) -> Kit:
    return Kit(make_raster, tmp_path, lambda: request.getfixturevalue("read_only_root"))


def _matches(message: str, words: tuple[str, ...]) -> bool:
    import re

    return all(re.search(word, message) for word in words)


@pytest.mark.parametrize("entry", ENTRY_PARAMS)
@pytest.mark.parametrize("case", list(REFUSED))
def test_a_bad_input_is_refused_clearly_and_changes_nothing(scene, kit, request, entry, case):
    bad = REFUSED[case]
    scene = bad.build(scene, kit)
    watched = [kit.tmp, scene.out.parent] if scene.out.parent.is_dir() else [kit.tmp]
    # QGIS itself stores the statistics of the layers it opens in "<input>.aux.xml" (GDAL PAM): not an output
    ignore = (f"{scene.lr.name}.aux.xml", f"{scene.hr.name}.aux.xml") if entry == "qgis" else ()
    before = [tree(folder, ignore) for folder in watched]
    outcome = ENTRIES[entry](scene, request)
    assert outcome.error is not None, "the run succeeded"
    if entry == "core":
        assert issubclass(outcome.error, bad.error), outcome
    words = bad.qgis_words if entry == "qgis" and bad.qgis_words else bad.words
    assert _matches(outcome.message, words), (words, outcome.message)
    assert [tree(folder, ignore) for folder in watched] == before


# --------------------------------------------------------------------------------------------- accepted inputs


def _nan_and_inf_inside(s: Scene, k: Kit) -> Scene:
    lr = np.random.default_rng(1).random((HSI, LR_SIZE, LR_SIZE), np.float32)
    hr = np.random.default_rng(2).random((MSI, HR_SIZE, HR_SIZE), np.float32)
    lr[2, 3, 4], lr[0, 14, 1], hr[1, 9, 30] = np.nan, np.inf, -np.inf
    return s.replace(lr=_lr(k, data=lr), hr=_hr(k, data=hr))


def _one_tile_all_nodata(s: Scene, k: Kit) -> Scene:
    lr = np.random.default_rng(1).random((HSI, 2 * LR_SIZE, 2 * LR_SIZE), np.float32)
    lr[:, :LR_SIZE, :LR_SIZE] = -1.0  # the first of four tiles
    return s.replace(lr=_lr(k, data=lr, nodata=-1.0), hr=_hr(k, rows=2 * HR_SIZE, cols=2 * HR_SIZE))


def _near_type_limits(s: Scene, k: Kit) -> Scene:
    rng = np.random.default_rng(3)
    lr = rng.integers(65000, 65535, (HSI, LR_SIZE, LR_SIZE)).astype(np.uint16)  # 65535 is nodata, as in many products
    hr = rng.choice(np.array([-32768, -32767, 32766, 32767], np.int16), (MSI, HR_SIZE, HR_SIZE))
    return s.replace(lr=_lr(k, data=lr, nodata=65535), hr=_hr(k, data=hr))


def _as_float32(s: Scene, k: Kit) -> Scene:
    """The same scene with every raster's values stored as float32 (nodata kept)."""
    def convert(path: Path, name: str) -> Path:
        info = read_info(path)
        return k.raster(data=read_raster(path), dtype="float32", nodata=info.nodata[0], geotransform=info.geotransform,
                        wavelengths_nm=info.wavelengths_nm, name=name)
    return s.replace(lr=convert(s.lr, "lr32.tif"), hr=convert(s.hr, "hr32.tif"))


def _invalid_hr_pixels(s: Scene) -> np.ndarray:
    """(rows, cols) True where the output must be nodata: an HR pixel or the LR pixel above it is invalid."""
    lr_info, hr_info = read_info(s.lr), read_info(s.hr)
    lr_ok = valid_mask(read_raster(s.lr), lr_info.nodata[0]).repeat(2, 0).repeat(2, 1)
    return ~(lr_ok & valid_mask(read_raster(s.hr), hr_info.nodata[0]))


def _check_nodata_where_invalid(s: Scene, k: Kit, request) -> None:
    out, info = read_raster(s.out), read_info(s.out)
    invalid = _invalid_hr_pixels(s)
    assert invalid.any() and not invalid.all()
    np.testing.assert_array_equal(~valid_mask(out, info.nodata[0]), invalid)


def _check_equals_float32_fusion(s: Scene, k: Kit, request) -> None:
    reference = _as_float32(s, k).replace(out=k.tmp / "reference.tif")
    assert run_core(reference, request).error is None
    out = read_raster(s.out)
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(out, read_raster(reference.out))


def _check_fused_without_wavelengths(s: Scene, k: Kit, request) -> None:
    info = read_info(s.out)
    assert info.wavelengths_nm is None and (info.band_count, info.width, info.height) == (HSI, HR_SIZE, HR_SIZE)
    assert np.isfinite(read_raster(s.out)).all()


@dataclass(frozen=True)
class Accepted:
    """Data a user may legitimately have: how to make it, and what the fused output must then be."""

    build: Callable[[Scene, Kit], Scene]
    check: Callable[[Scene, Kit, pytest.FixtureRequest], None]


ACCEPTED: dict[str, Accepted] = {
    # NaN and Inf are not values: such a pixel is nodata (read_valid), only its own output pixels become nodata
    "nan_and_inf_inside_valid_data": Accepted(_nan_and_inf_inside, _check_nodata_where_invalid),
    # a tile without a valid pixel is not predicted and stays nodata; the other tiles are fused
    "one_tile_entirely_nodata": Accepted(_one_tile_all_nodata, _check_nodata_where_invalid),
    # integers are read as float32 exactly (|v| < 2**24): the fusion equals that of the same values as float32
    "integers_near_their_type_limits": Accepted(_near_type_limits, _check_equals_float32_fusion),
    # the fusion needs band counts, not wavelengths: lab data without them fuse, the output has none either
    "wavelengths_missing": Accepted(lambda s, k: s.replace(lr=_lr(k, wavelengths_nm=None)),
                                    _check_fused_without_wavelengths),
}


@pytest.mark.parametrize("entry", ENTRY_PARAMS)
@pytest.mark.parametrize("case", list(ACCEPTED))
def test_a_legitimate_odd_input_fuses_correctly(scene, kit, request, entry, case):
    scene = ACCEPTED[case].build(scene, kit)
    outcome = ENTRIES[entry](scene, request)
    assert outcome.error is None, outcome
    ACCEPTED[case].check(scene, kit, request)
