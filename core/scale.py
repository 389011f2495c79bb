# SPDX-License-Identifier: GPL-2.0-or-later
"""The resolution ratios CoFusion fuses: HR pixels per LR pixel along each axis, an integer from 2 to 8.

EnMAP or PRISMA (30 m) with Sentinel-2's 10 m bands is 3, with 5 m imagery 6; airborne pairs are often 4 or 8.
Odd and even scales keep one grid convention (``core.degrade``): LR pixel ``k`` covers HR pixels
``[k s, (k + 1) s)`` and is centred on their centre. Torch-free, so the QGIS layer can read the range without it.
"""
from __future__ import annotations

from .errors import InputError

MIN_SCALE, MAX_SCALE = 2, 8


def check_scale(scale: object) -> int:
    """``scale`` as an int; InputError naming the range and the fix unless it is an integer from 2 to 8."""
    if isinstance(scale, bool) or not isinstance(scale, int) or not MIN_SCALE <= scale <= MAX_SCALE:
        raise InputError(
            f"scale factor {scale!r} is not supported; CoFusion fuses integer scales {MIN_SCALE} to {MAX_SCALE}. "
            "Resample the HRMSI so that its pixel size is the LRHSI's divided by an integer in that range "
            "(cofusion:align_to_grid)."
        )
    return scale
