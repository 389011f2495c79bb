# SPDX-License-Identifier: GPL-2.0-or-later
"""The QGIS plugin object: what ``classFactory`` returns.

For now it registers nothing in the interface; the Processing provider and the dock widget attach here.
``unload`` undoes exactly what ``initGui`` did.
"""
from __future__ import annotations


class CoFusionPlugin:
    """Plugin object QGIS keeps while the plugin is loaded."""

    def __init__(self, iface) -> None:
        self.iface = iface

    def initGui(self) -> None:  # noqa: N802 (QGIS API name)
        """Called by QGIS when the plugin is enabled."""

    def unload(self) -> None:
        """Called by QGIS when the plugin is disabled: remove everything initGui added."""
