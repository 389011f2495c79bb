# SPDX-License-Identifier: GPL-2.0-or-later
"""The QGIS face of CoFusion: the only layer that imports qgis and PyQt."""
