# SPDX-License-Identifier: GPL-2.0-or-later
"""The architecture description of a CoFusion network: everything needed to rebuild it, nothing else."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from ..errors import CheckpointError, InputError
from ..scale import check_scale

SCHEMA_VERSION = 4  # 2: 'base' replaced the boolean 'detail_injection'; 3: trust map, back-projection, fixed blend;
#                     4: trust_falloff (version 3 read as 2.0, the rule it was trained with)
#: What the head corrects (core.model.prior): the blend of GSA and the local linear regression (default), either
#: alone, or the paper's bicubic LRHSI.
BASES = ("blend", "local", "gsa", "bicubic")


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
            "blend" (the mean of GSA and the local linear regression; the default), "local" (local linear
            regression), "gsa", or "bicubic" (the LRHSI alone, the paper's).
        domain_prototypes: K, clusters of training LR spectra whose trust map weighs the head's output
            (``core.model.domain``); 0 applies the head everywhere.
        trust_falloff: novelty (distance to the nearest cluster over its radius) at which the trust map reaches 0;
            it is 1 up to 1 (``core.model.domain``).
        consistency_steps: back-projection steps that make the output consistent with the LRHSI
            (``core.model.consistency``); 0 for none.
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
        if not 3 <= self.hsi_bands <= 300:
            raise InputError(f"the hyperspectral input has {self.hsi_bands} bands; CoFusion supports 3 to 300.")
        if not 1 <= self.msi_bands <= 16:
            raise InputError(f"the multispectral input has {self.msi_bands} bands; CoFusion supports 1 to 16.")
        check_scale(self.scale)
        if self.width % 4 or self.width < 8:
            raise InputError(f"width {self.width} must be a multiple of 4 and at least 8 (SSCFM splits it in 4).")
        if self.saliency_stride < 2 or self.saliency_stride % 2:
            raise InputError(f"saliency_stride {self.saliency_stride} must be an even number >= 2.")
        if self.base not in BASES:
            raise InputError(f"base {self.base!r} is not one of {BASES}.")
        if not 0 <= self.domain_prototypes <= 256:
            raise InputError(f"domain_prototypes {self.domain_prototypes} must lie in 0..256.")
        if not self.trust_falloff > 1.0:
            raise InputError(f"trust_falloff {self.trust_falloff} must exceed 1 (the trust is 1 up to one radius).")
        if not 0 <= self.consistency_steps <= 10:
            raise InputError(f"consistency_steps {self.consistency_steps} must lie in 0..10.")
        if not 1 <= self.top_k <= self.width:
            raise InputError(f"top_k {self.top_k} must lie in 1..width ({self.width}).")

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
        """Rebuild a config written by :meth:`to_dict`; CheckpointError for a foreign or newer schema."""
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
        except (TypeError, InputError) as exc:
            raise CheckpointError(f"model config is invalid: {exc}") from exc

