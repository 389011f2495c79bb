# SPDX-License-Identifier: GPL-2.0-or-later
"""Bad bands of a hyperspectral raster, and how a fusion's C_p working bands map onto the raster's C bands.

Real hyperspectral products carry bands that hold no signal: EnMAP L2A's water-vapour bands (near 1350-1400 nm and
1800-1950 nm) are nodata over the whole scene, AVIRIS cubes carry zeroed absorption bands, and ENVI or EnMAP-Box
files flag such bands in a bad band list (``bbl`` = 0). A band is **bad** when it is

* flagged bad (``RasterInfo.bad_band_flags``: ``bbl`` band metadata or the ENVI header's ``bbl``),
* nodata (or NaN) at every pixel of the area read, or
* constant over its valid pixels, to float32 rounding (no information to fuse; a PSNR on it is infinite).

Bad bands are left out of everything that fits or measures (the network's input, the classical fits, metrics), a
pixel is nodata when a *good* band is nodata there, and outputs keep every band of the input, the bad ones written
as nodata with ``bbl`` = 0, so band numbers match the input.

:class:`BandPlan` says which raster band each working band reads and where each is written: for the classical
methods the working bands are the good bands; for a model they are the model's bands, matched to the raster by
wavelength (or by position when a side lacks wavelengths). A model band that is bad in this scene (another scene
of the same sensor whose bad bands differ slightly) is filled for the network by linear interpolation along the
wavelength between its nearest usable neighbours and written as nodata. :class:`BandView` is a reader that shows
only the working bands, so the engines downstream never see a bad band.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from .errors import Canceled, CheckpointError, InputError
from .progress import Cancel, Progress
from .window import Window

log = logging.getLogger(__name__)

#: Largest difference (nm) between a raster band's centre and the model's for the same band: sensors' nominal
#: centres are good to a few nm; more means other bands.
WAVELENGTH_TOLERANCE_NM = 10.0
#: Largest share of a model's bands that may be bad in the scene it fuses (they are interpolated for the network).
MAX_MISSING_MODEL_BANDS = 0.25
#: A band whose valid values span at most this fraction of their magnitude is constant (float32 rounding of a
#: resampled constant band, e.g. a zeroed absorption band after a blur, stays within a few units of 1e-7).
CONSTANT_TOLERANCE = 1e-6
#: Pixel values read at a time by the screening pass (float32 values; about 64 MB).
SCREEN_CHUNK_VALUES = 16 * 2 ** 20

FLAGGED = "flagged bad (bbl = 0)"
NO_DATA = "nodata everywhere"
NOT_IN_MODEL = "not a band of the model"
BAD_FOR_MODEL = "bad in this scene, interpolated for the model"


@dataclass(frozen=True)
class BandScreen:
    """Per band of a raster, None when the band is good, else why it is bad (a short phrase)."""

    reasons: tuple[str | None, ...]

    @property
    def good(self) -> tuple[int, ...]:
        """0-based indices of the good bands."""
        return tuple(b for b, reason in enumerate(self.reasons) if reason is None)

    @property
    def bad(self) -> tuple[int, ...]:
        """0-based indices of the bad bands."""
        return tuple(b for b, reason in enumerate(self.reasons) if reason is not None)

    def describe(self, wavelengths_nm: Sequence[float] | None = None) -> str:
        """One line: which bands are bad and why, runs of neighbours grouped ("bands 131-136 (1331-1391 nm)")."""
        return describe_bands(self.reasons, wavelengths_nm)


def merge_screens(screens: Sequence[BandScreen], names: Sequence[str] | None = None) -> BandScreen:
    """The bands good in every one of ``screens`` (rasters of one sensor). A band bad in any is bad with the first
    reason a screen gives, or, with ``names`` (one per screen, e.g. "the reference"), with every screen's reason and
    name ("nodata everywhere in the fused raster and constant (0) in the reference")."""
    reasons = []
    for band in range(len(screens[0].reasons)):
        found = [(k, sc.reasons[band]) for k, sc in enumerate(screens) if sc.reasons[band] is not None]
        if not found:
            reasons.append(None)
        elif names is None:
            reasons.append(found[0][1])
        else:
            reasons.append(" and ".join(f"{reason} in {names[k]}" for k, reason in found))
    return BandScreen(tuple(reasons))


def describe_bands(reasons: Sequence[str | None], wavelengths_nm: Sequence[float] | None = None) -> str:
    """``"6 of 224 bands: bands 131-136 (1331-1391 nm) nodata everywhere; band 200 (2300 nm) constant (0)"``."""
    runs: list[tuple[int, int, str]] = []
    for band, reason in enumerate(reasons):
        if reason is None:
            continue
        if runs and runs[-1][1] == band - 1 and runs[-1][2] == reason:
            runs[-1] = (runs[-1][0], band, reason)
        else:
            runs.append((band, band, reason))
    parts = []
    for first, last, reason in runs:
        name = f"band {first + 1}" if first == last else f"bands {first + 1}-{last + 1}"
        if wavelengths_nm is not None:
            span = f"{wavelengths_nm[first]:.0f}" if first == last else \
                f"{wavelengths_nm[first]:.0f}-{wavelengths_nm[last]:.0f}"
            name += f" ({span} nm)"
        parts.append(f"{name} {reason}")
    count = sum(reason is not None for reason in reasons)
    return f"{count} of {len(reasons)} bands: " + "; ".join(parts) if parts else f"0 of {len(reasons)} bands"


def screen_bands(reader, window: Window | None = None, *, progress: Progress | None = None,
                 cancel: Cancel | None = None) -> BandScreen:
    """Find the bad bands of ``reader`` (a ``core.raster.RasterReader``) over ``window`` (default: all of it).

    Streams the window in strips of rows (about :data:`SCREEN_CHUNK_VALUES` values each): memory does not grow
    with the raster. ``progress(fraction, message)`` is told the share of the strips read after each;
    ``cancel()`` is asked between strips (not before the first) and True raises Canceled. Raises InputError naming
    every reason when no band is good.
    """
    info = reader.info
    window = info.window if window is None else window
    flags = info.bad_band_flags or (False,) * info.band_count
    count = np.zeros(info.band_count, np.int64)
    low = np.full(info.band_count, np.inf)
    high = np.full(info.band_count, -np.inf)
    rows = max(1, SCREEN_CHUNK_VALUES // max(1, info.band_count * window.width))
    starts = range(window.row, window.row_end, rows)
    for done, row in enumerate(starts):
        if done and cancel is not None and cancel():
            raise Canceled(f"Canceled while screening the bands of {info.path}; nothing was written.")
        strip = Window(window.col, row, window.width, min(rows, window.row_end - row))
        data, band_valid = reader.read_masked(strip)
        count += band_valid.sum(axis=(1, 2))
        masked = np.where(band_valid, data, np.nan)
        with np.errstate(all="ignore"):
            low = np.fmin(low, np.nanmin(masked, axis=(1, 2), initial=np.inf))
            high = np.fmax(high, np.nanmax(masked, axis=(1, 2), initial=-np.inf))
        del data, band_valid, masked
        if progress is not None:
            progress((done + 1) / len(starts), f"screening the bands: strip {done + 1} of {len(starts)}")
    reasons: list[str | None] = []
    for band, flagged in enumerate(flags):
        n, lo, hi = count[band], low[band], high[band]
        if flagged:
            reasons.append(FLAGGED)
        elif n == 0:
            reasons.append(NO_DATA)
        elif hi - lo <= CONSTANT_TOLERANCE * max(abs(lo), abs(hi)):
            reasons.append(f"constant ({lo:.6g})")
        else:
            reasons.append(None)
    screen = BandScreen(tuple(reasons))
    if not screen.good:
        raise InputError(f"{info.path}: every band is bad ({screen.describe(info.wavelengths_nm)}), so it holds "
                         "no data to use. Check the file's nodata value and bad band list (bbl), or choose another "
                         "area.")
    if screen.bad:
        log.warning("%s: bad bands, left out: %s", info.path, screen.describe(info.wavelengths_nm))
    return screen


@dataclass(frozen=True)
class BandPlan:
    """How a fusion's ``C_p`` working bands relate to the raster's ``C`` bands.

    ``sources[k]``: the raster band (0-based) working band ``k`` reads and is written to; ``usable[k]``: False when
    that raster band is bad here, so working band ``k`` is interpolated from its usable neighbours for the input
    and written as nodata. ``reasons``: per raster band, None when a working band is written to it, else why the
    output band is nodata (``BandScreen``'s reason, or :data:`NOT_IN_MODEL`).
    ``wavelengths_nm``: the working bands' centres (for interpolation; None: by band order).
    """

    band_count: int
    sources: tuple[int, ...]
    usable: tuple[bool, ...]
    reasons: tuple[str | None, ...]
    wavelengths_nm: tuple[float, ...] | None = None

    @property
    def working_bands(self) -> int:
        return len(self.sources)

    @property
    def read_bands(self) -> tuple[int, ...]:
        """The raster bands read: the usable working bands' sources, in working order."""
        return tuple(s for k, s in enumerate(self.sources) if self.usable[k])

    def pick(self, per_band: Sequence | None) -> tuple | None:
        """The working bands' entries of a per-raster-band sequence (wavelengths, FWHM, names); None stays None."""
        return None if per_band is None else tuple(per_band[s] for s in self.sources)

    @property
    def bbl(self) -> tuple[bool, ...]:
        """Per raster band, True when the output holds data for it (the ``bbl`` written to the output)."""
        return tuple(reason is None for reason in self.reasons)

    def fill_missing(self, data: np.ndarray) -> np.ndarray:
        """``(C_read, ...)`` values of :attr:`read_bands` -> ``(C_p, ...)``, unusable bands interpolated linearly
        along the wavelength (or band order) between the nearest usable bands, constant beyond the ends."""
        if all(self.usable):
            return data
        usable = np.flatnonzero(self.usable)
        axis = np.asarray(self.wavelengths_nm if self.wavelengths_nm is not None else range(len(self.sources)),
                          np.float64)
        if np.any(np.diff(axis) <= 0):  # overlapping detectors (PRISMA): interpolate along the band order
            axis = np.arange(len(self.sources), dtype=np.float64)
        out = np.empty((len(self.sources), *data.shape[1:]), data.dtype)
        out[usable] = data
        for k in np.flatnonzero(~np.asarray(self.usable)):
            above = np.searchsorted(axis[usable], axis[k])
            lo, hi = usable[max(above - 1, 0)], usable[min(above, len(usable) - 1)]
            t = 0.0 if hi == lo else (axis[k] - axis[lo]) / (axis[hi] - axis[lo])
            out[k] = (1.0 - t) * out[lo] + t * out[hi]
        return out

    def expand(self, working: np.ndarray, nodata: float) -> np.ndarray:
        """Working bands ``(C_p, rows, cols)`` -> the output's ``(C, rows, cols)``: each usable working band at
        its source, every other band ``nodata``."""
        if self.sources == tuple(range(self.band_count)) and all(self.usable):
            return working
        out = np.full((self.band_count, *working.shape[1:]), nodata, working.dtype)
        for k, source in enumerate(self.sources):
            if self.usable[k]:
                out[source] = working[k]
        return out

    def describe(self, wavelengths_nm: Sequence[float] | None = None) -> str:
        """One line on the output bands written as nodata, and why."""
        return describe_bands(self.reasons, wavelengths_nm)


def plan_good_bands(screen: BandScreen, wavelengths_nm: Sequence[float] | None = None) -> BandPlan:
    """The plan of a method that works on whatever bands are good (classical fusion, training, metrics)."""
    good = screen.good
    plan = BandPlan(len(screen.reasons), good, (True,) * len(good), screen.reasons)
    return replace(plan, wavelengths_nm=plan.pick(wavelengths_nm))


def plan_model_bands(screen: BandScreen, info, model_bands: int,
                     model_wavelengths_nm: Sequence[float] | None) -> BandPlan:
    """The plan of a model with ``model_bands`` input bands centred at ``model_wavelengths_nm`` on the raster
    ``info`` (``core.raster.RasterInfo``) whose bands ``screen`` judged.

    With wavelengths on both sides each model band, in order, reads the raster band after the previous one's that
    is nearest its centre, within :data:`WAVELENGTH_TOLERANCE_NM` (in order, so that sensors whose detectors
    overlap in wavelength, PRISMA's VNIR and SWIR near 950 nm, match band for band); else the bands match by
    position: either the raster's good bands (a model trained on a file like this one, bad bands left out) or all
    its bands. Raises CheckpointError naming the first band that does not match, or when more than
    :data:`MAX_MISSING_MODEL_BANDS` of the model's bands are bad in this scene.
    """
    fix = "use a model trained for these inputs, or train one with 'python -m cofusion.training'"
    raster_wl = info.wavelengths_nm
    if model_wavelengths_nm is not None and raster_wl is not None:
        centres = np.asarray(raster_wl, np.float64)
        sources: list[int] = []
        for k, wavelength in enumerate(model_wavelengths_nm):
            after = sources[-1] + 1 if sources else 0  # in order: PRISMA's VNIR and SWIR overlap near 950 nm
            gaps = np.abs(centres[after:] - wavelength)
            if not len(gaps) or gaps.min() > WAVELENGTH_TOLERANCE_NM:
                nearest = int(np.abs(centres - wavelength).argmin())
                raise CheckpointError(
                    f"The LRHSI {info.path} has other wavelengths than the model was trained on: no band of it "
                    f"after band {after} lies within {WAVELENGTH_TOLERANCE_NM:g} nm of the model's band {k + 1} "
                    f"at {wavelength:.1f} nm (the nearest is band {nearest + 1} at {centres[nearest]:.1f} nm; "
                    f"bands must be the same, in the same order); reorder or subset the bands to the model's, "
                    f"or {fix}.")
            sources.append(after + int(gaps.argmin()))
    elif model_bands == len(screen.good) and model_bands != info.band_count:
        sources = list(screen.good)
    elif model_bands == info.band_count:
        sources = list(range(info.band_count))
    else:
        raise CheckpointError(
            f"The model expects {model_bands} hyperspectral bands but the LRHSI {info.path} has "
            f"{info.band_count} ({len(screen.good)} good); {fix}.")
    usable = tuple(screen.reasons[s] is None for s in sources)
    missing = usable.count(False)
    if missing > MAX_MISSING_MODEL_BANDS * model_bands or missing == model_bands:
        raise CheckpointError(
            f"{missing} of the model's {model_bands} bands are bad in the LRHSI {info.path} "
            f"({screen.describe(raster_wl)}); at most {MAX_MISSING_MODEL_BANDS:.0%} can be filled in: {fix}.")
    reasons: list[str | None] = list(screen.reasons)
    used = set(sources)
    for band, reason in enumerate(reasons):
        if reason is None and band not in used:
            reasons[band] = NOT_IN_MODEL
    plan = BandPlan(info.band_count, tuple(sources), usable, tuple(reasons))
    plan = replace(plan, wavelengths_nm=tuple(model_wavelengths_nm) if model_wavelengths_nm is not None else
                   plan.pick(raster_wl))
    wavelengths = plan.wavelengths_nm
    if missing:
        log.warning("%s: %d of the model's bands are bad in this scene: filled in by interpolation for the network "
                    "and written as nodata (%s)", info.path, missing,
                    describe_bands([None if ok else BAD_FOR_MODEL for ok in usable], wavelengths))
    return plan


class BandView:
    """A ``core.raster.RasterReader`` seen through a :class:`BandPlan`: its ``info`` describes the working bands,
    ``read`` / ``read_valid`` return them (unusable ones interpolated), validity counts the usable bands only."""

    def __init__(self, reader, plan: BandPlan) -> None:
        self.reader, self.plan = reader, plan
        base = reader.info
        self.info = replace(
            base, band_count=plan.working_bands,
            nodata=plan.pick(base.nodata), wavelengths_nm=plan.wavelengths_nm, fwhm_nm=plan.pick(base.fwhm_nm),
            band_names=plan.pick(base.band_names), scale=plan.pick(base.scale), offset=plan.pick(base.offset),
            bad_band_flags=None,
        )

    def read(self, window: Window) -> np.ndarray:
        """Working bands of ``window``: float32 ``(C_p, rows, cols)``."""
        return self.plan.fill_missing(self.reader.read(window, self.plan.read_bands))

    def read_valid(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """Working bands of ``window`` and the pixels valid in every usable one: ``(C_p, rows, cols)``, ``(rows,
        cols)`` bool."""
        data, valid = self.reader.read_valid(window, self.plan.read_bands)
        return self.plan.fill_missing(data), valid

    def drop_cache(self) -> None:
        self.reader.drop_cache()
