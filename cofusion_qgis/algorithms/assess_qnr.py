# SPDX-License-Identifier: GPL-2.0-or-later
"""``cofusion:assess_qnr``: no-reference quality of a fusion of a real pair (D_lambda, D_s, QNR)."""
from __future__ import annotations

from qgis.core import QgsProcessingOutputNumber

from .base import QUALITY, CoFusionAlgorithm
from .params import fused_parameter, hrmsi_parameter, lrhsi_parameter, raster_path
from .tables import TABLE_HELP, metrics_table_parameter, write_metrics_table

INDICES = ("D_lambda", "D_s", "QNR")


class AssessQnrAlgorithm(CoFusionAlgorithm):
    ID = "assess_qnr"
    LABEL = "Assess fusion without reference (QNR)"
    GROUP = QUALITY
    TAGS = ("QNR", "no reference", "without reference", "D_lambda", "D_s", "spectral distortion", "spatial distortion")
    DESCRIPTION = (
        "Quality with no reference, for fusions of real pairs: the spectral distortion D_lambda (band-to-band "
        "quality indices of the fused image against those of the LRHSI), the spatial distortion D_s (fused bands "
        "against HRMSI bands, at both resolutions) and QNR = (1 - D_lambda)(1 - D_s); 0, 0 and 1 are best. The "
        "rasters are read whole (evaluation crops). Bad bands (flagged bbl = 0, nodata everywhere or constant) "
        "are left out; the log names them.")
    FUSED, LRHSI, HRMSI, OUTPUT_TABLE = "FUSED", "LRHSI", "HRMSI", "OUTPUT_TABLE"

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 (QGIS API name)
        self.add(fused_parameter(self.FUSED, self.tr), "The fused raster, as 'Fuse' wrote it from this pair.")
        self.add(lrhsi_parameter(self.LRHSI, self.tr), "The LRHSI the fusion started from.")
        self.add(hrmsi_parameter(self.HRMSI, self.tr), "The HRMSI the fusion started from.")
        self.add(metrics_table_parameter(self.OUTPUT_TABLE, self.tr("Quality table")), TABLE_HELP)
        for name in INDICES:
            self.addOutput(QgsProcessingOutputNumber(name, name))

    def execute(self, parameters, context, feedback) -> dict:
        from ...core.assess import UNITS, assess_no_reference

        feedback.setProgressText("computing D_lambda, D_s and QNR")
        indices = assess_no_reference(*(raster_path(self, parameters, name, context)
                                        for name in (self.FUSED, self.LRHSI, self.HRMSI)))
        table = write_metrics_table(self, parameters, self.OUTPUT_TABLE, context, indices, UNITS)
        skipped = getattr(indices, "skipped", "")
        if skipped:
            feedback.pushInfo(f"Bad bands skipped (left out of every index): {skipped}")
        for name in INDICES:
            feedback.pushInfo(f"{name}: {indices[name]:.4f}")
        return {self.OUTPUT_TABLE: table, **{name: float(indices[name]) for name in INDICES}}
