# SPDX-License-Identifier: GPL-2.0-or-later
"""``cofusion:fit_and_fuse``: fit a CoFusion model on the pair (pair-mode training), then fuse the pair with it."""
from __future__ import annotations

from qgis.core import (
    QgsProcessingException,
    QgsProcessingOutputFile,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
)

from ...core.errors import CoFusionError
from ...core.service import FusionRequest
from .base import FUSION, CoFusionAlgorithm
from .layer_outputs import SPECTRAL, present
from .params import (
    DEVICE_HELP,
    HRMSI_HELP,
    LRHSI_HELP,
    device_parameter,
    fine_tune_parameter,
    fuse_area_parameter,
    fused_output_parameter,
    hrmsi_parameter,
    lrhsi_parameter,
    optional_double,
    optional_int,
    output_extent_window,
    output_raster,
    progress,
    raster_path,
    threads_parameter,
    training_area_parameter,
)

#: The training budget's default (minutes), ``core.fit.DEFAULT_FIT_MINUTES``: a test checks that they are equal
#: (core.fit is importable without PyTorch, but the parameters are declared before anything else is imported).
DEFAULT_MINUTES = 5.0


class FitAndFuseAlgorithm(CoFusionAlgorithm):
    ID = "fit_and_fuse"
    LABEL = "Fit a model on the pair and fuse (CoFusion network)"
    GROUP = FUSION
    TAGS = ("CoFusion", "deep learning", "neural network", "train", "fit", "fine-tune", "self-supervised",
            "own sensors", "model")
    DESCRIPTION = (
        "For a pair that no model at hand fits (other sensors, bands or scale): trains a CoFusion network on the "
        "pair itself by reduced-resolution self-supervision (both rasters degraded by the scale, the network learns "
        "to recover the LRHSI; the multispectral response is estimated from the pair), then fuses the pair at full "
        "resolution with it, and keeps the model. The model kept scores at least as well (validation PSNR) as the "
        "network's classical base, its starting point, on a validation strip the training never sees. The budget "
        "is the training's; reading the pair before it and the fusion after it come on top. The fitted model is also "
        "scored against the classical methods (GSA, LLR, MTF-GLP-HPM, the blend, bicubic) on the same strip: where "
        "one of them scores higher, the pair is fused with it instead, and the log says so. A model that fits the "
        "pair's bands and scale can be fine-tuned instead of training from scratch. Canceling, or any error, leaves "
        "no model and no output. The model can fuse other scenes of the same sensors with 'Fuse'.")
    LRHSI, HRMSI, MINUTES, ITERATIONS = "LRHSI", "HRMSI", "MINUTES", "ITERATIONS"
    REGION, TRAINING_REGION, DEVICE, START_FROM, THREADS = "REGION", "TRAINING_REGION", "DEVICE", "START_FROM", \
        "THREADS"
    OUTPUT, OUTPUT_MODEL, OUTPUT_LOG = "OUTPUT", "OUTPUT_MODEL", "OUTPUT_LOG"

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 (QGIS API name)
        self.add(lrhsi_parameter(self.LRHSI, self.tr), LRHSI_HELP)
        self.add(hrmsi_parameter(self.HRMSI, self.tr), HRMSI_HELP)
        self.add(QgsProcessingParameterNumber(self.MINUTES, self.tr("Training budget (minutes)"),
                                              type=QgsProcessingParameterNumber.Double,
                                              defaultValue=DEFAULT_MINUTES),
                 "Wall-clock minutes of training, above 0 (5 fits a model in about 6 minutes on two CPU cores); "
                 "0: no time budget, then give iterations.")
        self.add(fuse_area_parameter(self.REGION, self.tr),
                 "Fuse only this extent (any CRS); empty: the whole area both inputs cover.")
        self.add(training_area_parameter(self.TRAINING_REGION, self.tr),
                 "Train on this extent only (any CRS); the validation strip is carved from inside it. Empty: the whole "
                 "pair.")
        self.add(fused_output_parameter(self.OUTPUT, self.tr), "The output GeoTIFF (.tif).")
        self.add(QgsProcessingParameterFileDestination(self.OUTPUT_MODEL, self.tr("Fitted model"),
                                                       fileFilter="CoFusion model (*.safetensors)"),
                 "The fitted model (.safetensors), for 'Fuse' on other scenes of these sensors; its training log is "
                 "written beside it as .log.csv.")
        self.add(QgsProcessingParameterNumber(self.ITERATIONS, self.tr("Iterations"), minValue=0, optional=True),
                 "Training steps; with minutes, whichever ends first. Empty or 0: no step budget.", advanced=True)
        self.add(fine_tune_parameter(self.START_FROM, self.tr),
                 "A CoFusion model (.safetensors) with the pair's hyperspectral and multispectral band counts and "
                 "scale, trained further on this pair instead of a fresh network; empty: train from scratch.")
        self.add(threads_parameter(self.THREADS, self.tr),
                 "CPU threads of the training and the fusion; empty: every core available.", advanced=True)
        self.add(device_parameter(self.DEVICE, self.tr), "Where training and fusion run: " + DEVICE_HELP,
                 advanced=True)
        self.addOutput(QgsProcessingOutputFile(self.OUTPUT_LOG, self.tr("Training log (CSV table)")))
        for name, label in (("PSNR", "Validation PSNR of the fitted model"),
                            ("BASE_PSNR", "Validation PSNR of the classical base")):
            self.addOutput(QgsProcessingOutputNumber(name, self.tr(label)))

    def budget(self, parameters, context) -> tuple[float | None, int | None]:
        """(minutes, iterations): MINUTES and ITERATIONS, 0 or empty meaning no budget of that kind."""
        return (optional_double(self, parameters, self.MINUTES, context) or None,
                optional_int(self, parameters, self.ITERATIONS, context) or None)

    def checkParameterValues(self, parameters, context):  # noqa: N802 (QGIS API name)
        """QGIS's checks, then the training budget's (``TrainSettings``): the dialog refuses a zero budget before
        Run, with the command line's message."""
        ok, message = super().checkParameterValues(parameters, context)
        if not ok:
            return ok, message
        minutes, iterations = self.budget(parameters, context)
        if minutes is None and iterations is None:
            return False, self.tr("Give a training budget above 0: minutes (MINUTES) or iterations (ITERATIONS).")
        try:
            from ...training.trainer import TrainSettings
        except ImportError:  # runtime dependencies missing: processAlgorithm names them
            return ok, message
        try:
            TrainSettings(minutes=minutes, iterations=iterations)
        except CoFusionError as exc:
            return False, str(exc)
        return ok, message

    def execute(self, parameters, context, feedback) -> dict:
        from ...core import fit

        minutes, iterations = self.budget(parameters, context)
        if minutes is None and iterations is None:  # checkParameterValues says so before Run; a script may not
            raise QgsProcessingException("Give a training budget above 0: minutes (MINUTES) or iterations "
                                         "(ITERATIONS).")
        lrhsi, hrmsi = (raster_path(self, parameters, name, context) for name in (self.LRHSI, self.HRMSI))
        device = self.parameterAsEnumString(parameters, self.DEVICE, context)
        request = FusionRequest(lrhsi, hrmsi, output_raster(self, parameters, self.OUTPUT, context), device=device,
                                region=output_extent_window(self, parameters, self.REGION, context, lrhsi, hrmsi))
        model_out = self.parameterAsFileOutput(parameters, self.OUTPUT_MODEL, context)
        result = fit.fit_and_fuse(
            request, model_out, minutes=minutes, iterations=iterations, device=device,
            threads=optional_int(self, parameters, self.THREADS, context),
            start_from=self.parameterAsFile(parameters, self.START_FROM, context) or None,
            training_region=output_extent_window(self, parameters, self.TRAINING_REGION, context, lrhsi, hrmsi),
            progress=progress(feedback), cancel=feedback.isCanceled)
        present(context, str(result.out_path), SPECTRAL, "CoFusion fitted and fused", request.lrhsi)
        base = result.base_metrics.get("PSNR", float("nan"))
        kept = "the classical base itself" if result.kept_base else f"step {result.steps}"
        feedback.pushInfo(f"Fitted {result.model} in {result.training.steps} steps, kept {kept}: validation PSNR "
                          f"{result.metrics.get('PSNR', float('nan')):.2f} dB (the classical base {base:.2f} dB). "
                          f"Fused {result.fusion.width} x {result.fusion.height} pixels (x{result.fusion.scale}); "
                          f"{result.seconds:.0f} s in all.")
        if result.used != "model":
            feedback.reportError(f"The classical method {result.used} scored above the fitted model on the "
                                 f"validation strip, so the pair was fused with {result.used}; the model is kept.",
                                 fatalError=False)
        return {self.OUTPUT: str(result.out_path), self.OUTPUT_MODEL: str(result.model),
                self.OUTPUT_LOG: str(result.log), "PSNR": float(result.metrics.get("PSNR", float("nan"))),
                "BASE_PSNR": float(base)}
