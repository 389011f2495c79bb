# SPDX-License-Identifier: GPL-2.0-or-later
"""``cofusion:assign_wavelengths``: give a hyperspectral raster without wavelength metadata a spectrometer's."""
from __future__ import annotations

from qgis.core import (
    QgsProcessingParameterBoolean,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from ...core.wavelengths import SPECTROMETERS
from .base import FUSION, CoFusionAlgorithm
from .layer_outputs import SPECTRAL, present
from .params import choice_parameter, output_raster, progress, raster_path


class AssignWavelengthsAlgorithm(CoFusionAlgorithm):
    ID = "assign_wavelengths"
    LABEL = "Assign sensor wavelengths"
    GROUP = FUSION
    TAGS = ("wavelength", "wavelengths", "FWHM", "band table", "metadata", "spectrometer")
    DESCRIPTION = (
        "Writes a copy of a hyperspectral raster that carries no band wavelengths (e.g. an EnMAP or PRISMA product "
        "converted by another tool, a PRISMA HE5 exported to GeoTIFF, a cube cut with gdal_translate) whose bands "
        "have the centre wavelengths and FWHM of a spectrometer's band table, so it can be fused, simulated from "
        "and plotted in nanometres. Pixels, data type, georeference, nodata and band scale/offset stay the input's; "
        "the metadata item cofusion_wavelength_source says the wavelengths were assigned, not read from the file.")
    INPUT, SENSOR, BANDS, OVERWRITE, OUTPUT = "INPUT", "SENSOR", "BANDS", "OVERWRITE", "OUTPUT"

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 (QGIS API name)
        self.add(QgsProcessingParameterRasterLayer(self.INPUT, self.tr("Hyperspectral raster")),
                 "The raster without wavelength metadata; its band count must equal the sensor bands chosen.")
        self.add(choice_parameter(self.SENSOR, self.tr("Sensor"), SPECTROMETERS, "enmap"),
                 f"The imaging spectrometer whose band table (resources/srf) gives the wavelengths: one of "
                 f"{', '.join(SPECTROMETERS)}.")
        self.add(QgsProcessingParameterString(self.BANDS, self.tr("Bands the raster holds"), optional=True),
                 "Empty: all the sensor's bands. For a raster holding only some of them, its bands in its order, "
                 "e.g. 'B1-B130' or 'B1-B50,B60-B224'.")
        self.add(QgsProcessingParameterBoolean(self.OVERWRITE, self.tr("Replace existing wavelengths"),
                                               defaultValue=False),
                 "A raster that already has band wavelengths is refused unless this is checked.")
        self.add(QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Raster with wavelengths")),
                 "A GeoTIFF copy (.tif), or a path ending in .vrt for a virtual raster that refers to the input "
                 "(instant, nothing big written; keep the input where it is).")

    def execute(self, parameters, context, feedback) -> dict:
        from ...core.wavelengths import assign_wavelengths

        source = raster_path(self, parameters, self.INPUT, context)
        out = assign_wavelengths(
            source,
            self.parameterAsEnumString(parameters, self.SENSOR, context),
            output_raster(self, parameters, self.OUTPUT, context),
            bands=self.parameterAsString(parameters, self.BANDS, context) or None,
            overwrite=self.parameterAsBoolean(parameters, self.OVERWRITE, context),
            progress=progress(feedback), cancel=feedback.isCanceled)
        present(context, str(out), SPECTRAL, "With wavelengths", source)
        return {self.OUTPUT: str(out)}
