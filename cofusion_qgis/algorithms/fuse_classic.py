# SPDX-License-Identifier: GPL-2.0-or-later
"""``cofusion:fuse_classic``: classical fusion baselines (MTF-GLP-HPM, GSA, SFIM, bicubic, LLR), streamed in blocks."""
from __future__ import annotations

from .base import FUSION, CoFusionAlgorithm
from .layer_outputs import SPECTRAL, present
from .params import (
    CLASSIC_METHODS,
    SRF_HELP,
    choice_parameter,
    fuse_area_parameter,
    fused_output_parameter,
    hrmsi_parameter,
    lrhsi_parameter,
    output_extent_window,
    output_raster,
    progress,
    raster_path,
    srf_parameter,
)


class FuseClassicAlgorithm(CoFusionAlgorithm):
    ID = "fuse_classic"
    LABEL = "Fuse (classical baselines)"
    GROUP = FUSION
    TAGS = (
        "GSA", "Gram-Schmidt", "component substitution", "MTF-GLP", "MTF-GLP-HPM", "SFIM", "local linear regression",
        "LLR", "guided filter", "bicubic", "classical")
    DESCRIPTION = (
        "Fuses an LRHSI with a co-registered HRMSI with a classical method: MTF-GLP-HPM (Aiazzi et al. 2006), "
        "GSA (Aiazzi, Baronti, Selva 2007), SFIM (Liu 2000), extended to several MSI bands by least-squares "
        "fitted synthetic pans, LLR (a local linear regression in 5 x 5 LR-pixel windows, the strongest on edges "
        "between materials), the blend (the mean of GSA and LLR made consistent with the LRHSI by "
        "back-projection: the CoFusion network's own base, and what it gives untrained), or plain bicubic "
        "upsampling. No model needed: the yardstick for CoFusion. Large scenes run in blocks of 256 x 256 LR "
        "pixels with a margin; the regression weights are then fitted per block. The output keeps the HRMSI grid, "
        "the LRHSI wavelengths and a nodata value, and marks each band's detail as measured (inside the HRMSI's "
        "spectral coverage) or extrapolated in its metadata.")
    LRHSI, HRMSI, METHOD, SRF, OUTPUT, REGION = "LRHSI", "HRMSI", "METHOD", "SRF", "OUTPUT", "REGION"

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 (QGIS API name)
        self.add(lrhsi_parameter(self.LRHSI, self.tr), "The LRHSI.")
        self.add(hrmsi_parameter(self.HRMSI, self.tr),
                 "The HRMSI on a grid that subdivides the LRHSI's grid an integer number of times.")
        self.add(choice_parameter(self.METHOD, self.tr("Method"), CLASSIC_METHODS),
                 f"One of {', '.join(CLASSIC_METHODS)}.")
        self.add(srf_parameter(self.SRF, self.tr("HRMSI spectral response"), optional=True),
                 SRF_HELP + " For the output's marking of measured and extrapolated bands (COFUSION_DETAIL); empty: "
                 "the HRMSI's band metadata, else no marking.", advanced=True)
        self.add(fused_output_parameter(self.OUTPUT, self.tr), "The output GeoTIFF (.tif).")
        self.add(fuse_area_parameter(self.REGION, self.tr),
                 "Fuse only this extent (any CRS: the map canvas, a layer's or a polygon's extent); the method's "
                 "weights are fitted on the blocks under it. Empty: the whole area both inputs cover.")

    def execute(self, parameters, context, feedback) -> dict:
        from ...core.classic_raster import fuse_classic_raster

        lrhsi = raster_path(self, parameters, self.LRHSI, context)
        hrmsi = raster_path(self, parameters, self.HRMSI, context)
        method = self.parameterAsEnumString(parameters, self.METHOD, context)
        out = fuse_classic_raster(
            lrhsi, hrmsi, output_raster(self, parameters, self.OUTPUT, context), method,
            srf=self.parameterAsString(parameters, self.SRF, context) or None,
            region=output_extent_window(self, parameters, self.REGION, context, lrhsi, hrmsi),
            progress=progress(feedback), cancel=feedback.isCanceled)
        present(context, str(out), SPECTRAL, f"{method.upper()} fused", lrhsi)
        return {self.OUTPUT: str(out)}
