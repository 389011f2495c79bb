# SPDX-License-Identifier: GPL-2.0-or-later
"""What made a fused raster, in its dataset metadata (GDAL's default domain): a CoFusion model or a classical method.

Every fused raster the engines write carries ``COFUSION_FUSED_BY`` = ``model`` or ``method``; a method's raster
also ``COFUSION_FUSED_WITH`` = its name (``core.classic.METHODS``), a model's ``COFUSION_MODEL_SHA256`` = the
SHA-256 of the model file (hex). The file's name is not recorded: it does not identify the model (a fit fuses with
its model before renaming it into place), and its content does (``sha256sum model.safetensors`` gives the same).
The pair report (``core.pair_report``) compares the record with the model or method it checks, so a raster made by
a fit's fallback method is never reported as the model's.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from osgeo import gdal

BY_ITEM = "COFUSION_FUSED_BY"
WITH_ITEM = "COFUSION_FUSED_WITH"
SHA256_ITEM = "COFUSION_MODEL_SHA256"
MODEL, METHOD = "model", "method"
#: Bytes read at a time when hashing a model file.
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Producer:
    """``kind``: MODEL or METHOD; ``identity``: the model file's SHA-256 (hex) or the method's name."""

    kind: str
    identity: str

    def metadata(self) -> dict[str, str]:
        """The dataset metadata items that record it."""
        return {BY_ITEM: self.kind, SHA256_ITEM if self.kind == MODEL else WITH_ITEM: self.identity}

    def describe(self) -> str:
        """'the classical method gsa' or 'a CoFusion model of SHA-256 0123456789ab...' (16 hex digits)."""
        if self.kind == METHOD:
            return f"the classical method {self.identity}"
        return f"a CoFusion model of SHA-256 {self.identity[:16]}..."


def model_producer(path: str | os.PathLike) -> Producer:
    """The record of a fusion by the model file at ``path`` (read whole, in chunks; OSError when unreadable)."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(_CHUNK), b""):
            digest.update(chunk)
    return Producer(MODEL, digest.hexdigest())


def method_producer(name: str) -> Producer:
    """The record of a fusion by the classical method ``name``."""
    return Producer(METHOD, name)


def read_producer(path: str | os.PathLike) -> Producer | None:
    """What the raster at ``path`` records as its maker; None when it records nothing readable (a raster of
    another tool or of an older version, or items that do not form a record)."""
    gdal.PushErrorHandler("CPLQuietErrorHandler")  # not a raster, or none there: no record, nothing to print
    try:  # the bindings raise or return None, as the process's exception mode says (core.raster)
        ds = gdal.OpenEx(os.fspath(path), gdal.OF_RASTER | gdal.OF_READONLY)
    except RuntimeError:
        return None
    finally:
        gdal.PopErrorHandler()
    if ds is None:
        return None
    kind = ds.GetMetadataItem(BY_ITEM)
    identity = ds.GetMetadataItem(SHA256_ITEM if kind == MODEL else WITH_ITEM)
    ds = None
    if kind not in (MODEL, METHOD) or not identity:
        return None
    return Producer(kind, identity)
