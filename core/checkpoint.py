# SPDX-License-Identifier: GPL-2.0-or-later
"""Checkpoints that describe themselves and cannot run code: safetensors weights + a JSON card in the metadata.

The file is a plain safetensors file (https://github.com/huggingface/safetensors): tensors and a string-to-string
metadata header, no pickle. The header key ``cofusion`` holds one JSON document: the format tag, the model
config, the normalisation statistics, the HSI wavelengths, the MSI spectral response, provenance and validation
metrics. Loading reads the header, validates it, builds the network and loads the weights strictly.

The card and the weights are untrusted input (a file from anywhere): the header's size and the card's JSON nesting
are bounded before parsing; every config field is checked for its type and range and the network's size is
estimated (``ModelConfig``) before anything is built; statistics, wavelengths and the response must be finite and of
the right lengths; tensors must be floating point, of the shapes the card's network has, and finite. Every problem
is a one-line CheckpointError naming the file.
"""
from __future__ import annotations

import json
import math
import os
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from .errors import CheckpointError, OutputError
from .model import CoFusionNet, ModelConfig, build_model

FORMAT = "cofusion-checkpoint"
FORMAT_VERSION = 1
METADATA_KEY = "cofusion"
#: Bounds on what a file may make the loader parse: the safetensors header (tensor index + metadata), the card's
#: JSON text, its nesting (a card CoFusion writes is 4 deep) and the digits of an integer in it. CoFusion's cards
#: hold under 0.2 MB (300 bands, 16 MSI bands).
MAX_HEADER_BYTES = 16 * 1024**2
MAX_CARD_CHARS = 4 * 1024**2
MAX_CARD_DEPTH = 8
MAX_INT_DIGITS = 20
#: Normalisation statistics: a standard deviation must exceed this fraction of the largest |mean| or std of its
#: sensor (training floors them at 1e-6 of the data's largest value) and MIN_STD; no statistic beyond MAX_STAT.
STD_FLOOR, MIN_STD, MAX_STAT = 1e-7, 1e-30, 1e30
#: Band centres a card may give (nm).
MAX_WAVELENGTH_NM = 100_000.0
#: Storage dtypes of the weights (safetensors names): what save_checkpoint writes (float32, float16 for shipping)
#: and the other floating types; integers, booleans, complex and 8-bit floats are refused.
WEIGHT_DTYPES = ("F16", "BF16", "F32", "F64")
#: Tensors that may hold +inf: the trust map's radii before it is fitted (trust 1 everywhere).
MAY_BE_INFINITE = ("domain.radii",)
#: The fix every refusal of an altered card or weights ends with.
REDO = "use the checkpoint as CoFusion saved it, or train the model again"


@dataclass(frozen=True)
class Normalization:
    """Per-band affine normalisation, x_norm = (x - mean) / std, in the rasters' own units.

    Statistics come from the training region only. Shapes: hsi_* (C_h,), msi_* (C_m,).
    """

    hsi_mean: tuple[float, ...]
    hsi_std: tuple[float, ...]
    msi_mean: tuple[float, ...]
    msi_std: tuple[float, ...]

    @classmethod
    def identity(cls, hsi_bands: int, msi_bands: int) -> Normalization:
        return cls((0.0,) * hsi_bands, (1.0,) * hsi_bands, (0.0,) * msi_bands, (1.0,) * msi_bands)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(hsi_mean, hsi_std, msi_mean, msi_std) as float32 arrays."""
        return tuple(np.asarray(v, dtype=np.float32) for v in
                     (self.hsi_mean, self.hsi_std, self.msi_mean, self.msi_std))


@dataclass(frozen=True)
class ModelCard:
    """What a checkpoint says about its network, besides the weights.

    Args:
        config: the architecture.
        normalization: statistics the inputs are normalised with.
        hsi_wavelengths_nm: (C_h,) band centres of the hyperspectral data it was trained on, or None.
        srf: (C_m, C_h) spectral response of the MSI sampled at those bands (rows sum 1), or None when unknown.
        msi_band_names: names of the MSI bands, e.g. ("B2", "B3", "B4", "B8").
        provenance: how it was made (mode, data, iterations, seconds, versions, date).
        metrics: validation metrics (PSNR, SAM, ...).
    """

    config: ModelConfig
    normalization: Normalization
    hsi_wavelengths_nm: tuple[float, ...] | None = None
    srf: tuple[tuple[float, ...], ...] | None = None
    msi_band_names: tuple[str, ...] | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "config": self.config.to_dict(),
            "normalization": {k: list(v) for k, v in vars(self.normalization).items()},
            "hsi_wavelengths_nm": _list_or_none(self.hsi_wavelengths_nm),
            "srf": None if self.srf is None else [list(row) for row in self.srf],
            "msi_band_names": _list_or_none(self.msi_band_names),
            "provenance": self.provenance,
            "metrics": self.metrics,
        })

    @classmethod
    def from_json(cls, text: str, source: str) -> ModelCard:
        """The card of JSON ``text``, validated (:meth:`validate`); CheckpointError naming ``source`` for anything
        CoFusion would not have written: too long or deeply nested JSON, a field of the wrong type or length, a
        config out of range or too large to build, statistics that are not finite or too small."""
        data = _parse_card_json(text, source)
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise CheckpointError(f"{source} is not a CoFusion checkpoint (its metadata has no '{FORMAT}' tag).")
        if data.get("format_version") != FORMAT_VERSION:
            raise CheckpointError(
                f"{source} has checkpoint format version {data.get('format_version')!r}; this CoFusion reads "
                f"version {FORMAT_VERSION}. Update the plugin."
            )
        if "config" not in data or "normalization" not in data:
            missing = [key for key in ("config", "normalization") if key not in data]
            raise CheckpointError(f"{source}: the CoFusion model card has no {' and no '.join(missing)}; {REDO}.")
        try:
            config = ModelConfig.from_dict(data["config"])
        except CheckpointError as exc:
            raise CheckpointError(f"{source}: {exc} The card was altered or not written by CoFusion; {REDO}.") \
                from exc
        sizes = {"hsi_mean": config.hsi_bands, "hsi_std": config.hsi_bands,
                 "msi_mean": config.msi_bands, "msi_std": config.msi_bands}
        stats = data["normalization"]
        if not isinstance(stats, dict) or set(stats) != set(sizes):
            raise CheckpointError(f"{source}: the card's normalisation must be an object with exactly "
                                  f"{', '.join(sizes)}; {REDO}.")
        norm = Normalization(**{k: _numbers(stats[k], f"normalisation '{k}'", source, n) for k, n in sizes.items()})
        srf = data.get("srf")
        if srf is not None:
            if not isinstance(srf, list) or len(srf) != config.msi_bands:
                raise CheckpointError(f"{source}: the spectral response must be {config.msi_bands} x "
                                      f"{config.hsi_bands} (MSI bands x HSI bands); {REDO}.")
            srf = tuple(_numbers(row, "spectral response row", source, config.hsi_bands) for row in srf)
        names = data.get("msi_band_names")
        if names is not None and (not isinstance(names, list) or len(names) != config.msi_bands
                                  or not all(isinstance(n, str) and len(n) <= 200 for n in names)):
            raise CheckpointError(f"{source}: the card's msi_band_names must be {config.msi_bands} names (strings); "
                                  f"{REDO}.")
        provenance, metrics = data.get("provenance") or {}, data.get("metrics") or {}
        if not isinstance(provenance, dict):
            raise CheckpointError(f"{source}: the card's provenance must be a JSON object; {REDO}.")
        if not isinstance(metrics, dict) or not all(_is_number(v) for v in metrics.values()):
            raise CheckpointError(f"{source}: the card's metrics must map names to numbers; {REDO}.")
        wavelengths = data.get("hsi_wavelengths_nm")
        card = cls(
            config=config,
            normalization=norm,
            hsi_wavelengths_nm=None if wavelengths is None else _numbers(wavelengths, "hsi_wavelengths_nm", source,
                                                                         config.hsi_bands),
            srf=srf,
            msi_band_names=None if names is None else tuple(names),
            provenance=dict(provenance),
            metrics=dict(metrics),
        )
        card.validate(source)
        return card

    def validate(self, source: str) -> None:
        """CheckpointError where the card contradicts itself or holds values the network cannot run on: statistics
        or SRF of the wrong size, statistics that are not finite, standard deviations that are not positive or so
        small next to the data's scale that normalising overflows, wavelengths that are not finite positive
        nanometres, a response that is not finite and non-negative."""
        config, norm = self.config, self.normalization
        sizes = {"hsi_mean": config.hsi_bands, "hsi_std": config.hsi_bands,
                 "msi_mean": config.msi_bands, "msi_std": config.msi_bands}
        for name, size in sizes.items():
            values = getattr(norm, name)
            if len(values) != size or not all(math.isfinite(v) and abs(v) <= MAX_STAT for v in values):
                raise CheckpointError(f"{source}: normalisation '{name}' must hold {size} finite values (at most "
                                      f"{MAX_STAT:g} in size); {REDO}.")
        if any(v <= 0 for v in norm.hsi_std + norm.msi_std):
            raise CheckpointError(f"{source}: normalisation standard deviations must be positive; {REDO}.")
        for kind, mean, std in (("hsi", norm.hsi_mean, norm.hsi_std), ("msi", norm.msi_mean, norm.msi_std)):
            scale = max(max(abs(v) for v in mean), max(std))
            floor = max(STD_FLOOR * scale, MIN_STD)
            if min(std) <= floor:
                band = std.index(min(std)) + 1
                raise CheckpointError(
                    f"{source}: normalisation '{kind}_std' of band {band} is {min(std):.3g}, at or below "
                    f"{floor:.3g} ({STD_FLOOR:g} of the statistics' scale {scale:.3g}): normalising by it would "
                    f"overflow; {REDO}.")
        wavelengths = self.hsi_wavelengths_nm
        if wavelengths is not None:
            if len(wavelengths) != config.hsi_bands:
                raise CheckpointError(f"{source}: {len(wavelengths)} wavelengths for {config.hsi_bands} "
                                      f"hyperspectral bands; {REDO}.")
            if not all(math.isfinite(v) and 0 < v <= MAX_WAVELENGTH_NM for v in wavelengths):
                raise CheckpointError(f"{source}: the card's hsi_wavelengths_nm must be finite band centres in nm, "
                                      f"above 0 and at most {MAX_WAVELENGTH_NM:g}; {REDO}.")
        if self.srf is not None:
            if len(self.srf) != config.msi_bands or any(len(row) != config.hsi_bands for row in self.srf):
                raise CheckpointError(f"{source}: the spectral response must be {config.msi_bands} x "
                                      f"{config.hsi_bands} (MSI bands x HSI bands); {REDO}.")
            if not all(math.isfinite(v) and v >= 0 for row in self.srf for v in row):
                raise CheckpointError(f"{source}: the spectral response must hold finite values >= 0; {REDO}.")


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint: the network in eval mode on the CPU, and its card."""

    model: CoFusionNet
    card: ModelCard
    path: str

    def check_fits(self, hsi_bands: int, msi_bands: int, scale: int, inputs: str = "the inputs") -> None:
        """CheckpointError naming both sides when the inputs' band counts or scale differ from the model's."""
        config = self.card.config
        problems = []
        if hsi_bands != config.hsi_bands:
            problems.append(f"{hsi_bands} hyperspectral bands where the model expects {config.hsi_bands}")
        if msi_bands != config.msi_bands:
            problems.append(f"{msi_bands} multispectral bands where the model expects {config.msi_bands}")
        if scale != config.scale:
            problems.append(f"a scale factor of {scale} where the model was trained for x{config.scale}")
        if problems:
            raise CheckpointError(
                f"the model {self.path} does not fit {inputs}: " + "; ".join(problems)
                + ". Use a checkpoint trained for this sensor pair and scale, or train one "
                "(python -m cofusion.training pair --lrhsi ... --hrmsi ...)."
            )


def save_checkpoint(path: str | os.PathLike, model: CoFusionNet, card: ModelCard,
                    storage_dtype: torch.dtype = torch.float32) -> Path:
    """Write weights + card atomically (a temporary file beside the target, synced, then os.replace): the target
    is the old file or the whole new one, never a part. Returns the path; OutputError naming the fix (free space, a
    writable folder) when the disk is full or the folder not writable, with nothing left behind.

    ``storage_dtype=torch.float16`` halves the file; weights are cast back to float32 when loaded.
    """
    if model.config != card.config:
        raise ValueError("the card's config differs from the model's config")
    path = Path(path)
    tensors = {name: t.detach().to("cpu", storage_dtype).contiguous() for name, t in model.state_dict().items()}
    data = save(tensors, metadata={METADATA_KEY: card.to_json()})
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:  # written by open(), not safetensors' save_file, which makes the file readable by its owner only
        with open(temporary, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())  # on the disk before the rename: a crash leaves the old file or the new one
        os.replace(temporary, path)
    except OSError as exc:
        raise OutputError(
            f"Cannot write the model {path} ({_size(len(data))}): {exc.strerror or exc}. Check that the disk "
            f"holding {path.parent} has free space and that the folder is writable; {path} was left as it was."
        ) from exc
    finally:
        temporary.unlink(missing_ok=True)
    return path


def _size(count: int) -> str:
    return f"{count / 1e6:.1f} MB" if count >= 1e6 else f"{count / 1e3:.0f} kB"


def read_card(path: str | os.PathLike) -> ModelCard:
    """Only the card of a checkpoint (no weights read): for showing a model's bands, scale and metrics."""
    with _open(path) as handle:
        return _card_of(handle, str(path))


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`. Never executes code from the file.

    Raises CheckpointError for a missing, truncated, corrupt or foreign file, a card out of range (checked before
    the network is built, so a card cannot make the loader allocate more than ``ModelConfig.check_size`` allows),
    or weights that do not match the card's architecture, are not floating point, or are not finite.
    """
    source = str(path)
    with _open(path) as handle:
        card = _card_of(handle, source)
        model = build_model(card.config)
        _check_weights(model, _tensor_index(handle, source), source)
        tensors = _safetensors_call(lambda: {key: handle.get_tensor(key) for key in handle.keys()}, source)
    _check_finite(tensors, source)
    try:
        model.load_state_dict({k: v.float() for k, v in tensors.items()}, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1].strip()  # PyTorch lists every tensor: keep the message one line
        raise CheckpointError(f"{path}: the weights do not match the architecture in its card ({first}).") from exc
    return Checkpoint(model=model.eval(), card=card, path=source)


def _check_weights(model: CoFusionNet, index: dict[str, tuple[tuple[int, ...], str]], source: str) -> None:
    """CheckpointError, in one line, when the file's tensors (``index``: name -> (shape, safetensors dtype), read
    from the header, before any tensor is) are not the names and shapes the card's network has, or not floating
    point."""
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    missing = [name for name in expected if name not in index]
    unexpected = [name for name in index if name not in expected]
    reshaped = [name for name in expected if name in index and index[name][0] != expected[name]]
    problems = []
    if missing:
        problems.append(f"{len(missing)} tensors missing (e.g. {missing[0]})")
    if unexpected:
        problems.append(f"{len(unexpected)} tensors the network does not have (e.g. {unexpected[0]})")
    if reshaped:
        name = reshaped[0]
        problems.append(f"{len(reshaped)} tensors of another shape (e.g. {name}: {list(index[name][0])} in "
                        f"the file, {list(expected[name])} for the card)")
    if problems:
        raise CheckpointError(
            f"{source}: the weights do not match the architecture in its card: {', '.join(problems)}. The file was "
            "altered or mixes two models; use the checkpoint as CoFusion saved it, or train the model again."
        )
    foreign = sorted({dtype for _shape, dtype in index.values()} - set(WEIGHT_DTYPES))
    if foreign:
        name = next(name for name, (_shape, dtype) in index.items() if dtype == foreign[0])
        raise CheckpointError(
            f"{source}: weights stored as {', '.join(foreign)} (e.g. {name}); CoFusion stores them as floating "
            f"point ({', '.join(WEIGHT_DTYPES)}). The file was altered; {REDO}.")


def _check_finite(tensors: dict[str, torch.Tensor], source: str) -> None:
    """CheckpointError naming the first tensor holding NaN or infinity (+inf only where MAY_BE_INFINITE allows, and
    nothing there at or below 0)."""
    for name, tensor in tensors.items():
        values = tensor.float()
        if name in MAY_BE_INFINITE:
            bad = int((values.isnan() | (values <= 0)).sum())
        else:
            bad = int((~values.isfinite()).sum())
        if bad:
            raise CheckpointError(
                f"{source}: the weights hold {bad} values that are NaN, infinite or out of range (e.g. in {name}), "
                f"so every output would be NaN. The file is damaged or was altered; {REDO}.")


def _check_header_size(path: str | os.PathLike, source: str) -> None:
    """CheckpointError when the safetensors header (its length is the file's first 8 bytes, little endian) is
    larger than MAX_HEADER_BYTES: nothing that large is parsed."""
    try:
        with open(path, "rb") as file:
            head = file.read(8)
    except OSError as exc:
        raise CheckpointError(f"{source} cannot be read ({exc.strerror or exc}); check the path and its "
                              "permissions.") from exc
    if len(head) == 8 and struct.unpack("<Q", head)[0] > MAX_HEADER_BYTES:
        raise CheckpointError(_unreadable(source, f"a header of {struct.unpack('<Q', head)[0]} bytes announced, "
                                                  f"more than the {MAX_HEADER_BYTES} read at most"))


def _open(path: str | os.PathLike):
    """The safetensors file at ``path`` open for reading (a context manager); CheckpointError for a missing,
    oversized, truncated, corrupt or foreign file."""
    source = str(path)
    if not Path(path).is_file():
        raise CheckpointError(f"model file {source} does not exist. Give the path of a CoFusion .safetensors file.")
    _check_header_size(path, source)
    return _safetensors_call(lambda: safe_open(source, framework="pt"), source)


def _card_of(handle, source: str) -> ModelCard:
    metadata = _safetensors_call(lambda: handle.metadata() or {}, source)
    if METADATA_KEY not in metadata:
        raise CheckpointError(f"{source} is a safetensors file but not a CoFusion checkpoint "
                              "(no CoFusion model card in its metadata).")
    return ModelCard.from_json(metadata[METADATA_KEY], source)


def _tensor_index(handle, source: str) -> dict[str, tuple[tuple[int, ...], str]]:
    """name -> (shape, safetensors dtype) of every tensor, from the header (no tensor is read)."""
    def index() -> dict[str, tuple[tuple[int, ...], str]]:
        slices = {key: handle.get_slice(key) for key in handle.keys()}
        return {key: (tuple(int(n) for n in piece.get_shape()), str(piece.get_dtype()))
                for key, piece in slices.items()}
    return _safetensors_call(index, source)


def _safetensors_call(call, source: str):
    """``call()``, its safetensors and I/O errors (header parse errors, truncation) as a CheckpointError."""
    try:
        return call()
    except (SafetensorError, OSError, ValueError, TypeError) as exc:
        raise CheckpointError(_unreadable(source, _one_line(exc))) from exc


def _unreadable(source: str, why: str) -> str:
    return (f"{source} is not a readable CoFusion checkpoint (corrupt, truncated or another format: {why}). "
            "CoFusion only loads .safetensors checkpoints it wrote; it never unpickles files.")


def _parse_card_json(text: object, source: str) -> Any:
    """The card's JSON value; CheckpointError when it is not text, longer than MAX_CARD_CHARS, nested deeper than
    MAX_CARD_DEPTH (found by a scan that does not recurse), not valid JSON, or holds an integer of more than
    MAX_INT_DIGITS digits."""
    if not isinstance(text, str):
        raise CheckpointError(f"{source}: the CoFusion model card is not text; {REDO}.")
    if len(text) > MAX_CARD_CHARS:
        raise CheckpointError(f"{source}: the CoFusion model card is {len(text)} characters long, more than the "
                              f"{MAX_CARD_CHARS} a card may hold; {REDO}.")
    depth = _json_depth(text)
    if depth > MAX_CARD_DEPTH:
        raise CheckpointError(f"{source}: the CoFusion model card nests {depth} levels deep, more than the "
                              f"{MAX_CARD_DEPTH} a card may; {REDO}.")
    try:
        return json.loads(text, parse_int=_parse_int)
    except RecursionError as exc:  # the scan above rules it out; never a traceback all the same
        raise CheckpointError(f"{source}: the CoFusion model card is nested too deeply; {REDO}.") from exc
    except ValueError as exc:  # json.JSONDecodeError, an integer too long
        raise CheckpointError(f"{source}: the CoFusion model card is not valid JSON ({_one_line(exc)}); "
                              f"{REDO}.") from exc


#: A JSON string: what the depth scan skips, so that brackets inside strings do not count.
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)


def _json_depth(text: str) -> int:
    """The deepest nesting of arrays and objects in JSON ``text``, without recursion (brackets outside strings)."""
    skeleton = _JSON_STRING.sub("", text).encode("utf-8")
    codes = np.frombuffer(skeleton, np.uint8)
    steps = np.isin(codes, (ord("["), ord("{"))).astype(np.int64) - np.isin(codes, (ord("]"), ord("}")))
    return int(np.cumsum(steps).max(initial=0))


def _parse_int(digits: str) -> int:
    if len(digits) > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {len(digits)} digits")
    return int(digits)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _numbers(values: object, what: str, source: str, length: int) -> tuple[float, ...]:
    """``values`` as floats; CheckpointError unless it is a JSON list of ``length`` numbers."""
    if not isinstance(values, list) or len(values) != length or not all(_is_number(v) for v in values):
        raise CheckpointError(f"{source}: the card's {what} must hold {length} numbers (a JSON list); {REDO}.")
    return tuple(float(v) for v in values)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:297] + "..."


def _list_or_none(values: Sequence | None) -> list | None:
    return None if values is None else list(values)



