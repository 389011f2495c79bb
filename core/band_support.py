# SPDX-License-Identifier: GPL-2.0-or-later
"""Which bands of an LRHSI the HRMSI's spectral response covers: *supported* (measured detail) or *extrapolated*.

An LRHSI band is *supported* when its centre wavelength lies where an HRMSI band responds at half its peak or more
(:data:`SUPPORT_LEVEL`): the HRMSI measured spatial detail at that wavelength. Other bands are *extrapolated*: a
fusion sharpens them too, but their detail is carried over from the covered wavelengths (regressed by a classical
method, learned by the network), not measured. The HRMSI's response comes as curves (a ``core.srf``
``SpectralResponse``: an SRF given, or Gaussian bands of the HRMSI's centres and FWHM, :func:`hrmsi_response`), or
as a response matrix ``R`` (C_m, bands) sampled at some band centres (estimated from a pair, or a model card's):
then an MSI band's half-maximum width is taken as the central :data:`SUPPORT_WEIGHT_SHARE` of its weight (the share
inside the full width at half maximum of a Gaussian). With neither, or without LRHSI wavelengths, nothing is
decided (:attr:`BandSupport.supported` is None): never guessed.

One decision for every consumer: the quality report (``core.pair_report``) scores the two sets apart, and every
fused raster (``core.fuse``, ``core.classic_raster``) carries it in its band metadata (:meth:`BandSupport.
band_metadata`, :meth:`BandSupport.dataset_metadata`): per band ``COFUSION_DETAIL`` = ``measured`` or
``extrapolated`` and ``COFUSION_DETAIL_REASON``, one line; at dataset level ``COFUSION_DETAIL_RULE``, what the
marking means and the response it rests on, or why no band is marked. :func:`read_marking` reads them back (to
carry them onto a raster assembled from fused parts, or to show them).
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from osgeo import gdal

from .errors import InputError
from .raster import RasterInfo, spectral_band_numbers
from .srf import SpectralResponse, gaussian_bands, parse_srf

#: An HSI band is supported where an HRMSI band's response curve is at least this share of its peak (half maximum).
SUPPORT_LEVEL = 0.5
#: The share of a matrix row's weight taken as its MSI band's half-maximum width (centred: from 12 % to 88 % of the
#: cumulative weight): 76 % of a Gaussian's area lies within its full width at half maximum.
SUPPORT_WEIGHT_SHARE = 0.76
#: The band metadata items of a fused raster (GDAL's default domain).
DETAIL_ITEM = "COFUSION_DETAIL"
REASON_ITEM = "COFUSION_DETAIL_REASON"
#: The dataset metadata item saying what the marking means and the response used (or why there is none).
RULE_ITEM = "COFUSION_DETAIL_RULE"
MEASURED, EXTRAPOLATED = "measured", "extrapolated"

#: (MSI band name, lower nm, upper nm): where one band responds at half its peak (or holds its central weight).
Interval = tuple[str, float, float]


@dataclass(frozen=True)
class BandSupport:
    """The split of an LRHSI's bands by the HRMSI's spectral coverage.

    ``supported``: per LRHSI band, True when an HRMSI band covers its centre; None when it cannot be decided (no
    response, or no LRHSI wavelengths). ``reasons``: per band the one-line reason (empty when undecided).
    ``how``: the rule in words with the response's source, or, undecided, why. ``intervals``: per MSI band run the
    covered wavelengths (nm).
    """

    supported: tuple[bool, ...] | None
    reasons: tuple[str, ...]
    how: str
    intervals: tuple[Interval, ...] = ()

    @property
    def spans(self) -> str:
        """The covered wavelengths, merged: '415-650 nm' or '400-510 nm, 620-700 nm'."""
        return ", ".join(f"{a:.0f}-{b:.0f} nm" for a, b in merge_intervals([(a, b) for _, a, b in self.intervals]))

    @property
    def rule(self) -> str:
        """The report's sentence: the rule, the covered wavelengths, what the others are (or why undecided)."""
        if self.supported is None:
            return self.how
        return (f"A band is supported when {self.how}; that is {self.spans}. The others are extrapolated: the HRMSI "
                "carries no detail for them.")

    def dataset_metadata(self) -> dict[str, str]:
        """The fused raster's dataset item ``COFUSION_DETAIL_RULE``."""
        if self.supported is None:
            why = self.how[:1].lower() + self.how[1:]
            return {RULE_ITEM: f"No band is marked measured or extrapolated: {why}. Give the HRMSI's spectral "
                               "response (an SRF preset such as 'rgb' or 'sentinel2a:B2,B3,B4,B8', or a CSV) to "
                               "mark them."}
        return {RULE_ITEM: f"Per band {DETAIL_ITEM}: '{MEASURED}' when {self.how}, i.e. at {self.spans}: the HRMSI "
                           f"measured its spatial detail; '{EXTRAPOLATED}' otherwise: its detail is carried over from "
                           "the covered wavelengths (regressed or learned), not measured."}

    def band_metadata(self) -> list[dict[str, str]] | None:
        """Per LRHSI band its ``COFUSION_DETAIL`` and ``COFUSION_DETAIL_REASON`` items; None when undecided."""
        if self.supported is None:
            return None
        return [{DETAIL_ITEM: MEASURED if s else EXTRAPOLATED, REASON_ITEM: r}
                for s, r in zip(self.supported, self.reasons)]


def band_support(wavelengths_nm: Sequence[float] | None, *, response: SpectralResponse | None = None,
                 matrix: np.ndarray | None = None, matrix_wavelengths_nm: Sequence[float] | None = None,
                 msi_band_names: Sequence[str] | None = None, source: str = "",
                 tried: str = "no SRF given") -> BandSupport:
    """Per LRHSI band centred at ``wavelengths_nm`` (C_h,) nm: supported or extrapolated (module docstring).

    ``response``: the HRMSI's curves (preferred); else ``matrix`` (C_m, K) with ``matrix_wavelengths_nm`` (K,) the
    band centres (nm) its columns are sampled at, and ``msi_band_names`` (C_m,) to name its rows. ``source``: where
    the response came from, in words; ``tried``: where it was looked for, said when none is given.
    """
    if wavelengths_nm is None:
        return BandSupport(None, (), "The LRHSI carries no wavelengths")
    centres = np.asarray(wavelengths_nm, np.float64)
    if response is not None:
        intervals = _half_maximum(response)
        how = f"an HRMSI band's response is at least half its peak (the response: {source})"
        inside, outside = "HRMSI band {} responds at half its peak or more there", "no HRMSI band responds at half " \
            "its peak there"
    elif matrix is not None and matrix_wavelengths_nm is not None:
        rows = np.asarray(matrix, np.float64)
        names = msi_band_names if msi_band_names is not None else [f"B{k + 1}" for k in range(len(rows))]
        intervals = _weight_intervals(rows, np.asarray(matrix_wavelengths_nm, np.float64), names)
        how = (f"it lies within the central {SUPPORT_WEIGHT_SHARE:.0%} of an HRMSI band's weight (the share of a "
               f"Gaussian inside its full width at half maximum; the response: {source})")
        inside = f"within the central {SUPPORT_WEIGHT_SHARE:.0%} of HRMSI band {{}}'s weight"
        outside = f"outside the central {SUPPORT_WEIGHT_SHARE:.0%} of every HRMSI band's weight"
    else:
        return BandSupport(None, (), f"The HRMSI's spectral response is unknown ({tried})")
    spans = ", ".join(f"{a:.0f}-{b:.0f} nm" for a, b in merge_intervals([(a, b) for _, a, b in intervals]))
    supported, reasons = [], []
    for c in centres:
        covering = [(n, a, b) for n, a, b in intervals if a <= c <= b]
        supported.append(bool(covering))
        if covering:
            name, a, b = covering[0]
            reasons.append(f"{c:.1f} nm: {inside.format(name)} ({a:.0f}-{b:.0f} nm)")
        else:
            reasons.append(f"{c:.1f} nm: {outside} (covered: {spans or 'nothing'}); its detail is extrapolated")
    return BandSupport(tuple(supported), tuple(reasons), how, tuple(intervals))


def hrmsi_response(srf: str | SpectralResponse | None, hr: RasterInfo) -> tuple[SpectralResponse | None, str]:
    """The HRMSI's response as curves and where it came from: the SRF given (a preset or CSV spec, or a
    SpectralResponse), else Gaussian bands of the HRMSI's centres and FWHM (its band metadata), else (None, what its
    band metadata lacks: 'no band wavelengths and FWHM' or 'band centres but no FWHM'). InputError when the SRF
    given has another band count than the HRMSI."""
    if srf is not None and not (isinstance(srf, str) and not srf.strip()):
        response = srf if isinstance(srf, SpectralResponse) else parse_srf(srf)
        if len(response.band_names) != hr.band_count:
            raise InputError(f"The SRF has {len(response.band_names)} bands but the HRMSI {hr.path} has "
                             f"{hr.band_count}; give the response of the HRMSI's bands, in its order.")
        return response, f"the SRF given, {srf if isinstance(srf, str) else 'a custom response'}"
    if hr.wavelengths_nm is not None and hr.fwhm_nm is not None and all(f > 0 for f in hr.fwhm_nm):
        return (gaussian_bands(hr.wavelengths_nm, hr.fwhm_nm, [f"B{k + 1}" for k in range(hr.band_count)]),
                "the HRMSI's band metadata: Gaussian bands of its centre wavelengths and FWHM")
    if hr.wavelengths_nm is not None:
        return None, "band centres but no FWHM"
    return None, "no band wavelengths and FWHM"


def fusion_support(lr: RasterInfo, hr: RasterInfo, *, srf: str | SpectralResponse | None = None,
                   matrix: np.ndarray | None = None, matrix_wavelengths_nm: Sequence[float] | None = None,
                   msi_band_names: Sequence[str] | None = None, matrix_source: str = "") -> BandSupport:
    """The split a fused raster of ``lr`` + ``hr`` carries: by the SRF given, else the HRMSI's band metadata
    (:func:`hrmsi_response`), else ``matrix`` (a model card's response, see :func:`band_support`; ``matrix_source``
    names the card, empty when there is none), else none."""
    response, source = hrmsi_response(srf, hr)
    if response is not None:
        return band_support(lr.wavelengths_nm, response=response, source=source)
    tried = f"no SRF given, {source} in the HRMSI's band metadata" + (", no response in the model card" if
                                                                     matrix_source else "")
    return band_support(lr.wavelengths_nm, matrix=matrix, matrix_wavelengths_nm=matrix_wavelengths_nm,
                        msi_band_names=msi_band_names, source=matrix_source, tried=tried)


def read_marking(path: str | os.PathLike) -> tuple[dict[str, str], list[dict[str, str]]]:
    """The marking a raster carries (its ``COFUSION_DETAIL_RULE`` item, and per spectral band its
    ``COFUSION_DETAIL`` and ``COFUSION_DETAIL_REASON`` items, empty where a band has none), as
    :meth:`BandSupport.dataset_metadata` and :meth:`BandSupport.band_metadata` give them: to carry it onto a raster
    made from this one, or to show it."""
    try:  # the bindings raise or return None, as the process's exception mode says (core.raster)
        ds = gdal.OpenEx(os.fspath(path), gdal.OF_RASTER | gdal.OF_READONLY)
    except RuntimeError:
        ds = None
    if ds is None:
        raise InputError(f"{path}: GDAL cannot open it ({gdal.GetLastErrorMsg()}); give a fused raster.")
    rule = ds.GetMetadataItem(RULE_ITEM)
    per_band = [{k: v for k in (DETAIL_ITEM, REASON_ITEM) for v in [ds.GetRasterBand(n).GetMetadataItem(k)]
                 if v is not None} for n in spectral_band_numbers(ds)]
    ds = None
    return ({} if rule is None else {RULE_ITEM: rule}), per_band


def _half_maximum(response: SpectralResponse) -> list[Interval]:
    """Per band, the wavelength intervals (nm) where its curve is at least half its peak (runs of samples)."""
    wl = response.wavelengths_nm
    intervals = []
    for name, curve in zip(response.band_names, response.responses):
        above = curve >= SUPPORT_LEVEL * curve.max()
        edges = np.flatnonzero(np.diff(np.concatenate([[0], above.astype(np.int8), [0]])))
        intervals.extend((str(name), float(wl[a]), float(wl[b - 1])) for a, b in zip(edges[::2], edges[1::2]))
    return intervals


def _weight_intervals(matrix: np.ndarray, centres: np.ndarray, names: Sequence[str]) -> list[Interval]:
    """Per MSI band of ``matrix`` (C_m, K) sampled at ``centres`` (K,) nm, the wavelengths between which the central
    SUPPORT_WEIGHT_SHARE of its weight lies (the first samples at or past 12 % and 88 % of its cumulative weight)."""
    order = np.argsort(centres)
    wl = centres[order]
    low, high = (1 - SUPPORT_WEIGHT_SHARE) / 2, (1 + SUPPORT_WEIGHT_SHARE) / 2
    intervals = []
    for name, row in zip(names, matrix):
        weights = np.clip(row[order], 0, None)
        if not weights.sum() > 0:
            continue
        cumulative = np.cumsum(weights) / weights.sum()
        first = int(np.searchsorted(cumulative, low))
        last = int(np.searchsorted(cumulative, high))
        intervals.append((str(name), float(wl[min(first, len(wl) - 1)]), float(wl[min(last, len(wl) - 1)])))
    return intervals


def merge_intervals(intervals: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Overlapping (lower, upper) intervals merged, in increasing order."""
    merged: list[list[float]] = []
    for a, b in sorted(intervals):
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return [(a, b) for a, b in merged]
