# SPDX-License-Identifier: GPL-2.0-or-later
"""The QGIS-free core: raster I/O, grid checks, degradation, metrics, baselines, the network and the tiler."""
