# SPDX-License-Identifier: GPL-2.0-or-later
"""Training CoFusion on a user's own scenes (reference mode and pair mode). Imports core, never QGIS."""
