# SPDX-License-Identifier: GPL-2.0-or-later
"""``cofusion:assess``: reference metrics of a fused raster, as a table, an HTML report, a SAM map and numbers."""
from __future__ import annotations

import html
from pathlib import Path

from qgis.core import (
    QgsProcessingOutputNumber,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from .base import QUALITY, CoFusionAlgorithm
from .layer_outputs import MAP, present
from .params import fused_parameter, html_report_parameter, optional_double, output_raster, raster_path
from .tables import TABLE_HELP, metrics_table_parameter, write_metrics_table

#: The metrics returned as numbers (core.metrics.reference_metrics).
METRICS = ("PSNR", "SSIM", "SAM", "ERGAS", "RMSE")


def html_report(title: str, rows: list[tuple[str, str]], metrics: dict, units: dict) -> str:
    """A small self-contained HTML page: the inputs (label, value) and the metrics table."""
    inputs = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    values = "".join(f"<tr><th>{k}</th><td>{v:.4f}</td><td>{units.get(k, '')}</td></tr>" for k, v in metrics.items())
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head><body>"
            f"<h1>{html.escape(title)}</h1><table>{inputs}</table><h2>Metrics</h2>"
            f"<table><tr><th>metric</th><th>value</th><th>unit</th></tr>{values}</table></body></html>\n")


class AssessAlgorithm(CoFusionAlgorithm):
    ID = "assess"
    LABEL = "Assess fusion against a reference"
    GROUP = QUALITY
    TAGS = ("PSNR", "SSIM", "SAM", "spectral angle", "spectral angle mapper", "ERGAS", "RMSE", "reference")
    DESCRIPTION = (
        "Compares a fused hyperspectral raster with a reference of the same grid and bands (e.g. the scene a pair "
        "was simulated from with Wald's protocol): PSNR (dB, mean over bands), SSIM, SAM (degrees), ERGAS and "
        "RMSE, computed on data divided by the data range. Nodata pixels of either raster are left out, and so "
        "are bad bands (flagged bbl = 0, nodata everywhere or constant in either raster; the log names them). "
        "Writes a table, an HTML report and a map of the per-pixel spectral angle; the metrics are also results.")
    FUSED, REFERENCE, SCALE, DATA_RANGE = "FUSED", "REFERENCE", "SCALE", "DATA_RANGE"
    OUTPUT_TABLE, OUTPUT_REPORT, OUTPUT_SAM_MAP = "OUTPUT_TABLE", "OUTPUT_REPORT", "OUTPUT_SAM_MAP"

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 (QGIS API name)
        self.add(fused_parameter(self.FUSED, self.tr), "The fused high-resolution hyperspectral raster.")
        self.add(QgsProcessingParameterRasterLayer(self.REFERENCE, self.tr("Reference raster")),
                 "The true high-resolution hyperspectral raster: same size and bands as the fused one.")
        self.add(QgsProcessingParameterNumber(self.SCALE, self.tr("Scale factor"), minValue=1, defaultValue=4),
                 "HR pixels per LR pixel of the fused pair (used by ERGAS).")
        self.add(QgsProcessingParameterNumber(self.DATA_RANGE, self.tr("Data range"), minValue=0,
                                              type=QgsProcessingParameterNumber.Double, optional=True),
                 "The value that maps to 1 before the metrics (e.g. 10000 for scaled reflectance); empty: the "
                 "reference's largest value.", advanced=True)
        self.add(metrics_table_parameter(self.OUTPUT_TABLE, self.tr("Metrics table")), TABLE_HELP)
        self.add(html_report_parameter(self.OUTPUT_REPORT, self.tr), "An HTML page with the inputs and the metrics.")
        self.add(QgsProcessingParameterRasterDestination(self.OUTPUT_SAM_MAP, self.tr("SAM error map")),
                 "The spectral angle between fused and reference spectra at every pixel, in degrees.")
        for name in METRICS:
            self.addOutput(QgsProcessingOutputNumber(name, name))

    def execute(self, parameters, context, feedback) -> dict:
        from ...core.assess import UNITS, assess_reference

        fused = raster_path(self, parameters, self.FUSED, context)
        reference = raster_path(self, parameters, self.REFERENCE, context)
        sam_path = output_raster(self, parameters, self.OUTPUT_SAM_MAP, context)
        data_range = optional_double(self, parameters, self.DATA_RANGE, context)
        feedback.setProgressText("computing the metrics")
        result = assess_reference(fused, reference, self.parameterAsInt(parameters, self.SCALE, context),
                                  data_range=data_range, sam_map_path=sam_path)
        table = write_metrics_table(self, parameters, self.OUTPUT_TABLE, context, result.metrics, UNITS)
        report = self.parameterAsFileOutput(parameters, self.OUTPUT_REPORT, context)
        Path(report).write_text(html_report("CoFusion quality report", [
            ("Fused", fused), ("Reference", reference), ("Data range", f"{result.data_range:g}"),
            ("Valid pixels", str(result.valid_pixels)),
            ("Bands skipped", result.skipped if result.skipped_bands else "none")], result.metrics, UNITS),
            encoding="utf-8")
        if result.skipped_bands:
            feedback.pushInfo(f"Bad bands skipped (left out of every metric): {result.skipped}")
        for name in METRICS:
            feedback.pushInfo(f"{name}: {result.metrics[name]:.4f} {UNITS[name]}")
        feedback.setProgress(100)
        present(context, str(result.sam_map), MAP, "SAM (degrees)", fused)
        return {self.OUTPUT_TABLE: table, self.OUTPUT_REPORT: report, self.OUTPUT_SAM_MAP: str(result.sam_map),
                **{name: float(result.metrics[name]) for name in METRICS}}
