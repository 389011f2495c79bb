# SPDX-License-Identifier: GPL-2.0-or-later
"""CoFusion for QGIS: hyperspectral / multispectral image fusion.

This folder is both the QGIS plugin and the Python package ``cofusion``. Loading the package imports
nothing from QGIS: only :func:`classFactory`, which QGIS calls, does.
"""

__version__ = "0.1.0"


def classFactory(iface):  # noqa: N802 (name fixed by QGIS)
    """QGIS plugin entry point: build the plugin object for the running QGIS interface."""
    from .cofusion_qgis.plugin import CoFusionPlugin

    return CoFusionPlugin(iface)
