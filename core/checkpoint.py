# SPDX-License-Identifier: GPL-2.0-or-later
"""Checkpoints that describe themselves and cannot run code: safetensors weights + a JSON card in the metadata.

The file is a plain safetensors file (https://github.com/huggingface/safetensors): tensors and a string-to-string
metadata header, no pickle. The header key ``cofusion`` holds one JSON document: the format tag, the model
config, the normalisation statistics, the HSI wavelengths, the MSI spectral response, provenance and validation
metrics. Loading reads the header, validates it, builds the network and loads the weights strictly.
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from .errors import CheckpointError
from .model import CoFusionNet, ModelConfig, build_model

FORMAT = "cofusion-checkpoint"
FORMAT_VERSION = 1
METADATA_KEY = "cofusion"


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
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"{source}: the CoFusion model card is not valid JSON ({exc}).") from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise CheckpointError(f"{source} is not a CoFusion checkpoint (its metadata has no '{FORMAT}' tag).")
        if data.get("format_version") != FORMAT_VERSION:
            raise CheckpointError(
                f"{source} has checkpoint format version {data.get('format_version')!r}; this CoFusion reads "
                f"version {FORMAT_VERSION}. Update the plugin."
            )
        try:
            config = ModelConfig.from_dict(data["config"])
            norm = Normalization(**{k: tuple(float(x) for x in v) for k, v in data["normalization"].items()})
            card = cls(
                config=config,
                normalization=norm,
                hsi_wavelengths_nm=_tuple_or_none(data.get("hsi_wavelengths_nm"), float),
                srf=None if data.get("srf") is None else tuple(tuple(float(x) for x in row) for row in data["srf"]),
                msi_band_names=_tuple_or_none(data.get("msi_band_names"), str),
                provenance=dict(data.get("provenance") or {}),
                metrics=dict(data.get("metrics") or {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{source}: the CoFusion model card is incomplete or malformed ({exc!r}).") from exc
        card.validate(source)
        return card

    def validate(self, source: str) -> None:
        """CheckpointError where the card contradicts itself (statistics or SRF of the wrong size, bad values)."""
        config, norm = self.config, self.normalization
        sizes = {"hsi_mean": config.hsi_bands, "hsi_std": config.hsi_bands,
                 "msi_mean": config.msi_bands, "msi_std": config.msi_bands}
        for name, size in sizes.items():
            values = getattr(norm, name)
            if len(values) != size or not all(math.isfinite(v) for v in values):
                raise CheckpointError(f"{source}: normalisation '{name}' must hold {size} finite values.")
        if any(v <= 0 for v in norm.hsi_std + norm.msi_std):
            raise CheckpointError(f"{source}: normalisation standard deviations must be positive.")
        if self.hsi_wavelengths_nm is not None and len(self.hsi_wavelengths_nm) != config.hsi_bands:
            raise CheckpointError(f"{source}: {len(self.hsi_wavelengths_nm)} wavelengths for "
                                  f"{config.hsi_bands} hyperspectral bands.")
        if self.srf is not None and (len(self.srf) != config.msi_bands
                                     or any(len(row) != config.hsi_bands for row in self.srf)):
            raise CheckpointError(f"{source}: the spectral response must be {config.msi_bands} x "
                                  f"{config.hsi_bands} (MSI bands x HSI bands).")


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
    """Write weights + card atomically (temporary file beside the target, then os.replace). Returns the path.

    ``storage_dtype=torch.float16`` halves the file; weights are cast back to float32 when loaded.
    """
    if model.config != card.config:
        raise ValueError("the card's config differs from the model's config")
    path = Path(path)
    tensors = {name: t.detach().to("cpu", storage_dtype).contiguous() for name, t in model.state_dict().items()}
    temporary = path.with_name(f".{path.name}.tmp")
    try:  # written by open(), not safetensors' save_file, which makes the file readable by its owner only
        temporary.write_bytes(save(tensors, metadata={METADATA_KEY: card.to_json()}))
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def read_card(path: str | os.PathLike) -> ModelCard:
    """Only the card of a checkpoint (no weights read): for showing a model's bands, scale and metrics."""
    return _read(path, with_weights=False)[0]


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`. Never executes code from the file.

    Raises CheckpointError for a missing, truncated, corrupt or foreign file, or weights that do not match the
    card's architecture.
    """
    card, tensors = _read(path, with_weights=True)
    model = build_model(card.config)
    _check_weights(model, tensors, str(path))
    try:
        model.load_state_dict({k: v.float() for k, v in tensors.items()}, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1].strip()  # PyTorch lists every tensor: keep the message one line
        raise CheckpointError(f"{path}: the weights do not match the architecture in its card ({first}).") from exc
    return Checkpoint(model=model.eval(), card=card, path=str(path))


def _check_weights(model: CoFusionNet, tensors: dict[str, torch.Tensor], source: str) -> None:
    """CheckpointError, in one line, when the file's tensors are not the names and shapes the card's network has."""
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    missing = [name for name in expected if name not in tensors]
    unexpected = [name for name in tensors if name not in expected]
    reshaped = [name for name in expected if name in tensors and tuple(tensors[name].shape) != expected[name]]
    problems = []
    if missing:
        problems.append(f"{len(missing)} tensors missing (e.g. {missing[0]})")
    if unexpected:
        problems.append(f"{len(unexpected)} tensors the network does not have (e.g. {unexpected[0]})")
    if reshaped:
        name = reshaped[0]
        problems.append(f"{len(reshaped)} tensors of another shape (e.g. {name}: {list(tensors[name].shape)} in "
                        f"the file, {list(expected[name])} for the card)")
    if problems:
        raise CheckpointError(
            f"{source}: the weights do not match the architecture in its card: {', '.join(problems)}. The file was "
            "altered or mixes two models; use the checkpoint as CoFusion saved it, or train the model again."
        )


def _read(path: str | os.PathLike, with_weights: bool) -> tuple[ModelCard, dict[str, torch.Tensor]]:
    source = str(path)
    if not Path(path).is_file():
        raise CheckpointError(f"model file {source} does not exist. Give the path of a CoFusion .safetensors file.")
    try:
        with safe_open(source, framework="pt") as handle:
            metadata = handle.metadata() or {}
            if METADATA_KEY not in metadata:
                raise CheckpointError(f"{source} is a safetensors file but not a CoFusion checkpoint "
                                      "(no CoFusion model card in its metadata).")
            card = ModelCard.from_json(metadata[METADATA_KEY], source)
            tensors = {key: handle.get_tensor(key) for key in handle.keys()} if with_weights else {}
    except (SafetensorError, OSError, ValueError) as exc:  # header parse errors, truncation
        raise CheckpointError(
            f"{source} is not a readable CoFusion checkpoint (corrupt, truncated or another format: {exc}). "
            "CoFusion only loads .safetensors checkpoints it wrote; it never unpickles files."
        ) from exc
    return card, tensors


def _list_or_none(values: Sequence | None) -> list | None:
    return None if values is None else list(values)


def _tuple_or_none(values: Sequence | None, kind: type) -> tuple | None:
    return None if values is None else tuple(kind(v) for v in values)

