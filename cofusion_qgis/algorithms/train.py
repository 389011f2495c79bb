# SPDX-License-Identifier: GPL-2.0-or-later
"""``cofusion:train``: train a CoFusion model on the user's own scenes (reference mode or pair mode)."""
from __future__ import annotations

from qgis.core import (
    QgsProcessingException,
    QgsProcessingOutputFile,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
)

from ...core.errors import CoFusionError
from .base import TRAINING, CoFusionAlgorithm
from .params import (
    DEVICE_HELP,
    SRF_HELP,
    choice_parameter,
    device_parameter,
    extent_window,
    fine_tune_parameter,
    hrmsi_parameter,
    lrhsi_parameter,
    optional_double,
    optional_int,
    progress,
    raster_path,
    reference_parameter,
    scale_parameter,
    srf_parameter,
    threads_parameter,
    training_area_parameter,
)

MODES = ("pair", "reference")


class TrainAlgorithm(CoFusionAlgorithm):
    ID = "train"
    LABEL = "Train CoFusion model"
    GROUP = TRAINING
    TAGS = ("train", "retrain", "model", "checkpoint")
    DESCRIPTION = (
        "Trains a CoFusion network (loss: L1 weighted per band by the classical base's error + 0.1 (1 - SSIM); AdamW) "
        "and keeps the checkpoint with the best "
        "validation PSNR, measured on a strip of the scene that is never trained on. Mode 'pair': a real "
        "co-registered LRHSI + HRMSI pair, no reference needed; both are degraded by the scale and the network "
        "learns to recover the LRHSI, then fuses at full resolution. Mode 'reference': a high-resolution "
        "hyperspectral scene from which pairs are simulated with Wald's protocol (needs SRF and SCALE). The budget "
        "is a number of iterations, minutes, or both (whichever ends first). Canceling keeps the best checkpoint "
        "so far; running again with the same settings resumes.")
    MODE, REFERENCE, LRHSI, HRMSI, SRF, SCALE = "MODE", "REFERENCE", "LRHSI", "HRMSI", "SRF", "SCALE"
    ITERATIONS, MINUTES, OUTPUT_MODEL, OUTPUT_LOG = "ITERATIONS", "MINUTES", "OUTPUT_MODEL", "OUTPUT_LOG"
    BATCH_SIZE, PATCH_SIZE, DEVICE, REGION = "BATCH_SIZE", "PATCH_SIZE", "DEVICE", "REGION"
    INIT, THREADS = "INIT", "THREADS"
    #: The inputs each mode needs, with how the message names them.
    NEEDS = {"reference": ((REFERENCE, "REFERENCE (a high-resolution hyperspectral raster)"),
                           (SRF, "SRF (the MSI sensor, e.g. sentinel2a:B2,B3,B4,B8)")),
             "pair": ((LRHSI, "LRHSI"), (HRMSI, "HRMSI (a co-registered pair)"))}

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 (QGIS API name)
        self.add(choice_parameter(self.MODE, self.tr("Mode"), MODES),
                 "pair: train on a real LRHSI + HRMSI pair; reference: simulate pairs from a hyperspectral "
                 "reference.")
        self.add(reference_parameter(self.REFERENCE, self.tr, optional=True),
                 "Reference mode: the high-resolution hyperspectral scene, with band wavelengths.")
        self.add(lrhsi_parameter(self.LRHSI, self.tr, optional=True), "Pair mode: the LRHSI.")
        self.add(hrmsi_parameter(self.HRMSI, self.tr, optional=True), "Pair mode: the co-registered HRMSI.")
        self.add(srf_parameter(self.SRF, self.tr("MSI spectral response"), optional=True),
                 SRF_HELP + " Required in reference mode; in pair mode, empty estimates it from the pair.")
        self.add(scale_parameter(self.SCALE, self.tr),
                 "Reference mode: HR pixels per LR pixel of the simulated pairs (pair mode takes the pair's).")
        self.add(training_area_parameter(self.REGION, self.tr),
                 "Train on this extent only (any CRS: a layer's extent, the map canvas, a drawn rectangle); the "
                 "validation strip is carved from inside it. Empty: the whole scene.")
        self.add(QgsProcessingParameterNumber(self.ITERATIONS, self.tr("Iterations"), minValue=0,
                                              defaultValue=2000),
                 "Optimisation steps; 0: no step budget (then give minutes).")
        self.add(QgsProcessingParameterNumber(self.MINUTES, self.tr("Time budget (minutes)"), minValue=0,
                                              type=QgsProcessingParameterNumber.Double, optional=True),
                 "Wall-clock budget; empty: none.")
        self.add(QgsProcessingParameterFileDestination(self.OUTPUT_MODEL, self.tr("Output model"),
                                                       fileFilter="CoFusion model (*.safetensors)"),
                 "The checkpoint to write (.safetensors); its training log is written beside it as .log.csv.")
        self.add(QgsProcessingParameterNumber(self.BATCH_SIZE, self.tr("Batch size (patches)"), minValue=1,
                                              optional=True), "Patches per step; empty: 8.", advanced=True)
        self.add(QgsProcessingParameterNumber(self.PATCH_SIZE, self.tr("Patch size (HR pixels)"), minValue=16,
                                              optional=True),
                 "Edge of the training patches, a multiple of the model's alignment (16 at x2, x4, x8; 48 at x3, x6); "
                 "empty: the multiple nearest 64.", advanced=True)
        self.add(fine_tune_parameter(self.INIT, self.tr),
                 "A CoFusion model (.safetensors) with these band counts and scale, trained further instead of a "
                 "fresh network; empty: train from scratch.", advanced=True)
        self.add(device_parameter(self.DEVICE, self.tr), "Where training runs: " + DEVICE_HELP, advanced=True)
        self.add(threads_parameter(self.THREADS, self.tr),
                 "CPU threads of the training; empty: every core available.", advanced=True)
        self.addOutput(QgsProcessingOutputFile(self.OUTPUT_LOG, self.tr("Training log (CSV table)")))
        for name in ("PSNR", "SAM"):
            self.addOutput(QgsProcessingOutputNumber(name, f"Validation {name}"))

    def train_settings(self, parameters, context):
        """The run's ``TrainSettings`` (ITERATIONS 0 and an empty or 0 MINUTES mean no budget of that kind);
        InputError for a bad combination, with the message the CLI gives."""
        from ...training.trainer import TrainSettings

        extra = {k: v for k, v in {"batch_size": optional_int(self, parameters, self.BATCH_SIZE, context),
                                   "patch": optional_int(self, parameters, self.PATCH_SIZE, context),
                                   "threads": optional_int(self, parameters, self.THREADS, context)}.items()
                 if v is not None}
        return TrainSettings(iterations=self.parameterAsInt(parameters, self.ITERATIONS, context) or None,
                             minutes=optional_double(self, parameters, self.MINUTES, context) or None,
                             device=self.parameterAsEnumString(parameters, self.DEVICE, context), **extra)

    def checkParameterValues(self, parameters, context):  # noqa: N802 (QGIS API name)
        """QGIS's checks, then the mode's inputs (every input is optional for QGIS, since each mode needs
        others), then the training settings' (``TrainSettings``, and in reference mode the patch size against
        the scale): the dialog refuses a missing input, a bad budget or patch before Run, with the CLI's message."""
        ok, message = super().checkParameterValues(parameters, context)
        if not ok:
            return ok, message
        mode = self.parameterAsEnumString(self.preprocessParameters(parameters), self.MODE, context)
        missing = [label for name, label in self.NEEDS[mode] if parameters.get(name) in (None, "")]
        if missing:
            return False, f"{mode.capitalize()} mode needs {' and '.join(missing)}."
        try:
            from ...training.api import check_patch
        except ImportError:  # runtime dependencies missing: processAlgorithm names them
            return ok, message
        try:
            settings = self.train_settings(parameters, context)
            if mode == "reference":
                check_patch(settings, self.parameterAsInt(parameters, self.SCALE, context))
        except CoFusionError as exc:
            return False, str(exc)
        return ok, message

    def execute(self, parameters, context, feedback) -> dict:
        from ...training.api import train_pair, train_reference

        mode = self.parameterAsEnumString(parameters, self.MODE, context)
        srf = self.parameterAsString(parameters, self.SRF, context) or None
        settings = self.train_settings(parameters, context)
        out = self.parameterAsFileOutput(parameters, self.OUTPUT_MODEL, context)
        hooks = {"settings": settings, "progress": progress(feedback), "cancel": feedback.isCanceled,
                 "init": self.parameterAsFile(parameters, self.INIT, context) or None}
        missing = [label for name, label in self.NEEDS[mode] if parameters.get(name) in (None, "")]
        if missing:  # checkParameterValues says so before Run; a script may call processAlgorithm directly
            raise QgsProcessingException(f"{mode.capitalize()} mode needs {' and '.join(missing)}.")
        if mode == "reference":
            reference = raster_path(self, parameters, self.REFERENCE, context)
            hooks["region"] = extent_window(self, parameters, self.REGION, context, reference)
            result = train_reference([reference], srf, self.parameterAsInt(parameters, self.SCALE, context), out,
                                     **hooks)
        else:
            lrhsi, hrmsi = (raster_path(self, parameters, n, context) for n in (self.LRHSI, self.HRMSI))
            hooks["region"] = extent_window(self, parameters, self.REGION, context, hrmsi)
            result = train_pair(lrhsi, hrmsi, out, srf=srf, **hooks)
        feedback.pushInfo(f"{result.steps} steps in {result.seconds:.0f} s; best validation: "
                          + ", ".join(f"{k} {v:.3f}" for k, v in result.metrics.items()))
        return {self.OUTPUT_MODEL: str(result.checkpoint), self.OUTPUT_LOG: str(result.log),
                **{k: float(result.metrics[k]) for k in ("PSNR", "SAM") if k in result.metrics}}
