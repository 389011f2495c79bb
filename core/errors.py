# SPDX-License-Identifier: GPL-2.0-or-later
"""Exceptions raised by the core for problems a user can act on.

Every message names what is wrong and how to fix it; callers (CLI, Processing, dock) show the message as is.
"""


class CoFusionError(Exception):
    """Base class of every error the core raises on purpose."""


class InputError(CoFusionError):
    """An input raster or parameter is unusable (missing file, wrong band count, all nodata, ...)."""


class GridError(InputError):
    """The LRHSI and HRMSI grids are not co-registered for fusion (CRS, pixel ratio, alignment, overlap)."""


class EmptyOutputError(InputError):
    """No pixel of the area to fuse is valid in both inputs, so the output would be nodata everywhere."""


class CheckpointError(CoFusionError):
    """A checkpoint is corrupt, foreign, or does not fit the inputs."""


class OutputError(CoFusionError):
    """The output cannot be written (folder missing or read-only, would overwrite an input, disk full)."""


class Canceled(CoFusionError):
    """The caller's cancel check returned True; the operation stopped and left no output behind."""
