# SPDX-License-Identifier: GPL-2.0-or-later
"""The fusion service: one request -> one result, for every face of the product.

The command line (``python -m cofusion fuse``), the Processing algorithm ``cofusion:fuse`` and the dock's
background task all build a :class:`FusionRequest` from their own parameters and call :func:`fuse`; they only
translate. So the order of the work (check the inputs and the output, find the model, load it, fuse), the
defaults (``FusionRequest``'s fields) and the default model (:func:`model_file`) exist once.

Importing this module needs NumPy and GDAL only (what QGIS ships): PyTorch is imported by :func:`load_predictor`,
when a model is loaded, so QGIS can show the parameters and their defaults before the runtime dependencies are
installed.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import Canceled, CheckpointError, InputError
from .fuse import DEFAULT_BATCH, FusionResult, fuse_raster
from .grid import check_inputs
from .progress import Cancel, Progress
from .tiling import DEFAULT_BLOCK
from .window import Window

#: The model bundled with the plugin: the demo model of the sample scene (resources/sample), 198 AVIRIS bands
#: + 4 multispectral bands at x4. Used when a request names no model.
DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "resources" / "models" / "default.safetensors"


@dataclass(frozen=True)
class FusionRequest:
    """What to fuse and how; every field but the paths has the product's one default.

    lrhsi, hrmsi, out: raster paths (any GDAL raster in; a GeoTIFF out, replaced only when complete).
    model: a CoFusion checkpoint (.safetensors); None for the bundled model (``DEFAULT_MODEL``).
    device: one of ``DEVICES`` or "cuda:N"; threads: CPU threads for the model and the output's compression
    (None: every core available).
    tile, overlap: HR pixels, multiples of the model's alignment (None: ``tiling.default_tiling``); batch: tiles
    per model call; block: width in HR pixels of the strips the output is walked in (see ``core.fuse``).
    region: a window of the output grid to fuse alone (HR pixels; None: the whole area both inputs cover).
    """

    lrhsi: str | os.PathLike
    hrmsi: str | os.PathLike
    out: str | os.PathLike
    model: str | os.PathLike | None = None
    device: str = "auto"
    threads: int | None = None
    tile: int | None = None
    overlap: int | None = None
    batch: int = DEFAULT_BATCH
    block: int = DEFAULT_BLOCK
    region: Window | None = None


def model_file(model: str | os.PathLike | None) -> Path:
    """The checkpoint a request names, or the bundled one when it names none (CheckpointError if that is missing
    from the installation)."""
    if model not in (None, ""):
        return Path(model)
    if not DEFAULT_MODEL.is_file():
        raise CheckpointError(f"No model was given and the bundled model {DEFAULT_MODEL} is missing from this "
                              "installation; give a CoFusion checkpoint (.safetensors), e.g. one trained with "
                              "'python -m cofusion.training' or the 'train' algorithm.")
    return DEFAULT_MODEL


def load_predictor(model: Path, device: str, threads: int | None = None):
    """The checkpoint as the engine's predictor (``core.inference.NetworkPredictor``); PyTorch is imported here."""
    try:
        from .inference import NetworkPredictor
    except ImportError as exc:
        raise InputError(f"Running a model needs PyTorch, which cannot be imported here ({exc}); install the "
                         "packages in requirements.txt (make setup, or the CoFusion installer in QGIS).") from exc
    return NetworkPredictor.from_checkpoint(model, device=device, threads=threads)


def check_request(request: FusionRequest) -> Path:
    """Check what can be checked before a model loads (the inputs, their grids, the output path, which may not be
    the model file) and return the model file; raises the core's errors with the fix. Cheap: no pixel is read."""
    model = model_file(request.model)
    check_inputs(request.lrhsi, request.hrmsi, request.out, model)
    return model


def fuse(request: FusionRequest, progress: Progress | None = None, cancel: Cancel | None = None) -> FusionResult:
    """Fuse as ``request`` says: check it, load its model, run the streaming engine (``core.fuse.fuse_raster``).

    ``progress(fraction, message)`` and ``cancel() -> bool`` as the engine takes them; a cancel while the model
    loads is honoured before the first tile. Raises InputError / GridError / OutputError / CheckpointError with
    the fix, Canceled on cancel; on any error no output file is left.
    """
    model = check_request(request)
    predictor = load_predictor(model, request.device, request.threads)
    if cancel is not None and cancel():
        raise Canceled("Fusion canceled before it began; no output file was written.")
    return fuse_raster(request.lrhsi, request.hrmsi, request.out, predictor, tile=request.tile,
                       overlap=request.overlap, batch=request.batch, block=request.block, region=request.region,
                       threads=request.threads, progress=progress, cancel=cancel)


def describe_model(model: str | os.PathLike | None) -> str:
    """One line on what a model is: the bundled demo model or a file; its bands, sensor, scale, how and on what it
    was trained, and its validation PSNR. Reads only the card (CheckpointError for a file that is not a model)."""
    from .checkpoint import read_card

    path = model_file(model)
    card = read_card(path)
    config, provenance = card.config, card.provenance
    what = "The bundled demo model (of the sample scene)" if path == DEFAULT_MODEL else f"{path.name}"
    spectra = ""
    if card.hsi_wavelengths_nm:
        spectra = f" ({min(card.hsi_wavelengths_nm):.0f}-{max(card.hsi_wavelengths_nm):.0f} nm)"
    msi = f" ({', '.join(card.msi_band_names)})" if card.msi_band_names else ""
    sensor = f", {provenance['srf']}" if provenance.get("srf") else ""
    trained = f"; trained in {provenance['mode']} mode" if provenance.get("mode") else ""
    on = provenance.get("inputs") or []
    scene = f" on {Path(str(on[0]).split(' ')[0]).name}" if on else ""
    psnr = f", validation PSNR {card.metrics['PSNR']:.1f} dB" if "PSNR" in card.metrics else ""
    return (f"{what}: {config.hsi_bands} hyperspectral bands{spectra} + {config.msi_bands} multispectral{msi}"
            f"{sensor}, x{config.scale}{trained}{scene}{psnr}.")


def check_model_fits(model: str | os.PathLike | None, lrhsi: str | os.PathLike, hrmsi: str | os.PathLike) -> None:
    """CheckpointError (the fusion's own message) when the model cannot fuse this pair: its multispectral bands,
    scale or hyperspectral bands do not match. Reads the metadata only: bands bad in the pixels but not flagged
    are found when the fusion screens them."""
    from types import SimpleNamespace

    from .bands import BandScreen, plan_model_bands
    from .checkpoint import read_card
    from .fuse import check_predictor
    from .grid import check_coregistration
    from .raster import read_info

    card = read_card(model_file(model))
    lr_info, hr_info = read_info(lrhsi), read_info(hrmsi)
    grid = check_coregistration(lr_info, hr_info)
    check_predictor(SimpleNamespace(msi_bands=card.config.msi_bands, scale=card.config.scale), lr_info, hr_info, grid)
    flags = lr_info.bad_band_flags or (False,) * lr_info.band_count
    screen = BandScreen(tuple("flagged bad (bbl = 0)" if bad else None for bad in flags))
    plan_model_bands(screen, lr_info, card.config.hsi_bands, card.hsi_wavelengths_nm)
