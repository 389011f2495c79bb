# SPDX-License-Identifier: GPL-2.0-or-later
"""The sensor catalogue behind ``core.srf.parse_srf``: which table or curves each preset uses and its band names.

Data only; ``core.srf`` builds the responses. Three kinds of preset:

- measured responses: a long table ``band,wavelength_nm,response`` in ``resources/srf`` (sources in its
  README), with the table's band labels mapped to short names;
- Gaussian bands from published band edges (WorldView-3, IKONOS, a generic RGB camera; no measured table is
  shipped for them): ``(name, centre nm, FWHM nm)``;
- imaging spectrometers: a band table ``band,wavelength_nm,fwhm_nm`` (EnMAP, PRISMA, DESIS, EMIT); each band is a
  Gaussian of its centre and FWHM, named ``B<band>``.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Preset:
    """One sensor of the catalogue; exactly one of ``responses``, ``gaussians`` and ``band_table`` is set.

    Attributes:
        sensor: the sensor and the source of its curves, for listings (e.g. "Sentinel-2A MSI, ESA measured").
        responses: file name of a measured-response table in resources/srf.
        band_ids: ``(table label, short name)`` pairs in the preset's band order; ``None``: every band of the
            table in its order, named by the ``B<n>`` or ``B<n>A`` its label starts with.
        gaussians: ``(name, centre nm, FWHM nm)`` per band.
        band_table: file name of a ``band,wavelength_nm,fwhm_nm`` table in resources/srf.
        default_bands: the bands a bare preset name selects; ``None``: all.
    """

    sensor: str
    responses: str | None = None
    band_ids: tuple[tuple[str, str], ...] | None = None
    gaussians: tuple[tuple[str, float, float], ...] = ()
    band_table: str | None = None
    default_bands: tuple[str, ...] | None = None


_S2_10M = ("B2", "B3", "B4", "B8")
# Landsat 4-5 TM and 7 ETM+ number their reflective bands 1-5 and 7 (6 is thermal, ETM+ 8 panchromatic).
_TM_IDS = (("Blue (450-520 Nanometers)", "B1"), ("Green (520-600 Nanometers)", "B2"),
           ("Red (630-690 Nanometers)", "B3"), ("Near Infrared (NIR) (760-900 Nanometers)", "B4"),
           ("Shortwave Infrared (SWIR) 1 (1550-1750 Nanometers)", "B5"),
           ("Shortwave Infrared (SWIR) 2 (2090-2350 Nanometers)", "B7"))
_ETM_IDS = (("Blue (450-520 Nanometers)", "B1"), ("Green (520-600 Nanometers)", "B2"),
            ("Red (630-690 Nanometers)", "B3"), ("Near Infrared (NIR) (770-900 Nanometers)", "B4"),
            ("Shortwave Infrared (SWIR) 1 (1550-1750 Nanometers)", "B5"),
            ("Shortwave Infrared (SWIR) 2 (2090-2350 Nanometers)", "B7"))
_OLI_IDS = (("Blue (450-520 Nanometers)", "B2"), ("Green (520-600 Nanometers)", "B3"),
            ("Red (630-690 Nanometers)", "B4"), ("Near Infrared (NIR) (770-900 Nanometers)", "B5"),
            ("Shortwave Infrared (SWIR) 1 (1550-1750 Nanometers)", "B6"),
            ("Shortwave Infrared (SWIR) 2 (2090-2350 Nanometers)", "B7"))
_OLI2_IDS = (("CoastalAerosol", "B1"), ("Blue", "B2"), ("Green", "B3"), ("Red", "B4"), ("NIR", "B5"),
             ("SWIR1", "B6"), ("SWIR2", "B7"), ("Pan", "B8"), ("Cirrus", "B9"))
_PLEIADES_IDS = (("blue", "Blue"), ("green", "Green"), ("red", "Red"), ("NIR", "NIR"), ("pan", "Pan"))
_SPOT_IDS = (("Blue", "Blue"), ("Green", "Green"), ("Red", "Red"), ("NIR", "NIR"))
_RAPIDEYE_IDS = tuple((f"band_{i}", f"B{i}") for i in range(1, 6))
_RGBN = ("Blue", "Green", "Red", "NIR")

PRESETS: dict[str, Preset] = {
    "sentinel2a": Preset("Sentinel-2A MSI, ESA measured responses", "sentinel2a_msi.csv", default_bands=_S2_10M),
    "sentinel2b": Preset("Sentinel-2B MSI, ESA measured responses", "sentinel2b_msi.csv", default_bands=_S2_10M),
    "sentinel2c": Preset("Sentinel-2C MSI, ESA measured responses (no B1, B9, B10 in the table)",
                         "sentinel2c_msi.csv", default_bands=_S2_10M),
    "landsat5": Preset("Landsat 5 TM, USGS measured responses", "landsat5_tm.csv", _TM_IDS),
    "landsat7": Preset("Landsat 7 ETM+, USGS measured responses (no panchromatic band)", "landsat7_etm.csv",
                       _ETM_IDS),
    "landsat8": Preset("Landsat 8 OLI, USGS measured responses (no coastal, panchromatic or cirrus band)",
                       "landsat8_oli.csv", _OLI_IDS),
    "landsat9": Preset("Landsat 9 OLI-2, USGS measured responses",
                       "landsat9_oli2.csv", _OLI2_IDS, default_bands=("B2", "B3", "B4", "B5", "B6", "B7")),
    "pleiades1a": Preset("Pleiades 1A, Airbus measured responses",
                         "pleiades1a.csv", _PLEIADES_IDS, default_bands=_RGBN),
    "pleiades1b": Preset("Pleiades 1B, Airbus measured responses",
                         "pleiades1b.csv", _PLEIADES_IDS, default_bands=_RGBN),
    "spot6": Preset("SPOT 6, Airbus measured responses (one table for SPOT 6 and 7)", "spot6_7.csv", _SPOT_IDS),
    "spot7": Preset("SPOT 7, Airbus measured responses (one table for SPOT 6 and 7)", "spot6_7.csv", _SPOT_IDS),
    "venus": Preset("VENuS VSSC, CNES/ISA measured responses", "venus_vssc.csv"),
    "rapideye": Preset("RapidEye MSI (blue, green, red, red edge, NIR), measured responses", "rapideye_msi.csv",
                       _RAPIDEYE_IDS),
    # DigitalGlobe's WorldView-3 specification sheet: Blue 450-510, Green 510-580, Red 630-690, NIR1 770-895 nm.
    "worldview3": Preset("WorldView-3, Gaussian bands from the spec-sheet band edges",
                         gaussians=(("Blue", 480.0, 60.0), ("Green", 545.0, 70.0), ("Red", 660.0, 60.0),
                                    ("NIR", 832.5, 125.0))),
    # Space Imaging / GeoEye: Blue 445-516, Green 506-595, Red 632-698, NIR 757-853 nm.
    "ikonos": Preset("IKONOS, Gaussian bands from the published band edges",
                     gaussians=(("Blue", 480.5, 71.0), ("Green", 550.5, 89.0), ("Red", 665.0, 66.0),
                                ("NIR", 805.0, 96.0))),
    # Jiang et al., "What is the space of spectral sensitivity functions for digital color cameras?", IEEE WACV
    # 2013: peaks near 450-460, 530-540 and 600-610 nm. Not any one camera.
    "rgb": Preset("generic RGB camera, Gaussian approximation",
                  gaussians=(("Blue", 460.0, 90.0), ("Green", 540.0, 90.0), ("Red", 610.0, 80.0))),
    "enmap": Preset("EnMAP HSI imaging spectrometer, Gaussian bands from the band centres and FWHM",
                    band_table="enmap_bands.csv"),
    "prisma": Preset("PRISMA imaging spectrometer, Gaussian bands from the band centres and FWHM",
                     band_table="prisma_bands.csv"),
    "desis": Preset("DESIS imaging spectrometer, Gaussian bands from the band centres and FWHM",
                    band_table="desis_bands.csv"),
    "emit": Preset("EMIT imaging spectrometer, Gaussian bands from the band centres and FWHM",
                   band_table="emit_bands.csv"),
}
