# SPDX-License-Identifier: GPL-2.0-or-later
"""Sources of training examples: (LR input, HR MSI input, HR target) patches and a validation set.

Two sources, one interface (:class:`PatchSource`):

* :class:`ReferenceSource` - high-resolution hyperspectral scenes Z and an MSI response R: every patch is simulated
  on the fly by Wald's protocol (core.degrade), from a crop with a margin of context, so a patch equals the same
  pixels of a whole-scene simulation (the scene is padded by reflection once, as core.degrade pads its borders).
* :class:`PairSource` - a real co-registered LRHSI X + HRMSI Y pair, no reference: reduced-resolution
  self-supervision (Wald): the inputs are X and Y degraded by the scale, the target is X itself; and patches of X
  and Y at their own resolution (:class:`FullResolutionBatch`), on which the trainer's no-reference loss measures
  the fusion's D_lambda and D_s.

Shapes: C_h / C_m hyperspectral / multispectral bands, s scale, p patch size in target pixels.
All arrays are float32 in the data's own units; the training loop normalises them.

Nodata: both sources take masks of valid pixels (real scenes have nodata borders and masked pixels; the caller
fills invalid pixels with placeholders). Patches are drawn only where every pixel they read is valid
(:func:`valid_origins`), statistics use valid pixels only, and the validation batch carries its mask, so the
validation metrics count valid pixels only.
"""
from __future__ import annotations

import abc
import functools
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from ..core.block_walk import coarse_valid
from ..core.checkpoint import Normalization
from ..core.degrade import blur_kernel, spatial_degrade, spectral_degrade
from ..core.errors import InputError
from ..core.metrics import WINDOW_SIZE

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Batch:
    """lr (B, C_h, p/s, p/s), msi (B, C_m, p, p), target (B, C_h, p, p); float32 tensors, data units.
    ``valid`` (B, p, p) bool: the target pixels that count (None: all); only validation batches carry one."""

    lr: torch.Tensor
    msi: torch.Tensor
    target: torch.Tensor
    valid: torch.Tensor | None = None


@dataclass(frozen=True)
class FullResolutionBatch:
    """Patches of a real pair at its own resolution, for the no-reference loss (``core.metrics.qnr_torch``):
    lr (B, C_h, q, q), msi (B, C_m, s*q, s*q), and msi_lr (B, C_m, q, q), the HRMSI degraded to the LR grid as the
    LRHSI is; float32 tensors, data units, every pixel valid."""

    lr: torch.Tensor
    msi: torch.Tensor
    msi_lr: torch.Tensor


def valid_origins(valid: np.ndarray, size: int, step: int) -> np.ndarray:
    """Top-left corners ``(N, 2)`` (row, col), multiples of ``step``, of the ``size`` x ``size`` windows of
    ``valid`` (H, W) bool whose every pixel is True (a summed-area table: O(H W))."""
    rows, cols = valid.shape
    if rows < size or cols < size:
        return np.zeros((0, 2), np.int64)
    table = np.zeros((rows + 1, cols + 1), np.int64)
    table[1:, 1:] = valid.astype(np.int64).cumsum(0).cumsum(1)
    r = np.arange(0, rows - size + 1, step)[:, None]
    c = np.arange(0, cols - size + 1, step)[None, :]
    counts = table[r + size, c + size] - table[r, c + size] - table[r + size, c] + table[r, c]
    hit_r, hit_c = np.nonzero(counts == size * size)
    return np.stack([r[hit_r, 0], c[0, hit_c]], axis=1)


def _no_patch_error(what: str, valid: np.ndarray, size: int) -> InputError:
    return InputError(
        f"{what} holds {int(valid.sum())} valid pixels of {valid.size} but no {size} x {size} window free of nodata "
        f"(training needs at least one): choose a region with more valid data, or a smaller patch (--patch).")


def split_validation(height: int, width: int, multiple: int, fraction: float = 0.2,
                     texture: np.ndarray | None = None, valid: np.ndarray | None = None) -> tuple[tuple, tuple]:
    """Split a (height, width) region into a training part and a validation strip across its longer side.

    Returns two (row0, row1, col0, col1) boxes, each side a multiple of ``multiple`` pixels; the strip takes about
    ``fraction`` of the longer side, at its end, or at its start when ``texture`` ((height, width), e.g. the target's
    band mean) has more detail there (a larger RMS gradient): a flat strip (sky, a dark background) scores every
    model alike, so it cannot pick the best checkpoint, and a fusion's PSNR is decided at edges. With ``valid``
    ((height, width) bool) the end holding more valid pixels takes the strip, detail deciding between equals. The
    parts never overlap.
    """
    along_rows = height >= width
    length = height if along_rows else width
    strip = max(multiple, int(round(length * fraction / multiple)) * multiple)
    train_len = (length - strip) // multiple * multiple
    other = (width if along_rows else height) // multiple * multiple
    if train_len < multiple or other < multiple:
        raise InputError(
            f"the training region ({width} x {height} pixels) is too small to carve a validation strip from it: "
            f"give a region of at least {2 * multiple} x {2 * multiple} pixels."
        )
    start_valid = 0 if valid is None else _count(valid, 0, strip, along_rows)
    end_valid = 0 if valid is None else _count(valid, train_len, train_len + strip, along_rows)
    if start_valid != end_valid:
        at_start = start_valid > end_valid
    else:
        at_start = texture is not None and _detail(texture, 0, strip, along_rows) > _detail(
            texture, train_len, train_len + strip, along_rows)
    train_span, strip_span = ((strip, strip + train_len), (0, strip)) if at_start else \
        ((0, train_len), (train_len, train_len + strip))
    if along_rows:
        return (*train_span, 0, other), (*strip_span, 0, other)
    return (0, other, *train_span), (0, other, *strip_span)


def _count(valid: np.ndarray, start: int, stop: int, along_rows: bool) -> int:
    """Valid pixels of ``valid`` (H, W) in rows (or columns) [start, stop)."""
    return int((valid[start:stop] if along_rows else valid[:, start:stop]).sum())


def _detail(texture: np.ndarray, start: int, stop: int, along_rows: bool) -> float:
    """RMS gradient (units of ``texture`` per pixel) of ``texture`` (H, W) over rows (or columns) [start, stop)."""
    part = texture[start:stop] if along_rows else texture[:, start:stop]
    gradients = np.gradient(np.asarray(part, np.float64))
    return float(np.sqrt(sum(np.mean(g ** 2) for g in gradients)))


def augment(arrays: list[torch.Tensor], generator: torch.Generator) -> list[torch.Tensor]:
    """The same random flip / rot90 (one of the 8 dihedral transforms) applied to every (..., H, W) tensor.

    Flips and quarter turns of patches whose sizes are multiples of the scale keep LR and HR grids aligned.
    """
    turns = int(torch.randint(4, (1,), generator=generator))
    flip = bool(torch.randint(2, (1,), generator=generator))
    out = []
    for a in arrays:
        a = torch.rot90(a, turns, dims=(-2, -1))
        out.append(torch.flip(a, dims=(-1,)) if flip else a)
    return out


def band_statistics(image: np.ndarray, valid: np.ndarray | None = None) -> tuple[tuple, tuple]:
    """Per-band mean and standard deviation (floored at 1e-6 of the data range) of (C, H, W) over valid pixels."""
    pixels = image.reshape(image.shape[0], -1)
    if valid is not None:
        pixels = pixels[:, valid.reshape(-1)]
    if pixels.shape[1] == 0:
        raise InputError("the training region holds no valid pixel: choose a region with data.")
    mean = pixels.mean(axis=1, dtype=np.float64)
    std = pixels.std(axis=1, dtype=np.float64)
    floor = max(1e-6 * float(np.abs(pixels).max()), 1e-12)
    return tuple(float(m) for m in mean), tuple(float(max(s, floor)) for s in std)


class PatchSource(abc.ABC):
    """What the trainer draws from (see the module docstring): ``ReferenceSource`` and ``PairSource`` implement it."""

    scale: int
    hsi_bands: int
    msi_bands: int
    value_range: float  # data units that map to 1.0 for the loss and metrics (robust maximum of the target)

    @abc.abstractmethod
    def normalization(self) -> Normalization:
        """The per-band mean and standard deviation of the network's inputs, in data units."""

    @abc.abstractmethod
    def sample(self, batch: int, patch: int, generator: torch.Generator) -> Batch:
        """``batch`` random training patches of ``patch`` HR pixels a side, drawn with ``generator``."""

    @abc.abstractmethod
    def validation(self) -> Batch:
        """The fixed validation set (the same batch at every validation)."""

    def full_resolution_size(self, preferred: int, multiple: int) -> int | None:
        """The edge (LR pixels) of the patches :meth:`full_resolution` can draw: the largest multiple of
        ``multiple`` up to ``preferred`` that a window of valid pixels of the training region has, and at least the
        no-reference indices' window (``core.metrics.WINDOW_SIZE``); None when none is, or the source has no real
        pair (a simulated scene has its reference)."""
        return None

    def full_resolution(self, batch: int, size: int, generator: torch.Generator) -> FullResolutionBatch:
        """``batch`` random patches of ``size`` LR pixels a side (:meth:`full_resolution_size`) of the pair at
        its own resolution, for the no-reference loss."""
        raise NotImplementedError(f"{type(self).__name__} has no real pair to draw full-resolution patches from.")

    @abc.abstractmethod
    def base_pairs(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
        """The training scenes as the network's inputs see them, to fit a GSA base on:
        (LRHSI (C_h, h, w), HRMSI (C_m, s*h, s*w), valid LR pixels (h, w) bool or None), data units."""

    @abc.abstractmethod
    def domain_spectra(self) -> torch.Tensor:
        """The training region's LR spectra as fusion will see them, to fit the trust map on: (N, C_h) float32,
        data units, valid pixels only."""


class ReferenceSource(PatchSource):
    """Wald's-protocol pairs simulated on the fly from HR hyperspectral scenes.

    Args:
        scenes: one or more HR hyperspectral training regions, each (C_h, H, W) float32, data units.
        validation: the HR validation strip (C_h, Hv, Wv), from the same scenes, never overlapping ``scenes``.
        srf_matrix: R (C_m, C_h), rows sum to 1.
        scale: s.
        valid: optional (H, W) bool mask per scene (invalid pixels hold placeholders): patches are drawn where the
            patch and the blur's context are valid, statistics and the trust map use valid pixels.
        validation_valid: optional (Hv, Wv) bool mask of the validation strip.
    """

    def __init__(self, scenes: list[np.ndarray], validation: np.ndarray, srf_matrix: np.ndarray, scale: int,
                 valid: list[np.ndarray] | None = None, validation_valid: np.ndarray | None = None) -> None:
        self.scale = scale
        self.hsi_bands = scenes[0].shape[0]
        self.msi_bands = srf_matrix.shape[0]
        self.srf = torch.as_tensor(srf_matrix, dtype=torch.float32)
        pad = (blur_kernel(scale).size - scale) // 2
        self.margin = math.ceil(pad / scale) * scale  # context for the blur, whole LR pixels
        m = self.margin
        self.padded = [torch.from_numpy(np.pad(z, ((0, 0), (m, m), (m, m)), mode="reflect")) for z in scenes]
        masks = [np.ones(z.shape[1:], bool) for z in scenes] if valid is None else valid
        self.masks = None if all(v.all() for v in masks) else [np.pad(v, m, mode="reflect") for v in masks]
        self.areas = np.array([v.sum() for v in masks], dtype=np.float64)
        train_pixels = np.concatenate([z[:, masks[k]] for k, z in enumerate(scenes)], axis=1)
        self._hsi_stats = band_statistics(train_pixels[:, :, None])
        msi = spectral_degrade(train_pixels[:, :, None], srf_matrix.astype(np.float32))
        self._msi_stats = band_statistics(msi)
        self.value_range = float(np.percentile(train_pixels, 99.9)) or 1.0
        lr, msi_val = self._simulate(torch.from_numpy(validation)[None])
        self._validation = Batch(lr, msi_val, torch.from_numpy(validation)[None],
                                 None if validation_valid is None else torch.from_numpy(validation_valid)[None])
        self._origins: dict[int, list[np.ndarray]] = {}

    def normalization(self) -> Normalization:
        return Normalization(*self._hsi_stats, *self._msi_stats)

    def sample(self, batch: int, patch: int, generator: torch.Generator) -> Batch:
        s, m = self.scale, self.margin
        if self.masks is not None:
            self._valid_origins(patch)  # scenes without a valid patch get no weight
        weights = torch.from_numpy(self.areas / self.areas.sum())
        crops = []
        for index in torch.multinomial(weights, batch, replacement=True, generator=generator).tolist():
            scene = self.padded[index]
            rows, cols = scene.shape[1] - 2 * m, scene.shape[2] - 2 * m
            if rows < patch or cols < patch:
                raise InputError(f"training scene {index + 1} ({cols} x {rows} pixels) is smaller than the patch "
                                 f"size {patch}: use a larger region or a smaller patch.")
            if self.masks is None:
                row = int(torch.randint((rows - patch) // s + 1, (1,), generator=generator)) * s
                col = int(torch.randint((cols - patch) // s + 1, (1,), generator=generator)) * s
            else:
                origins = self._valid_origins(patch)[index]
                row, col = (int(v) for v in origins[int(torch.randint(len(origins), (1,), generator=generator))])
            crop = scene[:, row:row + patch + 2 * m, col:col + patch + 2 * m]
            crops.append(augment([crop], generator)[0])
        stack = torch.stack(crops)
        lr, msi = self._simulate(stack)
        inner_lr = slice(m // s, m // s + patch // s)
        inner = slice(m, m + patch)
        return Batch(lr[..., inner_lr, inner_lr].contiguous(), msi[..., inner, inner].contiguous(),
                     stack[..., inner, inner].contiguous())

    def _valid_origins(self, patch: int) -> list[np.ndarray]:
        """Per scene, the patch origins (row, col) whose patch and blur context are valid (masks given)."""
        if patch not in self._origins:
            m, size = self.margin, patch + 2 * self.margin
            origins = [valid_origins(v, size, self.scale) for v in self.masks]
            if not any(len(o) for o in origins):
                inner = np.concatenate([v[m:v.shape[0] - m, m:v.shape[1] - m].ravel() for v in self.masks])
                raise _no_patch_error("the training region", inner, size)
            self.areas = np.array([area if len(origins[k]) else 0.0 for k, area in enumerate(self.areas)])
            self._origins[patch] = origins
        return self._origins[patch]

    def validation(self) -> Batch:
        return self._validation

    def base_pairs(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
        yield from self._simulated_scenes

    def domain_spectra(self) -> torch.Tensor:
        return torch.cat([lr.flatten(1).T if valid is None else lr.flatten(1).T[valid.flatten()]
                          for lr, _, valid in self._simulated_scenes])

    @functools.cached_property
    def _simulated_scenes(self) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
        """Each training scene simulated whole, once: (LRHSI (C_h, h, w), HRMSI (C_m, s*h, s*w), valid LR pixels
        (h, w) bool or None), cropped to whole LR pixels. Shared by the GSA fit and the trust map's fit."""
        s, m = self.scale, self.margin
        pairs = []
        for k, scene in enumerate(self.padded):
            rows, cols = (scene.shape[1] - 2 * m) // s * s, (scene.shape[2] - 2 * m) // s * s
            lr, msi = self._simulate(scene[None, :, :rows + 2 * m, :cols + 2 * m])
            inner_lr = slice(m // s, m // s + rows // s), slice(m // s, m // s + cols // s)
            valid = None if self.masks is None else torch.from_numpy(
                coarse_valid(self.masks[k][m:m + rows, m:m + cols], s))
            pairs.append((lr[(0, slice(None), *inner_lr)], msi[0, :, m:m + rows, m:m + cols], valid))
        return pairs

    def _simulate(self, hr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return spatial_degrade(hr, self.scale), spectral_degrade(hr, self.srf)


class PairSource(PatchSource):
    """Reduced-resolution self-supervision on a real pair: inputs (X, Y) degraded by s, target X.

    Args:
        lr_hsi: the LRHSI training region X (C_h, h, w), h and w multiples of s; float32 data units.
        hr_msi: the HRMSI over the same area Y (C_m, s*h, s*w).
        lr_validation, hr_validation: the validation strip, same layout, never overlapping the training region.
        valid: optional (h, w) bool mask of X pixels whose inputs are all valid (nodata excluded from patches and
            statistics).
        validation_valid: optional bool mask of the validation strip's X pixels, likewise.
    """

    def __init__(self, lr_hsi: np.ndarray, hr_msi: np.ndarray, lr_validation: np.ndarray,
                 hr_validation: np.ndarray, scale: int, valid: np.ndarray | None = None,
                 validation_valid: np.ndarray | None = None) -> None:
        self.scale = scale
        self.hsi_bands, self.msi_bands = lr_hsi.shape[0], hr_msi.shape[0]
        msi_on_lr_grid = spatial_degrade(hr_msi, scale)
        self._hsi_stats = band_statistics(lr_hsi, valid)
        self._msi_stats = band_statistics(msi_on_lr_grid, valid)
        self.value_range = float(np.percentile(lr_hsi if valid is None else lr_hsi[:, valid], 99.9)) or 1.0
        self.target = torch.from_numpy(lr_hsi)
        self.full_msi = torch.from_numpy(hr_msi)
        self.inputs_lr = torch.from_numpy(spatial_degrade(lr_hsi, scale))
        self.inputs_msi = torch.from_numpy(msi_on_lr_grid)
        self.valid = None if valid is None else torch.from_numpy(valid)
        self._all_valid = valid is None or bool(valid.all())  # every window may be drawn
        self._validation = Batch(torch.from_numpy(spatial_degrade(lr_validation, scale))[None],
                                 torch.from_numpy(spatial_degrade(hr_validation, scale))[None],
                                 torch.from_numpy(lr_validation)[None],
                                 None if validation_valid is None else torch.from_numpy(validation_valid)[None])
        self._origins: dict[tuple[int, int], np.ndarray] = {}

    def normalization(self) -> Normalization:
        return Normalization(*self._hsi_stats, *self._msi_stats)

    def _origin(self, size: int, step: int, generator: torch.Generator) -> tuple[int, int]:
        """A random top-left corner (row, col), multiples of ``step``, of a ``size`` x ``size`` window of the LR
        training region whose pixels are all valid."""
        rows, cols = self.target.shape[1:]
        if rows < size or cols < size:
            raise InputError(f"the training region ({cols} x {rows} LR pixels) is smaller than the patch size "
                             f"{size}: use a larger region or a smaller patch.")
        if self._all_valid:
            row = int(torch.randint((rows - size) // step + 1, (1,), generator=generator)) * step
            col = int(torch.randint((cols - size) // step + 1, (1,), generator=generator)) * step
            return row, col
        origins = self._valid_origins(size, step)
        if not len(origins):
            raise _no_patch_error("the training region of the pair", self.valid.numpy(), size)
        row, col = origins[int(torch.randint(len(origins), (1,), generator=generator))]
        return int(row), int(col)

    def _valid_origins(self, size: int, step: int) -> np.ndarray:
        """:func:`valid_origins` of the training region's mask (a mask is given), computed once per size and step."""
        if (size, step) not in self._origins:
            self._origins[size, step] = valid_origins(self.valid.numpy(), size, step)
        return self._origins[size, step]

    def sample(self, batch: int, patch: int, generator: torch.Generator) -> Batch:
        s = self.scale
        examples = []
        for _ in range(batch):
            row, col = self._origin(patch, s, generator)
            examples.append(augment([
                self.inputs_lr[:, row // s:(row + patch) // s, col // s:(col + patch) // s],
                self.inputs_msi[:, row:row + patch, col:col + patch],
                self.target[:, row:row + patch, col:col + patch],
            ], generator))
        lr, msi, target = (torch.stack(parts).contiguous() for parts in zip(*examples))
        return Batch(lr, msi, target)

    def full_resolution_size(self, preferred: int, multiple: int) -> int | None:
        rows, cols = self.target.shape[1:]
        for size in range(min(preferred, rows, cols) // multiple * multiple, WINDOW_SIZE - 1, -multiple):
            if self._all_valid or len(self._valid_origins(size, 1)):
                return size
        log.warning("the no-reference loss is off: the training region has no window of valid pixels %d LR pixels "
                    "across to measure it on", WINDOW_SIZE)
        return None

    def full_resolution(self, batch: int, size: int, generator: torch.Generator) -> FullResolutionBatch:
        s = self.scale
        examples = []
        for _ in range(batch):
            row, col = self._origin(size, 1, generator)
            examples.append(augment([
                self.target[:, row:row + size, col:col + size],
                self.full_msi[:, s * row:s * (row + size), s * col:s * (col + size)],
                self.inputs_msi[:, row:row + size, col:col + size],
            ], generator))
        lr, msi, msi_lr = (torch.stack(parts).contiguous() for parts in zip(*examples))
        return FullResolutionBatch(lr, msi, msi_lr)

    def validation(self) -> Batch:
        return self._validation

    def base_pairs(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
        valid = None if self.valid is None else torch.from_numpy(coarse_valid(self.valid.numpy(), self.scale))
        yield self.inputs_lr, self.inputs_msi, valid

    def domain_spectra(self) -> torch.Tensor:
        """The LRHSI itself (not its degraded copy): fusion runs at full resolution."""
        pixels = self.target.flatten(1).T
        return pixels if self.valid is None else pixels[self.valid.flatten()]
