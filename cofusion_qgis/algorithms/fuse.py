# SPDX-License-Identifier: GPL-2.0-or-later
"""``cofusion:fuse``: CoFusion deep fusion of an LRHSI and an HRMSI with a checkpoint, streamed tile by tile."""
from __future__ import annotations

from qgis.core import (
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
)

from ...core import service
from ...core.fuse import DEFAULT_BATCH
from ...core.service import FusionRequest, model_file
from .base import FUSION, CoFusionAlgorithm
from .layer_outputs import SPECTRAL, present
from .params import (
    DEVICE_HELP,
    HRMSI_HELP,
    LRHSI_HELP,
    device_parameter,
    fuse_area_parameter,
    fused_output_parameter,
    hrmsi_parameter,
    lrhsi_parameter,
    optional_int,
    output_extent_window,
    output_raster,
    overlap_parameter,
    progress,
    raster_path,
    tile_size_parameter,
)


class FuseAlgorithm(CoFusionAlgorithm):
    ID = "fuse"
    LABEL = "Fuse (CoFusion network)"
    GROUP = FUSION
    TAGS = ("CoFusion", "deep learning", "neural network", "network")
    DESCRIPTION = (
        "Fuses a low-resolution hyperspectral raster (LRHSI) with a co-registered high-resolution multispectral "
        "raster (HRMSI) into a float32 GeoTIFF with the LRHSI's bands on the HRMSI's grid, with a CoFusion "
        "network. The scene streams through in tiles (memory does not grow with the scene); overlapping tiles "
        "are blended so no seam shows. The output keeps the georeferencing, the wavelengths and a nodata value; "
        "a canceled or failed run leaves no file.")
    LRHSI, HRMSI, MODEL, OUTPUT = "LRHSI", "HRMSI", "MODEL", "OUTPUT"
    TILE_SIZE, OVERLAP, BATCH_SIZE, DEVICE, REGION = "TILE_SIZE", "OVERLAP", "BATCH_SIZE", "DEVICE", "REGION"

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 (QGIS API name)
        self.add(lrhsi_parameter(self.LRHSI, self.tr), LRHSI_HELP)
        self.add(hrmsi_parameter(self.HRMSI, self.tr), HRMSI_HELP)
        self.add(QgsProcessingParameterFile(self.MODEL, self.tr("CoFusion model"), extension="safetensors",
                                            optional=True),
                 "A CoFusion checkpoint (.safetensors) trained for these band counts and scale; empty: the model "
                 "bundled with the plugin.")
        self.add(fused_output_parameter(self.OUTPUT, self.tr), "The output GeoTIFF (.tif).")
        self.add(fuse_area_parameter(self.REGION, self.tr),
                 "Fuse only this extent (any CRS: the map canvas, a layer's or a polygon's extent); its pixels equal "
                 "those of a whole run. Empty: the whole area both inputs cover.")
        self.add(tile_size_parameter(self.TILE_SIZE, self.tr),
                 "Edge of the square tiles the model runs on, in output pixels; a multiple of the model's "
                 "alignment (16). Empty: 288.", advanced=True)
        self.add(overlap_parameter(self.OVERLAP, self.tr),
                 "Output pixels shared by neighbouring tiles, blended smoothly; a multiple of the alignment, at "
                 "most half the tile. Empty: 32.", advanced=True)
        self.add(QgsProcessingParameterNumber(self.BATCH_SIZE, self.tr("Batch size (tiles)"), minValue=1,
                                              defaultValue=DEFAULT_BATCH),
                 "Tiles per model call: more is faster on a GPU and needs more memory.", advanced=True)
        self.add(device_parameter(self.DEVICE, self.tr), "Where the model runs: " + DEVICE_HELP, advanced=True)

    def execute(self, parameters, context, feedback) -> dict:
        lrhsi, hrmsi = (raster_path(self, parameters, name, context) for name in (self.LRHSI, self.HRMSI))
        request = FusionRequest(
            lrhsi, hrmsi, output_raster(self, parameters, self.OUTPUT, context),
            region=output_extent_window(self, parameters, self.REGION, context, lrhsi, hrmsi),
            model=self.parameterAsFile(parameters, self.MODEL, context) or None,
            device=self.parameterAsEnumString(parameters, self.DEVICE, context),
            tile=optional_int(self, parameters, self.TILE_SIZE, context),
            overlap=optional_int(self, parameters, self.OVERLAP, context),
            batch=self.parameterAsInt(parameters, self.BATCH_SIZE, context))
        feedback.pushInfo(f"Model: {model_file(request.model)}")
        result = service.fuse(request, progress=progress(feedback), cancel=feedback.isCanceled)
        present(context, str(result.out_path), SPECTRAL, "CoFusion fused", request.lrhsi)
        feedback.pushInfo(f"Fused {result.width} x {result.height} pixels (x{result.scale}, {result.tiles} tiles) "
                          f"in {result.seconds:.1f} s")
        return {self.OUTPUT: str(result.out_path)}
