# SPDX-License-Identifier: GPL-2.0-or-later
"""``cofusion:batch_fuse``: the pairs of a manifest fused on Dask, each into a cloud-optimised GeoTIFF
(``core.batch``, the same batch as ``python -m cofusion batch``)."""
from __future__ import annotations

import os

from qgis.core import (
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFile,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from ...core.errors import Canceled
from ...core.tiling import DEFAULT_BLOCK
from .base import FUSION, CoFusionAlgorithm
from .params import DEVICE_HELP, device_parameter, optional_int, overlap_parameter, tile_size_parameter


class BatchFuseAlgorithm(CoFusionAlgorithm):
    ID = "batch_fuse"
    LABEL = "Batch fuse (manifest, Dask)"
    GROUP = FUSION
    DESCRIPTION = (
        "Fuses every pair of a manifest with CoFusion on Dask, each scene split into full-height stripes that run "
        "as parallel tasks, then put together into a cloud-optimised GeoTIFF (COG) equal to what 'Fuse (CoFusion "
        "network)' writes with the same settings. The manifest is a CSV file with the columns lrhsi, hrmsi, model "
        "(empty: the bundled model), output (relative to the output folder) and optionally method (a classical "
        "method such as gsa instead of a model); input paths are relative to the manifest's folder. A pair that "
        "fails is reported and does not stop the others; the run fails at the end if one did. A canceled or "
        "interrupted batch keeps its finished stripes in OUTPUT_FOLDER/.cofusion-batch: running it again computes "
        "only the others. Without a scheduler the work runs in threads of this QGIS process; give the address of a "
        "Dask scheduler to run it on a cluster (its workers must see the files under the same paths). Needs dask "
        "and distributed: pip install -r requirements-batch.txt in QGIS's Python.")
    MANIFEST, OUTPUT_FOLDER, WORKERS, SCHEDULER, DEVICE = "MANIFEST", "OUTPUT_FOLDER", "WORKERS", "SCHEDULER", "DEVICE"
    TILE_SIZE, OVERLAP, BLOCK_SIZE = "TILE_SIZE", "OVERLAP", "BLOCK_SIZE"
    WRITTEN, FAILED = "WRITTEN", "FAILED"

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 (QGIS API name)
        self.add(QgsProcessingParameterFile(self.MANIFEST, self.tr("Manifest (CSV)"), extension="csv"),
                 "The CSV of pairs: columns lrhsi, hrmsi, model, output (and optionally method), one line per pair.")
        self.add(QgsProcessingParameterFolderDestination(self.OUTPUT_FOLDER, self.tr("Output folder")),
                 "The folder the fused scenes are written to (each manifest output is relative to it).")
        self.add(QgsProcessingParameterNumber(self.WORKERS, self.tr("Workers"), minValue=1, optional=True),
                 "Tasks run at once on this machine (threads of QGIS's process). Empty: one per core. Ignored with "
                 "a scheduler.")
        self.add(QgsProcessingParameterString(self.SCHEDULER, self.tr("Dask scheduler address"), optional=True),
                 "A running Dask scheduler, e.g. tcp://host:8786. Empty: a local cluster in this process.")
        self.add(device_parameter(self.DEVICE, self.tr), "Where the model runs: " + DEVICE_HELP, advanced=True)
        self.add(tile_size_parameter(self.TILE_SIZE, self.tr),
                 "As for 'Fuse (CoFusion network)'. Empty: 288.", advanced=True)
        self.add(overlap_parameter(self.OVERLAP, self.tr),
                 "As for 'Fuse (CoFusion network)'. Empty: 32.", advanced=True)
        self.add(QgsProcessingParameterNumber(self.BLOCK_SIZE, self.tr("Stripe width (HR pixels)"), minValue=16,
                                              defaultValue=DEFAULT_BLOCK),
                 "Each scene is fused in full-height stripes of this width (rounded down to a multiple of tile - "
                 "overlap), one task each: narrower stripes spread a scene over more workers.", advanced=True)
        self.addOutput(QgsProcessingOutputNumber(self.WRITTEN, self.tr("Scenes written")))
        self.addOutput(QgsProcessingOutputNumber(self.FAILED, self.tr("Scenes failed")))

    def execute(self, parameters, context, feedback) -> dict:
        from ...core.batch import BatchSettings, run_batch

        folder = self.parameterAsString(parameters, self.OUTPUT_FOLDER, context)
        scheduler = self.parameterAsString(parameters, self.SCHEDULER, context).strip() or None

        def report(fraction: float, line: str) -> None:
            feedback.setProgress(100.0 * fraction)
            if "FAILED" in line:
                feedback.reportError(line, False)
            else:
                feedback.pushInfo(line)

        os.makedirs(folder, exist_ok=True)
        # QGIS's Python is no plain interpreter (sys.executable may be QGIS itself), so the local cluster is
        # threads of this process, not worker processes
        report_ = run_batch(self.parameterAsFile(parameters, self.MANIFEST, context), folder,
                            settings=BatchSettings(
                                device=self.parameterAsEnumString(parameters, self.DEVICE, context),
                                tile=optional_int(self, parameters, self.TILE_SIZE, context),
                                overlap=optional_int(self, parameters, self.OVERLAP, context),
                                block=self.parameterAsInt(parameters, self.BLOCK_SIZE, context)),
                            scheduler=scheduler, workers=optional_int(self, parameters, self.WORKERS, context),
                            processes=False, progress=report, cancel=feedback.isCanceled)
        feedback.pushInfo(report_.table())
        written = sum(1 for s in report_.scenes if s.status in ("written", "done before"))
        failed = [s for s in report_.scenes if s.status == "failed"]
        if report_.canceled:
            raise Canceled("The batch was canceled; the finished stripes are kept, and running it again computes "
                           "only the others.")
        if failed:
            raise QgsProcessingException(
                f"{len(failed)} of {len(report_.scenes)} pairs failed (the {written} others were written to "
                f"{folder}): " + "; ".join(f"line {s.line}: {s.error}" for s in failed))
        return {self.OUTPUT_FOLDER: folder, self.WRITTEN: written, self.FAILED: 0}
