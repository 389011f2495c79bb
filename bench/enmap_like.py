# SPDX-License-Identifier: GPL-2.0-or-later
"""An EnMAP L2A-like scene through ``qgis_process``: simulate -> train (reference mode) -> fuse -> assess, at x3.

From the repository root (after ``make plugin-enable``)::

    PYTHONPATH=.venv/pkg:.venv/lib/python3.11/site-packages QGIS_PLUGINPATH=.venv/pkg \\
        .venv/bin/python bench/enmap_like.py --process qgis_process.bin --minutes 5 --out bench/results/enmap_like_x3.md

The scene is the AVIRIS Jasper Ridge cube (``../shared/data``) resampled to EnMAP's 224 bands (the band table's
Gaussian responses over AVIRIS's bands), stored as a real L2A product stores reflectance: Int16 x 10000 with GDAL
scale 0.0001, nodata -32768, band ``wavelength`` / ``fwhm`` / ``bbl`` metadata. Its bad bands are those of a real
product plus two that AVIRIS's removed water-vapour channels cannot give: EnMAP bands 130-135 (1331-1391 nm,
nodata over the whole scene, ``bbl`` = 0) and 135, 164 (no AVIRIS coverage, nodata). A 2-column nodata border
stands for a swath edge. It plays the 10 m reference of Wald's protocol at x3: Sentinel-2 B2, B3, B4, B8.

Every step is a ``qgis_process run cofusion:... --json`` command, as a server user would run it; the model is
trained on the whole scene (``cofusion:train`` has no region), so the table compares CoFusion and the classical
methods on the scene the model was fitted to: the check is that every step runs on a real product's encoding and
bad bands, that the result has finite metrics on every good band and nodata on the bad ones; the held-out
comparison at x3 is ``bench/results/cofusion_x3.md``.
"""
from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from osgeo import gdal, osr

from cofusion.core.raster import read_info, read_raster
from cofusion.core.srf import parse_srf, sensor_wavelengths

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
sys.path.insert(0, str(REPO / "tools"))
from demo import run_algorithm  # noqa: E402 (tools/ is not a package: the qgis_process runner of make demo)

NODATA = -32768
#: EnMAP bands (1-based) nodata over every L2A scene, and those AVIRIS's kept channels cannot simulate.
L2A_BAD = tuple(range(130, 136))
UNCOVERED = (135, 164)
METRICS = ("PSNR", "SSIM", "SAM", "ERGAS")


def make_scene(path: Path) -> None:
    """Write the EnMAP L2A-like reference (see the module docstring)."""
    jasper = DATA / "aviris_jasper_ridge.tif"
    info = read_info(jasper)
    reference = read_raster(jasper) / np.float32(10000.0)
    covered = [b for b in range(1, 225) if b not in UNCOVERED]
    enmap = parse_srf("enmap:" + ",".join(f"B{b}" for b in covered))
    response = enmap.matrix(info.wavelengths_nm, info.fwhm_nm)
    cube = np.full((224, *reference.shape[1:]), np.nan, np.float32)
    cube[[b - 1 for b in covered]] = np.einsum("mc,chw->mhw", response, reference)
    raw = np.where(np.isfinite(cube), np.round(cube * 10000.0), NODATA).astype(np.int16)
    raw[[b - 1 for b in L2A_BAD]] = NODATA
    raw[:, :, :2] = NODATA
    centres, fwhm = sensor_wavelengths("enmap")
    ds = gdal.GetDriverByName("GTiff").Create(str(path), raw.shape[2], raw.shape[1], 224, gdal.GDT_Int16,
                                              ["TILED=YES", "COMPRESS=DEFLATE"])
    ds.SetGeoTransform((560000.0, 10.0, 0.0, 4140000.0, 0.0, -10.0))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32610)
    ds.SetSpatialRef(srs)
    for b in range(224):
        band = ds.GetRasterBand(b + 1)
        band.WriteArray(raw[b])
        band.SetNoDataValue(NODATA)
        band.SetScale(0.0001)
        band.SetOffset(0.0)
        band.SetMetadataItem("wavelength", f"{centres[b]:.3f}")
        band.SetMetadataItem("wavelength_units", "Nanometers")
        band.SetMetadataItem("fwhm", f"{fwhm[b]:.4f}")
        band.SetMetadataItem("bbl", "0" if b + 1 in L2A_BAD else "1")
    ds = None


def band_check(path: Path) -> str:
    """How many bands of a fused raster hold data, and whether the bad ones are nodata everywhere."""
    data = read_raster(path)
    bad = [b - 1 for b in sorted(set(L2A_BAD) | set(UNCOVERED))]
    good = [b for b in range(data.shape[0]) if b not in bad]
    bad_nodata = bool((data[bad] == NODATA).all())
    inner = data[good][:, :, 6:]  # right of the nodata border (2 LR columns = 6 HR pixels)
    finite = bool(np.isfinite(inner).all() and (inner != NODATA).all())
    return f"{len(good)} good bands with data: {finite}; {len(bad)} bad bands nodata: {bad_nodata}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--process", default="qgis_process.bin")
    parser.add_argument("--minutes", type=float, default=5.0, help="training budget of cofusion:train")
    parser.add_argument("--out", type=Path, default=Path("bench/results/enmap_like_x3.md"))
    parser.add_argument("--keep", type=Path, help="folder to keep the rasters in")
    args = parser.parse_args()
    process = shlex.split(args.process)
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        scene = folder / "enmap_like_l2a.tif"
        make_scene(scene)
        steps = []
        start = time.perf_counter()
        run_algorithm(process, "simulate", REFERENCE=str(scene), SRF="sentinel2a:B2,B3,B4,B8", SCALE="3",
            OUTPUT_LRHSI=str(folder / "lr.tif"), OUTPUT_HRMSI=str(folder / "hr.tif"))
        steps.append(f"simulate: {time.perf_counter() - start:.0f} s")
        start = time.perf_counter()
        trained = run_algorithm(process, "train", MODE="reference", REFERENCE=str(scene),
                                SRF="sentinel2a:B2,B3,B4,B8", SCALE="3", ITERATIONS="0", MINUTES=str(args.minutes),
                                DEVICE="cpu", OUTPUT_MODEL=str(folder / "model.safetensors"))
        steps.append(f"train: {time.perf_counter() - start:.0f} s, validation PSNR {trained['PSNR']:.2f} dB, SAM "
                     f"{trained['SAM']:.2f} deg")
        rows = []
        for method in ("cofusion", "llr", "gsa"):
            fused = folder / f"{method}.tif"
            inputs = {"LRHSI": str(folder / "lr.tif"), "HRMSI": str(folder / "hr.tif"), "OUTPUT": str(fused)}
            start = time.perf_counter()
            if method == "cofusion":
                run_algorithm(process, "fuse", MODEL=str(folder / "model.safetensors"), DEVICE="cpu", **inputs)
            else:
                run_algorithm(process, "fuse_classic", METHOD=method, **inputs)
            seconds = time.perf_counter() - start
            metrics = run_algorithm(
                process, "assess", FUSED=str(fused), REFERENCE=str(scene), SCALE="3", DATA_RANGE="1",
                OUTPUT_TABLE=str(folder / f"{method}.csv"), OUTPUT_REPORT=str(folder / f"{method}.html"),
                OUTPUT_SAM_MAP=str(folder / f"{method}_sam.tif"))
            rows.append(f"| {method} | " + " | ".join(f"{metrics[m]:.4f}" if m == "SSIM" else f"{metrics[m]:.2f}"
                                                     for m in METRICS) + f" | {seconds:.1f} | {band_check(fused)} |")
    text = "\n".join([
        "# An EnMAP L2A-like scene through qgis_process at x3 (simulate -> train -> fuse -> assess)", "",
        f"Command: `python bench/enmap_like.py --process {args.process} --minutes {args.minutes:g} --out {args.out}`",
        "", " ".join((__doc__ or "").split("\n\n")[3:5]).replace("\n", " "), "",
        "Steps: " + "; ".join(steps), "",
        "| method | PSNR | SSIM | SAM | ERGAS | fuse_s | bands |", "|---|---|---|---|---|---|---|", *rows, ""])
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
