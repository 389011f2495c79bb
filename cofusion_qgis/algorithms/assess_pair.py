# SPDX-License-Identifier: GPL-2.0-or-later
"""``cofusion:assess_pair``: the quality report without ground truth of a fusion of a real pair
(``core.pair_report``): an HTML report, the consistency map and the numbers."""
from __future__ import annotations

from pathlib import Path

from qgis.core import (
    QgsProcessingOutputBoolean,
    QgsProcessingOutputFile,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterRasterDestination,
)

from .base import QUALITY, CoFusionAlgorithm
from .layer_outputs import MAP, present
from .params import (
    CLASSIC_METHODS,
    DEVICE_HELP,
    SRF_HELP,
    device_parameter,
    fused_parameter,
    hrmsi_parameter,
    html_report_parameter,
    lrhsi_parameter,
    output_raster,
    progress,
    raster_path,
    srf_parameter,
)

#: The full-resolution indices of the fused raster and the reduced-resolution scores of the method, as results.
INDICES = ("QNR", "D_lambda", "D_s", "HQNR")
REDUCED = ("PSNR", "SAM", "ERGAS")


class AssessPairAlgorithm(CoFusionAlgorithm):
    ID = "assess_pair"
    LABEL = "Assess fusion of a real pair (report without reference)"
    GROUP = QUALITY
    TAGS = ("QNR", "HQNR", "no reference", "without reference", "real pair", "reduced resolution", "Wald",
            "consistency", "bicubic", "report", "PSNR", "SAM", "ERGAS", "spectral angle")
    DESCRIPTION = (
        "A quality report for the fusion of a real pair, which has no high-resolution reference. (1) The "
        "reduced-resolution check: both inputs are degraded by the scale with the sensor model, the degraded pair is "
        "fused again with the same method (a classical METHOD, or the MODEL) and compared with the LRHSI: PSNR, SAM "
        "and ERGAS per band and overall, on valid pixels, always against plain bicubic upsampling; the report says "
        "plainly when the method does not beat bicubic. (2) D_lambda, D_s, QNR and HQNR of the fused raster at full "
        "resolution. (3) The consistency map: the fused raster degraded by the sensor model against the LRHSI, "
        "spectral angle and RMSE per LR pixel. Bands outside the HRMSI's spectral coverage (from the SRF, the "
        "HRMSI's band metadata or a response estimated from the pair) are scored apart as extrapolated. The HTML "
        "report is one self-contained page with its plots; a per-band CSV is written beside it.")
    LRHSI, HRMSI, FUSED, METHOD, MODEL = "LRHSI", "HRMSI", "FUSED", "METHOD", "MODEL"
    COMPARE, SRF, DEVICE = "COMPARE", "SRF", "DEVICE"
    OUTPUT_REPORT, OUTPUT_MAP = "OUTPUT_REPORT", "OUTPUT_MAP"

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 (QGIS API name)
        self.add(lrhsi_parameter(self.LRHSI, self.tr), "The LRHSI the fusion started from.")
        self.add(hrmsi_parameter(self.HRMSI, self.tr), "The HRMSI the fusion started from.")
        self.add(fused_parameter(self.FUSED, self.tr),
                 "The fused raster made from this pair (by 'Fuse' or 'Fuse (classical baselines)').")
        self.add(QgsProcessingParameterEnum(self.METHOD, self.tr("Classical method it was fused with"),
                                            options=list(CLASSIC_METHODS), optional=True, usesStaticStrings=True),
                 f"The classical method ({', '.join(CLASSIC_METHODS)}) the fused raster was made with, run again on "
                 "the degraded pair; empty when it was made with a CoFusion model.")
        self.add(QgsProcessingParameterFile(self.MODEL, self.tr("CoFusion model it was fused with"),
                                            extension="safetensors", optional=True),
                 "The CoFusion checkpoint (.safetensors) the fused raster was made with, when no METHOD is given; "
                 "both empty: the model bundled with the plugin.")
        self.add(html_report_parameter(self.OUTPUT_REPORT, self.tr),
                 "One self-contained HTML page: the verdict against bicubic, the summary, per-band plots, the "
                 "supported and extrapolated bands. A per-band CSV (NAME_per_band.csv) is written beside it.")
        self.add(QgsProcessingParameterRasterDestination(self.OUTPUT_MAP, self.tr("Consistency map")),
                 "On the LRHSI's grid: band 1 the spectral angle (degrees), band 2 the RMSE (LRHSI units) between the "
                 "fused raster degraded by the sensor model and the LRHSI.")
        self.add(QgsProcessingParameterEnum(self.COMPARE, self.tr("Also compare"), options=list(CLASSIC_METHODS),
                                            allowMultiple=True, optional=True, usesStaticStrings=True),
                 "More classical methods for the reduced-resolution check (bicubic always runs).", advanced=True)
        self.add(srf_parameter(self.SRF, self.tr("HRMSI spectral response"), optional=True),
                 SRF_HELP + " For the split into supported and extrapolated bands; empty: the HRMSI's band metadata "
                 "(wavelength and FWHM), else a response estimated from the pair.", advanced=True)
        self.add(device_parameter(self.DEVICE, self.tr), "Where a model runs: " + DEVICE_HELP, advanced=True)
        for name in INDICES:
            self.addOutput(QgsProcessingOutputNumber(name, f"{name} (full resolution)"))
        for name in REDUCED:
            self.addOutput(QgsProcessingOutputNumber(name, f"{name} (reduced resolution)"))
            self.addOutput(QgsProcessingOutputNumber(f"BICUBIC_{name}", f"bicubic {name} (reduced resolution)"))
        self.addOutput(QgsProcessingOutputBoolean("SHARPENS", "Beats bicubic"))
        self.addOutput(QgsProcessingOutputString("VERDICT", "Verdict"))
        self.addOutput(QgsProcessingOutputFile("OUTPUT_PER_BAND", "Per-band CSV"))

    def execute(self, parameters, context, feedback) -> dict:
        from ...core.errors import InputError
        from ...core.pair_report import pair_report
        from ...training.api import estimate_srf

        lrhsi, hrmsi, fused = (raster_path(self, parameters, name, context)
                               for name in (self.LRHSI, self.HRMSI, self.FUSED))
        method = self.parameterAsEnumString(parameters, self.METHOD, context) \
            if parameters.get(self.METHOD) not in (None, "") else ""
        model = self.parameterAsFile(parameters, self.MODEL, context) or ""
        if method and model:
            raise InputError(f"Give either the classical method ({method}) or the CoFusion model ({model}) the fused "
                             "raster was made with, not both.")
        compare = self.parameterAsEnumStrings(parameters, self.COMPARE, context) \
            if parameters.get(self.COMPARE) not in (None, "", []) else []
        report = Path(self.parameterAsFileOutput(parameters, self.OUTPUT_REPORT, context))
        if report.suffix.lower() not in (".html", ".htm"):
            report = report.with_suffix(".html")
        result = pair_report(
            lrhsi, hrmsi, fused, method or model or None, report.parent, compare=compare,
            srf=self.parameterAsString(parameters, self.SRF, context) or None, srf_estimator=estimate_srf,
            device=self.parameterAsEnumString(parameters, self.DEVICE, context), html_path=report,
            map_path=output_raster(self, parameters, self.OUTPUT_MAP, context),
            csv_path=report.with_name(f"{report.stem}_per_band.csv"), progress=progress(feedback),
            cancel=feedback.isCanceled)
        subject, baseline = result.candidates[result.subject], result.candidates["bicubic"]
        for line in result.verdict:
            feedback.pushInfo(line)
        feedback.pushInfo(f"Full resolution: QNR {result.qnr['QNR']:.4f} (D_lambda {result.qnr['D_lambda']:.4f}, "
                          f"D_s {result.qnr['D_s']:.4f}), HQNR {result.hqnr:.4f}")
        for note in result.notes:
            feedback.pushWarning(note)
        present(context, str(result.consistency_map), MAP, "Consistency (SAM degrees, RMSE)", fused)
        numbers = {"QNR": result.qnr["QNR"], "D_lambda": result.qnr["D_lambda"], "D_s": result.qnr["D_s"],
                   "HQNR": result.hqnr, "PSNR": subject.psnr, "SAM": subject.sam, "ERGAS": subject.ergas,
                   "BICUBIC_PSNR": baseline.psnr, "BICUBIC_SAM": baseline.sam, "BICUBIC_ERGAS": baseline.ergas}
        return {self.OUTPUT_REPORT: str(result.html), self.OUTPUT_MAP: str(result.consistency_map),
                "OUTPUT_PER_BAND": str(result.per_band_csv), "SHARPENS": bool(result.sharpens),
                "VERDICT": " ".join(result.verdict), **{k: float(v) for k, v in numbers.items()}}
