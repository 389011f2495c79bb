# SPDX-License-Identifier: GPL-2.0-or-later
"""The architecture description of a CoFusion network: everything needed to rebuild it, nothing else."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from ..errors import CheckpointError, InputError
from ..scale import check_scale
from ..tiling import default_tiling

SCHEMA_VERSION = 4  # 2: 'base' replaced the boolean 'detail_injection'; 3: trust map, back-projection, fixed blend;
#                     4: trust_falloff (version 3 read as 2.0, the rule it was trained with)
#: What the head corrects (core.model.prior): the blend of GSA and the local linear regression (default), either
#: alone, or the paper's bicubic LRHSI.
BASES = ("blend", "llr", "gsa", "bicubic")
#: Earlier names of bases, still read from model cards and accepted from scripts: the LLR base was "local".
BASE_ALIASES = {"local": "llr"}
#: A training setting, not a model's base: the trainer resolves it, before its first step, to the candidate of
#: AUTO_CANDIDATES that scores best on the reduced-resolution check of the training data itself
#: (``training.trainer.choose_base``), and the model's card holds the base chosen. The default of new trainings.
AUTO_BASE = "auto"
#: Not bicubic: on the Houston pair its base wins that check (24.06 dB against llr's 22.12, training data, x4),
#: but a 5-minute fit on it reached QNR 0.9704 at full resolution against 0.9756 with the blend (70 steps on a loaded
#: machine against 639: not conclusive), below LLR's 0.9788 both; the check rewards ignoring the RGB's detail there.
AUTO_CANDIDATES = ("blend", "llr", "gsa")

# The ranges a config may take. A config also arrives from a checkpoint's card, which is untrusted input: every
# field is checked for its type and range, and the network's size is estimated before anything is built.
HSI_BANDS, MSI_BANDS = (3, 300), (1, 16)
WIDTH = (8, 1024)  # a multiple of 4
BLOCKS_PER_LEVEL = (1, 16)
SALIENCY_STRIDE = (2, 16)  # even
DOMAIN_PROTOTYPES = (0, 256)
CONSISTENCY_STEPS = (0, 10)
MAX_TRUST_FALLOFF = 1000.0
#: The largest network accepted: parameters (the paper's PaviaU network has 4.9 M, the default 0.5 M) and the
#: estimated memory of one fusion tile of the default size at batch 1 (the default network: about 0.8 GB).
MAX_PARAMETERS = 50_000_000
MAX_TILE_BYTES = 8 * 1024**3
#: Bytes of activations per HR pixel of a tile, measured on CPU forwards (tile 288, widths 8-256, strides 2 and 4,
#: 5-198 bands) and rounded up: per hyperspectral band, per feature channel, and per entry of the D x D
#: interaction matrix of Spectral Coordinate Mixing (one per saliency cell, stride^2 pixels). Blocks run one
#: after the other, so their count does not add activations at inference. SCM no longer forms that matrix (it reads
#: the top-K off the sorted rank-1 factor: D x K per cell); the term is kept, an over-estimate now, so that the
#: limits accept and refuse the same configs as before.
BYTES_PER_BAND, BYTES_PER_CHANNEL, BYTES_PER_INTERACTION = 24, 64, 8


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a CoFusion network.

    Args:
        hsi_bands: C_hsi, bands of the LRHSI input and of the HRHSI output (3-300).
        msi_bands: C_msi, bands of the HRMSI input (1-16).
        scale: HR pixels per LR pixel along each axis, an integer from 2 to 8.
        width: D, the hidden feature width (64 in the paper).
        blocks_per_level: CoFusion blocks (SpaCAM + SpeCAM + SSCFM) at each of the three pyramid levels.
        top_k: K, candidates kept per channel by the Top-K of Spectral Coordinate Mixing.
        wavelet: PyWavelets name of the wavelet whose decomposition low-pass splits SpeCAM's input.
        saliency_stride: HR->saliency-grid pooling stride (pixels of the level) of SpeCAM and SSCFM.
        dropout: feature dropout of SSCFM's spatial attention maps during training (0.1 in the paper).
        spacam, specam, sscfm: ablation switches; a disabled module is replaced by a plain residual block
            (paper Table 3).
        base: what the head's output is added to, a classical fusion of the scene (``core.model.prior``):
            "blend" (the mean of GSA and the local linear regression; the default), "llr" (the local linear
            regression; "local" is read as it, its earlier name), "gsa", or "bicubic" (the LRHSI alone, the
            paper's).
        domain_prototypes: K, clusters of training LR spectra whose trust map weighs the head's output
            (``core.model.domain``); 0 applies the head everywhere.
        trust_falloff: novelty (distance to the nearest cluster over its radius) at which the trust map reaches 0;
            it is 1 up to 1 (``core.model.domain``).
        consistency_steps: back-projection steps that make the output consistent with the LRHSI
            (``core.injection.back_project``); 0 for none.
    """

    hsi_bands: int
    msi_bands: int
    scale: int
    width: int = 64
    blocks_per_level: int = 1
    top_k: int = 8
    wavelet: str = "haar"
    saliency_stride: int = 4
    dropout: float = 0.1
    spacam: bool = True
    specam: bool = True
    sscfm: bool = True
    base: str = "blend"
    domain_prototypes: int = 16
    trust_falloff: float = 3.0
    consistency_steps: int = 2

    def __post_init__(self) -> None:
        _integer("hsi_bands", self.hsi_bands, *HSI_BANDS,
                 f"the hyperspectral input has {self.hsi_bands!r} bands; CoFusion supports {HSI_BANDS[0]} to "
                 f"{HSI_BANDS[1]}.")
        _integer("msi_bands", self.msi_bands, *MSI_BANDS,
                 f"the multispectral input has {self.msi_bands!r} bands; CoFusion supports {MSI_BANDS[0]} to "
                 f"{MSI_BANDS[1]}.")
        check_scale(self.scale)
        _integer("width", self.width, *WIDTH)
        if self.width % 4:
            raise InputError(f"width {self.width} must be a multiple of 4 (SSCFM splits it in 4).")
        _integer("blocks_per_level", self.blocks_per_level, *BLOCKS_PER_LEVEL)
        _integer("top_k", self.top_k, 1, self.width, f"top_k {self.top_k!r} must be an integer from 1 to the "
                                                     f"width ({self.width}).")
        if not isinstance(self.wavelet, str) or self.wavelet not in _discrete_wavelets():
            raise InputError(f"wavelet {self.wavelet!r} is not a discrete PyWavelets wavelet (e.g. 'haar', 'db2', "
                             "'sym4'; pywt.wavelist(kind='discrete') lists them).")
        _integer("saliency_stride", self.saliency_stride, *SALIENCY_STRIDE)
        if self.saliency_stride % 2:
            raise InputError(f"saliency_stride {self.saliency_stride} must be an even number.")
        _number("dropout", self.dropout)
        if not 0.0 <= self.dropout < 1.0:
            raise InputError(f"dropout {self.dropout!r} must lie in [0, 1) (a fraction of the features).")
        for switch in ("spacam", "specam", "sscfm"):
            if not isinstance(getattr(self, switch), bool):
                raise InputError(f"{switch} {getattr(self, switch)!r} must be true or false (a module switch).")
        if isinstance(self.base, str) and self.base in BASE_ALIASES:
            object.__setattr__(self, "base", BASE_ALIASES[self.base])
        if not isinstance(self.base, str) or self.base not in BASES:
            raise InputError(f"base {self.base!r} is not one of {BASES}.")
        _integer("domain_prototypes", self.domain_prototypes, *DOMAIN_PROTOTYPES)
        _number("trust_falloff", self.trust_falloff)
        if not 1.0 < self.trust_falloff <= MAX_TRUST_FALLOFF:
            raise InputError(f"trust_falloff {self.trust_falloff!r} must exceed 1 (the trust is 1 up to one radius) "
                             f"and be at most {MAX_TRUST_FALLOFF:g}.")
        _integer("consistency_steps", self.consistency_steps, *CONSISTENCY_STEPS)
        self.check_size()

    def parameter_count(self) -> int:
        """The number of values in the network's state (its parameters and saved buffers), from the config alone:
        what building it would allocate (``tests/reliability/test_untrusted_cards.py`` checks it against
        ``build_model``)."""
        w, c_h, c_m = self.width, self.hsi_bands, self.msi_bands
        conv = _conv_size
        residual = 2 * conv(w, w, 3)
        spacam = 3 * (conv(w, w, 3, w) + conv(w, w, 1)) + 3 * conv(w, w, 3, w)
        specam = 3 * conv(w, w, 3, w) + (2 * w * w + w) + 3 * (w * w + w) + 2 * w
        sscfm = (4 * w + conv(w, w, 3, w) + conv(w, w, 5, w) + conv(w, w // 4, 1) + conv(w // 4, w, 1)
                 + 2 * conv(w, w, 1, 4) + conv(2 * w, w, 3))
        block = ((spacam if self.spacam else residual) + (specam if self.specam else residual)
                 + (sscfm if self.sscfm else residual))
        network = (conv(c_h, w, 1) + conv(c_m, w, 3) + 2 * conv(w, w, 3) + 2 * conv(w, w, 1)
                   + 3 * self.blocks_per_level * block + conv(w, w, 3) + conv(w, c_h, 1))
        return network + self.domain_prototypes * (c_h + 1)

    def tile_bytes(self, tile: int | None = None) -> int:
        """Estimated memory (bytes) of one fusion tile of ``tile`` HR pixels a side (default: the tiler's
        default for this config) at batch 1: the float32 weights and the activations (see BYTES_PER_BAND)."""
        tile = default_tiling(self.align)[0] if tile is None else tile
        per_pixel = (BYTES_PER_BAND * self.hsi_bands + BYTES_PER_CHANNEL * self.width
                     + BYTES_PER_INTERACTION * self.width ** 2 / self.saliency_stride ** 2)
        return int(4 * self.parameter_count() + per_pixel * tile * tile)

    def check_size(self) -> None:
        """InputError with the numbers when the network is larger than MAX_PARAMETERS or a default tile needs
        more than MAX_TILE_BYTES: before anything is allocated."""
        parameters, tile = self.parameter_count(), default_tiling(self.align)[0]
        memory = self.tile_bytes(tile)
        if parameters > MAX_PARAMETERS or memory > MAX_TILE_BYTES:
            raise InputError(
                f"a network of width {self.width} with {self.blocks_per_level} block(s) per level (top_k "
                f"{self.top_k}, saliency_stride {self.saliency_stride}, {self.hsi_bands} bands) has "
                f"{parameters / 1e6:.1f} M parameters and needs about {memory / 1024**3:.1f} GiB for one "
                f"{tile}-pixel tile; CoFusion accepts at most {MAX_PARAMETERS / 1e6:.0f} M parameters and "
                f"{MAX_TILE_BYTES / 1024**3:.0f} GiB: use a smaller width or fewer blocks (the default is width "
                "64 with 1 block per level)."
            )

    @property
    def align(self) -> int:
        """HR pixels: input sizes and tile origins must be multiples of this for translation equivariance.

        Three pyramid levels (factor 4) times the saliency pooling stride, and a whole number of LR pixels.
        """
        return math.lcm(4 * self.saliency_stride, self.scale)

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Rebuild a config written by :meth:`to_dict`; CheckpointError for a foreign or newer schema, a missing
        field, or any field of the wrong type or out of range (it is read from untrusted files)."""
        if not isinstance(data, dict):
            raise CheckpointError(f"model config is a JSON {type(data).__name__}, not an object.")
        version = data.get("schema_version")
        if version == 3:  # trained with the trust rule of its time: 1 up to the radius, 0 at twice it
            data = {**data, "schema_version": SCHEMA_VERSION, "trust_falloff": 2.0}
            version = SCHEMA_VERSION
        if version != SCHEMA_VERSION:
            raise CheckpointError(
                f"model config schema version {version!r} is not supported (this CoFusion reads version "
                f"{SCHEMA_VERSION}); update the plugin or retrain the model."
            )
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names - {"schema_version"})
        if unknown:
            raise CheckpointError(f"model config has unknown fields {unknown}: not written by this CoFusion.")
        try:
            return cls(**{k: v for k, v in data.items() if k in names})
        except TypeError as exc:  # a required field is missing
            raise CheckpointError(f"model config is incomplete ({exc}).") from exc
        except InputError as exc:
            raise CheckpointError(f"model config is invalid: {exc}") from exc


def _conv_size(c_in: int, c_out: int, kernel: int, groups: int = 1) -> int:
    """Weights and biases of ``nn.Conv2d(c_in, c_out, kernel, groups=groups)``."""
    return c_in // groups * c_out * kernel * kernel + c_out


def _integer(name: str, value: object, low: int, high: int, message: str | None = None) -> None:
    """InputError unless ``value`` is an int (not a bool, not a float) in ``low..high``."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InputError(message or f"{name} {value!r} must be an integer from {low} to {high}.")


def _number(name: str, value: object) -> None:
    """InputError unless ``value`` is a finite int or float (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(f"{name} {value!r} must be a finite number.")


def _discrete_wavelets() -> frozenset[str]:
    import pywt  # PyWavelets: the wavelet bank of SpeCAM's split (core.model.layers)

    return frozenset(pywt.wavelist(kind="discrete"))

