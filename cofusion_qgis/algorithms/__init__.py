# SPDX-License-Identifier: GPL-2.0-or-later
"""The Processing algorithms of the CoFusion provider, one a module.

The modules import only QGIS and ``core.errors`` at load time; the core (numpy, GDAL, PyTorch) is imported when
an algorithm runs, so the provider loads, and lists its algorithms, even before the runtime dependencies are
installed.
"""
