# SPDX-License-Identifier: GPL-2.0-or-later
"""``cofusion:simulate``: Wald's protocol, an (LRHSI, HRMSI) pair from a high-resolution hyperspectral reference."""
from __future__ import annotations

from qgis.core import (
    QgsProcessingParameterRasterDestination,
)

from .base import SIMULATION, CoFusionAlgorithm
from .layer_outputs import SPECTRAL, present
from .params import SRF_HELP, output_raster, progress, raster_path, reference_parameter, scale_parameter, srf_parameter


class SimulateAlgorithm(CoFusionAlgorithm):
    ID = "simulate"
    LABEL = "Simulate LRHSI and HRMSI (Wald's protocol)"
    GROUP = SIMULATION
    TAGS = ("simulate", "synthetic pair")
    DESCRIPTION = (
        "Simulates the pair a fusion starts from out of a high-resolution hyperspectral reference: the LRHSI is the "
        "reference blurred by a Gaussian matched to a sensor MTF (gain 0.3 at the LR Nyquist frequency) and "
        "decimated by the scale; the HRMSI is the reference seen through the multispectral sensor's spectral "
        "responses. Fusing the pair and comparing with the reference ('Assess') measures a method's quality. The "
        "reference needs band wavelengths; it is cropped to a multiple of the scale.")
    REFERENCE, SRF, SCALE = "REFERENCE", "SRF", "SCALE"
    OUTPUT_LRHSI, OUTPUT_HRMSI = "OUTPUT_LRHSI", "OUTPUT_HRMSI"

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 (QGIS API name)
        self.add(reference_parameter(self.REFERENCE, self.tr),
                 "The high-resolution hyperspectral reference, with band wavelengths in its metadata.")
        self.add(srf_parameter(self.SRF, self.tr("MSI spectral response"), default="sentinel2a:B2,B3,B4,B8"),
                 SRF_HELP + " An imaging spectrometer (enmap, prisma, desis, emit) simulates that sensor's bands.")
        self.add(scale_parameter(self.SCALE, self.tr),
                 "Reference pixels per LRHSI pixel along each axis, 2 to 8 (3: EnMAP or PRISMA with Sentinel-2 10 m).")
        self.add(QgsProcessingParameterRasterDestination(self.OUTPUT_LRHSI, self.tr("Simulated LRHSI")),
                 "The simulated low-resolution hyperspectral GeoTIFF.")
        self.add(QgsProcessingParameterRasterDestination(self.OUTPUT_HRMSI, self.tr("Simulated HRMSI")),
                 "The simulated high-resolution multispectral GeoTIFF.")

    def execute(self, parameters, context, feedback) -> dict:
        from ...core.simulate_raster import simulate_raster

        reference = raster_path(self, parameters, self.REFERENCE, context)
        lr, hr = simulate_raster(
            reference,
            self.parameterAsString(parameters, self.SRF, context),
            self.parameterAsInt(parameters, self.SCALE, context),
            output_raster(self, parameters, self.OUTPUT_LRHSI, context),
            output_raster(self, parameters, self.OUTPUT_HRMSI, context),
            progress=progress(feedback), cancel=feedback.isCanceled)
        present(context, str(lr), SPECTRAL, "Simulated LRHSI", reference)
        present(context, str(hr), SPECTRAL, "Simulated HRMSI", reference)
        return {self.OUTPUT_LRHSI: str(lr), self.OUTPUT_HRMSI: str(hr)}
