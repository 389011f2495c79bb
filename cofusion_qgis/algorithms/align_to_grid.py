# SPDX-License-Identifier: GPL-2.0-or-later
"""``cofusion:align_to_grid``: warp an HRMSI onto the exact refinement of an LRHSI's grid."""
from __future__ import annotations

from qgis.core import (
    QgsProcessingParameterRasterDestination,
)

from ...core.align import RESAMPLING
from ...core.scale import MAX_SCALE, MIN_SCALE
from .base import FUSION, CoFusionAlgorithm
from .layer_outputs import SPECTRAL, present
from .params import (
    choice_parameter,
    hrmsi_parameter,
    lrhsi_parameter,
    optional_int,
    output_raster,
    progress,
    raster_path,
    scale_parameter,
)


class AlignToGridAlgorithm(CoFusionAlgorithm):
    ID = "align_to_grid"
    LABEL = "Align HRMSI to LRHSI grid"
    GROUP = FUSION
    TAGS = ("align", "coregistration", "co-registration", "resample", "warp", "grid", "snap")
    DESCRIPTION = (
        "Warps a multispectral raster onto the grid fusion needs: the LRHSI's CRS, origin and extent, with pixels "
        "'scale' times smaller than the LRHSI's, so every LRHSI pixel covers exactly scale x scale HRMSI pixels. "
        "Run it when 'Fuse' reports that the inputs are not co-registered.")
    LRHSI, HRMSI, SCALE, RESAMPLING, OUTPUT = "LRHSI", "HRMSI", "SCALE", "RESAMPLING", "OUTPUT"

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 (QGIS API name)
        self.add(lrhsi_parameter(self.LRHSI, self.tr),
                 "The LRHSI whose grid the output refines (it needs a CRS and a north-up grid).")
        self.add(hrmsi_parameter(self.HRMSI, self.tr), "The HRMSI to warp.")
        self.add(scale_parameter(self.SCALE, self.tr, optional=True),
                 f"LRHSI pixel size / output pixel size, an integer from {MIN_SCALE} to {MAX_SCALE}; empty: the "
                 "ratio of the two rasters' pixel sizes, rounded to the nearest scale in that range (same CRS "
                 "only).")
        self.add(choice_parameter(self.RESAMPLING, self.tr("Resampling"), RESAMPLING, "cubic"),
                 f"GDAL resampling method: one of {', '.join(RESAMPLING)}.")
        self.add(QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Aligned HRMSI")),
                 "The warped HRMSI GeoTIFF.")

    def execute(self, parameters, context, feedback) -> dict:
        from ...core.align import align_to_grid

        hrmsi = raster_path(self, parameters, self.HRMSI, context)
        out = align_to_grid(
            raster_path(self, parameters, self.LRHSI, context), hrmsi,
            output_raster(self, parameters, self.OUTPUT, context), optional_int(self, parameters, self.SCALE, context),
            resampling=self.parameterAsEnumString(parameters, self.RESAMPLING, context),
            progress=progress(feedback), cancel=feedback.isCanceled)
        present(context, str(out), SPECTRAL, "Aligned HRMSI", hrmsi)
        return {self.OUTPUT: str(out)}
