# SPDX-License-Identifier: GPL-2.0-or-later
"""The runtime environment as the QGIS face sees it: where the installer puts the runtime dependencies of the
active QGIS profile, and the one check, shared by the Processing algorithms and the dock, that they are there.

``dependencies`` (QGIS-free: the installer runs it as a script too) knows the packages; this module adds what
needs QGIS: the profile folder, and QgsProcessingException, which Processing and the dock both show as is.
"""
from __future__ import annotations

from pathlib import Path

from qgis.core import QgsApplication, QgsProcessingException

from . import dependencies


def site_dir() -> Path:
    """Where the installer puts the runtime dependencies: beside the plugins of the active QGIS profile."""
    return dependencies.site_dir(QgsApplication.qgisSettingsDirPath())


def require_dependencies() -> None:
    """QgsProcessingException naming the missing runtime packages and how to install them, if any is missing."""
    absent = dependencies.missing(dependencies.read_requirements())
    if absent:
        raise QgsProcessingException(
            f"CoFusion needs Python packages that QGIS's Python lacks: {', '.join(r.name for r in absent)}. "
            "Install them from the CoFusion message in QGIS (Plugins > CoFusion > Install dependencies), or run "
            f"'{dependencies.interpreter()} {Path(dependencies.__file__)} install --target {site_dir()}' (it "
            "installs only what QGIS lacks, never a package QGIS's own Python has).")
