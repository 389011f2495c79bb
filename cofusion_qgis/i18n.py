# SPDX-License-Identifier: GPL-2.0-or-later
"""Translation of the plugin's user-visible strings (context "CoFusion", as the Processing algorithms use)."""
from __future__ import annotations

from qgis.PyQt.QtCore import QCoreApplication


def tr(text: str) -> str:
    """``text`` translated into the QGIS user interface language (as is when there is no translation)."""
    return QCoreApplication.translate("CoFusion", text)
