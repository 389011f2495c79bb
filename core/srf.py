# SPDX-License-Identifier: GPL-2.0-or-later
"""Spectral response functions (SRF) of multispectral sensors and the HSI -> MSI response matrix R.

Wald's protocol simulates the HRMSI as ``Y = R · Z``: ``R`` (MSI bands x HSI bands) is the MSI sensor's
response sampled at the HSI band centres (or integrated against each HSI band's Gaussian when the HSI band
widths are known), each row normalised to sum 1 (see BENCHMARK.md).

Presets (``parse_srf``; the catalogue is ``core.sensors``, ``describe_presets()`` or ``python -m cofusion srf
--list`` lists them with their bands and wavelengths):

- measured responses (``resources/srf``, sources in its README): ``sentinel2a``, ``sentinel2b``, ``sentinel2c``
  (without a band list the 10 m bands B2, B3, B4, B8), ``landsat5`` (TM), ``landsat7`` (ETM+), ``landsat8``
  (OLI), ``landsat9`` (OLI-2; without a band list B2-B7, the bands of ``landsat8``), ``pleiades1a``,
  ``pleiades1b`` (without a band list Blue, Green, Red, NIR, not Pan), ``spot6``, ``spot7``, ``venus``,
  ``rapideye``;
- Gaussian bands from published band edges: ``worldview3``, ``ikonos``, ``rgb`` (a generic consumer camera);
- imaging spectrometers, Gaussian bands from their band tables' centres and FWHM: ``enmap``, ``prisma``,
  ``desis``, ``emit`` (``sensor_wavelengths`` gives the centres and widths themselves). As an SRF they simulate
  that spectrometer from a finer hyperspectral reference.

Gaussian bands are real sensors' band edges, not their measured curves: good to a few nanometres, which is the
accuracy a fusion benchmark needs, but not a radiometric model.
"""
from __future__ import annotations

import csv
import functools
import logging
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError
from .sensors import PRESETS

log = logging.getLogger(__name__)

SRF_DIR = Path(__file__).resolve().parents[1] / "resources" / "srf"

# Share of an MSI band's response that may lie outside the wavelengths the HSI covers: above _WARN_MISSING the
# simulated band misses part of the real one (a warning); above _MAX_MISSING it is mostly made up (an error).
_WARN_MISSING = 0.01
_MAX_MISSING = 0.5
# Neighbouring HSI band centres further apart than this many times the median spacing leave a gap (bands removed,
# e.g. water-vapour absorption) that the HSI does not cover.
_GAP_SPACINGS = 2.5
# A Gaussian HSI band is integrated over +-4 sigma with this many samples.
_GAUSS_SAMPLES = 81
# Lists of more band names than this are written with ranges (B1-B130).
_LONG_BAND_LIST = 16
_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


@dataclass(frozen=True, eq=False)
class SpectralResponse:
    """Relative spectral responses of a multispectral sensor on one wavelength grid.

    Attributes:
        band_names: one short name per band (e.g. ``"B2"``), unique.
        wavelengths_nm: ``(N,)`` sampling grid of the curves in nm, strictly increasing.
        responses: ``(bands, N)`` relative responses, >= 0 (any scale; every use normalises them).

    The arrays are stored as read-only float64 copies. Equality is identity (``eq=False``): compare
    ``matrix(...)`` results to compare two sensors on one HSI grid.
    """

    band_names: tuple[str, ...]
    wavelengths_nm: np.ndarray
    responses: np.ndarray

    def __post_init__(self) -> None:
        names = tuple(str(n) for n in self.band_names)
        wl = np.array(self.wavelengths_nm, dtype=np.float64)
        resp = np.array(self.responses, dtype=np.float64)
        if len(names) == 0:
            raise InputError("A spectral response needs at least one band; none was given.")
        if len(set(n.lower() for n in names)) != len(names):
            raise InputError(f"Band names must be unique (case-insensitive); got {list(names)}.")
        if wl.ndim != 1 or wl.size < 2 or not np.all(np.isfinite(wl)) or np.any(np.diff(wl) <= 0):
            raise InputError("The response wavelengths must be a finite, strictly increasing 1-D grid of at "
                             "least 2 values (nm).")
        if resp.shape != (len(names), wl.size):
            raise InputError(f"The responses must have shape (bands, wavelengths) = "
                             f"({len(names)}, {wl.size}); got {resp.shape}.")
        if not np.all(np.isfinite(resp)) or np.any(resp < 0):
            raise InputError("Spectral responses must be finite and >= 0; fix the negative or missing "
                             "values.")
        empty = [names[i] for i in range(len(names)) if not np.any(resp[i] > 0)]
        if empty:
            raise InputError(f"Band(s) {empty} have an all-zero response; give them a response or drop them.")
        wl.setflags(write=False)
        resp.setflags(write=False)
        object.__setattr__(self, "band_names", names)
        object.__setattr__(self, "wavelengths_nm", wl)
        object.__setattr__(self, "responses", resp)

    def matrix(self, hsi_wavelengths_nm: Sequence[float] | np.ndarray,
               hsi_fwhm_nm: Sequence[float] | np.ndarray | float | None = None) -> np.ndarray:
        """The response matrix ``R``, float64 ``(C_msi, C_hsi)``, each row summing to 1.

        Args:
            hsi_wavelengths_nm: ``(C_hsi,)`` HSI band centres in nm (any order).
            hsi_fwhm_nm: ``(C_hsi,)`` or one value: HSI band widths (FWHM, nm). ``None`` samples the MSI
                response at the HSI band centres; otherwise each entry is the MSI response integrated against
                the HSI band's unit-area Gaussian (bands with a width of 0 are sampled at their centre).

        An MSI band with more than 1 % of its response outside the wavelengths the HSI covers (see
        ``missing_shares``) is simulated from the rest, with a warning that names the missing share.

        Raises:
            InputError: when more than half of an MSI band's response lies outside the wavelengths the HSI covers,
                when an MSI band gets no weight from any HSI band (between two HSI band centres without FWHM),
                or the wavelengths are unusable.
        """
        centres = _hsi_centres(hsi_wavelengths_nm)
        fwhm = None if hsi_fwhm_nm is None else _broadcast_fwhm(hsi_fwhm_nm, centres.size)
        intervals = _hsi_coverage(centres, fwhm)
        missing = self._missing(intervals)
        where = _describe_coverage(intervals)
        bad = [i for i, share in enumerate(missing) if share > _MAX_MISSING]
        if bad:
            covered = [n for i, n in enumerate(self.band_names) if missing[i] <= _MAX_MISSING]
            others = f" and {len(bad) - 1} more ({self._band_list(bad[1:])})" if len(bad) > 1 else ""
            fix = (f"list only bands the HSI covers after the sensor's name (here {self._band_list(covered)}; "
                   "e.g. 'sentinel2a:B2,B3,B4')" if covered else "none of this sensor's bands is covered: use "
                   "another sensor")
            raise InputError(
                f"{self._describe_band(bad[0])}{others}: {100 * missing[bad[0]]:.0f} % of its response lies "
                f"outside the HSI's wavelengths {where}, so the HSI cannot simulate it; {fix} or use an HSI that "
                "spans the band.")
        if hsi_fwhm_nm is None:
            R = np.stack([np.interp(centres, self.wavelengths_nm, r, left=0.0, right=0.0)
                          for r in self.responses])
        else:
            R = self._integrate_gaussians(centres, fwhm)
        for i, row in enumerate(R):
            if not np.any(row > 0):
                raise InputError(
                    f"{self._describe_band(i)} falls between the HSI band centres and gets no weight; give the "
                    "HSI band widths (FWHM) so the bands are integrated, or drop the band.")
        for i, name in enumerate(self.band_names):
            if missing[i] > _WARN_MISSING:
                log.warning("MSI band %r: %.0f %% of its response lies outside the HSI's wavelengths %s; the "
                            "simulated band misses that part and differs from the real one.",
                            name, 100 * missing[i], where)
        return R / R.sum(axis=1, keepdims=True)

    def missing_shares(self, hsi_wavelengths_nm: Sequence[float] | np.ndarray,
                       hsi_fwhm_nm: Sequence[float] | np.ndarray | float | None = None) -> np.ndarray:
        """``(bands,)`` share (0 to 1) of each band's response outside the wavelengths an HSI covers.

        The HSI covers its first to its last band centre (each widened by half its FWHM when ``hsi_fwhm_nm`` is
        given), less the gaps where neighbouring centres lie more than 2.5 median spacings apart (bands left
        out, e.g. for water-vapour absorption). Arguments as for ``matrix``.
        """
        centres = _hsi_centres(hsi_wavelengths_nm)
        fwhm = None if hsi_fwhm_nm is None else _broadcast_fwhm(hsi_fwhm_nm, centres.size)
        return self._missing(_hsi_coverage(centres, fwhm))

    def _missing(self, intervals: list[tuple[float, float]]) -> np.ndarray:
        wl = self.wavelengths_nm
        inside = np.array([sum(_integral(wl, r, a, b) for a, b in intervals) for r in self.responses])
        total = np.array([_trapz(r, wl) for r in self.responses])
        return np.clip(1.0 - inside / total, 0.0, 1.0)

    def _describe_band(self, index: int) -> str:
        support = self.wavelengths_nm[self.responses[index] > 0]
        return f"MSI band {self.band_names[index]!r} (response {support[0]:.0f}-{support[-1]:.0f} nm)"

    def _band_list(self, names_or_indices: Sequence[str] | Sequence[int]) -> str:
        """Band names comma-separated, in this sensor's order; long lists with ranges of consecutive bands."""
        index = {n: i for i, n in enumerate(self.band_names)}
        picked = sorted(index[n] if isinstance(n, str) else int(n) for n in names_or_indices)
        if len(picked) <= _LONG_BAND_LIST:
            return ",".join(self.band_names[i] for i in picked)
        runs: list[list[int]] = []
        for i in picked:
            if runs and i == runs[-1][-1] + 1:
                runs[-1].append(i)
            else:
                runs.append([i])
        return ",".join(self.band_names[r[0]] if len(r) == 1 else f"{self.band_names[r[0]]}-{self.band_names[r[-1]]}"
                        for r in runs)

    def _integrate_gaussians(self, centres: np.ndarray, fwhm: np.ndarray) -> np.ndarray:
        """``(C_msi, C_hsi)`` responses integrated against unit-area Gaussians (FWHM 0: the centre value)."""
        sigma = fwhm / _FWHM_PER_SIGMA
        offsets = np.linspace(-4.0, 4.0, _GAUSS_SAMPLES)
        grid = centres[:, None] + sigma[:, None] * offsets[None, :]          # (C_hsi, K)
        weights = np.exp(-0.5 * offsets ** 2)
        weights /= weights.sum()
        R = np.empty((len(self.band_names), centres.size))
        for i, r in enumerate(self.responses):
            R[i] = np.interp(grid, self.wavelengths_nm, r, left=0.0, right=0.0) @ weights
        return R

    def centre_wavelengths_nm(self) -> np.ndarray:
        """``(bands,)`` response-weighted mean wavelength of each band, nm."""
        wl = self.wavelengths_nm
        return np.array([_trapz(wl * r, wl) / _trapz(r, wl) for r in self.responses])

    def select(self, names: str | Iterable[str]) -> SpectralResponse:
        """The bands ``names`` (in that order; a comma-separated string works too), names case-insensitive.

        ``"B1-B130"`` stands for the bands from B1 to B130 in this sensor's order (when no band is named so).
        The wavelength grid is trimmed to the selected bands' support (plus one zero sample each side).
        """
        items = names.split(",") if isinstance(names, str) else names
        wanted = [str(n).strip() for n in items if str(n).strip()]
        if not wanted:
            raise InputError(f"No band selected; choose from {self._all_bands()}.")
        index = {n.lower(): i for i, n in enumerate(self.band_names)}
        rows: list[int] = []
        unknown = []
        for item in wanted:
            ends = [e.strip().lower() for e in item.split("-")]
            if item.lower() in index:
                rows.append(index[item.lower()])
            elif len(ends) == 2 and ends[0] in index and ends[1] in index and index[ends[0]] <= index[ends[1]]:
                rows.extend(range(index[ends[0]], index[ends[1]] + 1))
            else:
                unknown.append(item)
        if unknown:
            raise InputError(f"Unknown band(s) {unknown}; this sensor has bands {self._all_bands()} (a range "
                             "such as B2-B4 runs in that order).")
        if len(set(rows)) != len(rows):
            raise InputError(f"A band is listed twice in {wanted}; list each band once.")
        resp = self.responses[rows]
        nonzero = np.flatnonzero(resp.max(axis=0) > 0)
        first, last = max(nonzero[0] - 1, 0), min(nonzero[-1] + 2, self.wavelengths_nm.size)
        return SpectralResponse(tuple(self.band_names[i] for i in rows), self.wavelengths_nm[first:last],
                                resp[:, first:last])

    def _all_bands(self) -> str:
        names = self.band_names
        return str(list(names)) if len(names) <= _LONG_BAND_LIST else self._band_list(range(len(names)))

    def to_dict(self) -> dict:
        """A JSON-friendly description (for checkpoint configs); ``from_dict`` rebuilds it exactly."""
        return {"band_names": list(self.band_names), "wavelengths_nm": self.wavelengths_nm.tolist(),
                "responses": self.responses.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> SpectralResponse:
        """Rebuild a response written by ``to_dict``."""
        try:
            return cls(tuple(data["band_names"]), np.asarray(data["wavelengths_nm"], dtype=np.float64),
                       np.asarray(data["responses"], dtype=np.float64))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"Not a spectral response description ({exc}); it needs band_names, "
                             "wavelengths_nm and responses as SpectralResponse.to_dict() writes "
                             "them.") from exc


def _trapz(y: np.ndarray, x: np.ndarray) -> float:
    return float(np.sum(0.5 * (y[1:] + y[:-1]) * np.diff(x)))


def _integral(wl: np.ndarray, r: np.ndarray, a: float, b: float) -> float:
    """The integral over ``[a, b]`` nm of the piecewise-linear curve ``r(wl)`` (0 outside ``wl``)."""
    if b <= a:
        return 0.0
    x = np.concatenate([[a], wl[(wl > a) & (wl < b)], [b]])
    return _trapz(np.interp(x, wl, r, left=0.0, right=0.0), x)


def _hsi_centres(hsi_wavelengths_nm: Sequence[float] | np.ndarray) -> np.ndarray:
    centres = np.asarray(hsi_wavelengths_nm, dtype=np.float64).reshape(-1)
    if centres.size == 0 or not np.all(np.isfinite(centres)):
        raise InputError("The HSI band wavelengths are missing or not finite; set the HSI's wavelength "
                         "metadata (nm) before simulating or fusing with a sensor response.")
    return centres


def _hsi_coverage(centres: np.ndarray, fwhm: np.ndarray | None) -> list[tuple[float, float]]:
    """The wavelength intervals (nm, increasing) an HSI covers; see ``SpectralResponse.missing_shares``."""
    order = np.argsort(centres)
    c = centres[order]
    half = np.zeros_like(c) if fwhm is None else fwhm[order] / 2.0
    spacing = np.diff(c)
    positive = spacing[spacing > 0]
    limit = _GAP_SPACINGS * float(np.median(positive)) if positive.size else math.inf
    intervals = [[c[0] - half[0], c[-1] + half[-1]]]
    for i in np.flatnonzero(spacing > limit):
        gap_start, gap_end = c[i] + half[i], c[i + 1] - half[i + 1]
        if gap_start < gap_end:
            intervals[-1][1] = gap_start
            intervals.append([gap_end, c[-1] + half[-1]])
    return [(float(a), float(b)) for a, b in intervals]


def _describe_coverage(intervals: list[tuple[float, float]]) -> str:
    """E.g. ``'394.6-2448.4 nm'`` or ``'394.6-2448.4 nm except 1378.5-1435.8 nm'``."""
    text = f"{intervals[0][0]:.1f}-{intervals[-1][1]:.1f} nm"
    gaps = [f"{intervals[i][1]:.1f}-{intervals[i + 1][0]:.1f} nm" for i in range(len(intervals) - 1)]
    return text + (f" except {', '.join(gaps)}" if gaps else "")


def _broadcast_fwhm(fwhm: Sequence[float] | np.ndarray | float, count: int) -> np.ndarray:
    values = np.asarray(fwhm, dtype=np.float64).reshape(-1)
    if values.size == 1:
        values = np.full(count, values[0])
    if values.size != count:
        raise InputError(f"Got {values.size} HSI band widths (FWHM) for {count} HSI bands; give one per "
                         "band.")
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise InputError("HSI band widths (FWHM, nm) must be finite and >= 0; fix or omit them.")
    return values


def gaussian_bands(centres_nm: Sequence[float] | np.ndarray, fwhm_nm: Sequence[float] | np.ndarray | float,
                   names: Sequence[str] | None = None) -> SpectralResponse:
    """A custom sensor of Gaussian bands (peak 1) with the given centres and full widths at half maximum, nm.

    Each curve is sampled over ``centre +- 3 FWHM`` (0 beyond, where the Gaussian is below 2e-11) on one grid of
    a step of at most 1 nm and at most FWHM / 10. ``names`` defaults to ``B1, B2, ...``.
    """
    centres = np.asarray(centres_nm, dtype=np.float64).reshape(-1)
    if centres.size == 0 or not np.all(np.isfinite(centres)) or np.any(centres <= 0):
        raise InputError("Gaussian band centres must be one or more positive wavelengths in nm.")
    fwhm = _broadcast_fwhm(fwhm_nm, centres.size)
    if np.any(fwhm <= 0):
        raise InputError("Gaussian band widths (FWHM, nm) must be > 0.")
    names = tuple(names) if names is not None else tuple(f"B{i + 1}" for i in range(centres.size))
    if len(names) != centres.size:
        raise InputError(f"Got {len(names)} band names for {centres.size} Gaussian bands; give one per band.")
    step = min(1.0, float(fwhm.min()) / 10.0)
    lo, hi = float(np.min(centres - 3 * fwhm)), float(np.max(centres + 3 * fwhm))
    grid = np.linspace(lo, hi, int(math.ceil((hi - lo) / step)) + 1)
    sigma = fwhm / _FWHM_PER_SIGMA
    offset = grid[None, :] - centres[:, None]
    responses = np.exp(-0.5 * (offset / sigma[:, None]) ** 2)
    responses[np.abs(offset) > 3 * fwhm[:, None]] = 0.0
    return SpectralResponse(names, grid, responses)


def load_csv(path: str | Path) -> SpectralResponse:
    """Read a sensor's responses from a CSV file.

    Two layouts are accepted (header row required, wavelengths in nm; a first header naming micrometres,
    ``um``/``µm``/``micro``, converts them):

    - long: columns ``band,wavelength_nm,response``, one row per band and wavelength (resources/srf/*.csv);
      bands keep the order of their first appearance and may have different wavelength ranges.
    - wide: first column the wavelength, then one column per band named by its header.

    The bands are put on the union of their wavelengths; a band is 0 outside its own listed range.
    """
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            rows = [r for r in csv.reader(fh) if any(cell.strip() for cell in r)]
    except OSError as exc:
        raise InputError(f"Cannot read the spectral response file {path}: {exc.strerror or exc}. "
                         "Check the path.") from exc
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not a UTF-8 text CSV file; export the spectral responses as "
                         "CSV.") from exc
    if len(rows) < 3:
        raise InputError(f"{path} has fewer than 2 data rows; a spectral response CSV needs a header and at "
                         "least 2 wavelengths per band.")
    header = [h.strip().lower() for h in rows[0]]
    try:
        if header[:3] == ["band", "wavelength_nm", "response"]:
            curves = _long_curves(rows[1:])
        else:
            curves = _wide_curves(rows[0], rows[1:])
    except (ValueError, IndexError) as exc:
        raise InputError(
            f"Cannot parse the spectral response CSV {path} ({exc}). Use either a long table with the header "
            "'band,wavelength_nm,response' or a wide table with the wavelength (nm) first and one column "
            "per band.") from exc
    if re.search(r"(?<![a-z])(um|µm|micro)", header[0]):
        curves = {name: (wl * 1000.0, r) for name, (wl, r) in curves.items()}
    return _from_curves(curves, str(path))


def _long_curves(rows: list[list[str]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    acc: dict[str, list[tuple[float, float]]] = {}
    for i, row in enumerate(rows, start=2):
        if len(row) < 3:
            raise ValueError(f"line {i} has {len(row)} columns, expected 3")
        acc.setdefault(row[0].strip(), []).append((float(row[1]), float(row[2])))
    return {name: tuple(np.array(v, dtype=np.float64).T) for name, v in acc.items()}


def _wide_curves(header: list[str], rows: list[list[str]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    if len(header) < 2:
        raise ValueError("only one column")
    table = np.array([[float(c) for c in row] for row in rows], dtype=np.float64)
    if table.ndim != 2 or table.shape[1] != len(header):
        raise ValueError("rows have a different number of columns than the header")
    return {name.strip(): (table[:, 0], table[:, j]) for j, name in enumerate(header[1:], start=1)}


def _end_step(wl: np.ndarray, end: int) -> float:
    """The sample spacing of a band's wavelengths at its first (``end=0``) or last (``end=-1``) sample."""
    if wl.size < 2:
        raise InputError("A band lists fewer than 2 wavelengths; give at least 2 samples per band.")
    ordered = np.sort(wl)
    return float(ordered[1] - ordered[0]) if end == 0 else float(ordered[-1] - ordered[-2])


def _from_curves(curves: dict[str, tuple[np.ndarray, np.ndarray]], source: str) -> SpectralResponse:
    for name, (wl, _) in curves.items():
        if np.unique(wl).size != wl.size:
            raise InputError(f"Band {name!r} in {source} lists a wavelength twice; keep one row per "
                             "wavelength.")
    # Each band drops to 0 one of its own sample steps beyond its listed range: put those zeros on the grid so
    # that a band is not interpolated across a stretch where only other bands are listed.
    ends = [[wl.min() - _end_step(wl, 0), wl.max() + _end_step(wl, -1)] for wl, _ in curves.values()]
    grid = np.unique(np.concatenate([wl for wl, _ in curves.values()] + ends))
    responses = []
    for name, (wl, r) in curves.items():
        if np.any(r < 0):
            log.warning("Band %r in %s has negative responses (min %.3g); they are set to 0.",
                        name, source, r.min())
        order = np.argsort(wl)
        responses.append(np.interp(grid, wl[order], np.clip(r[order], 0.0, None), left=0.0, right=0.0))
    return SpectralResponse(tuple(curves), grid, np.stack(responses))


def _leading_band_id(label: str) -> str:
    match = re.match(r"\s*(B\d+A?)\b", label, flags=re.IGNORECASE)
    if match is None:
        raise InputError(f"Cannot find a band id 'B<n>' at the start of the label {label!r} in the "
                         "preset's table.")
    return match.group(1).upper()


@functools.cache
def _band_table(file_name: str) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """A spectrometer's band table in resources/srf: names ``B<band>``, ``(bands,)`` centres and FWHM in nm."""
    path = SRF_DIR / file_name
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        names = tuple(f"B{row['band'].strip()}" for row in rows)
        centres = np.array([float(row["wavelength_nm"]) for row in rows])
        fwhm = np.array([float(row["fwhm_nm"]) for row in rows])
    except (OSError, KeyError, ValueError) as exc:
        raise InputError(f"The band table {path} is missing or damaged ({exc}); reinstall the plugin.") from exc
    centres.setflags(write=False)
    fwhm.setflags(write=False)
    return names, centres, fwhm


@functools.cache
def _preset_response(name: str) -> SpectralResponse:
    """All bands of the catalogue's preset ``name`` (lower case), in the preset's order and with its names."""
    preset = PRESETS[name]
    if preset.band_table is not None:
        names, centres, fwhm = _band_table(preset.band_table)
        return gaussian_bands(centres, fwhm, names)
    if preset.gaussians:
        return gaussian_bands([g[1] for g in preset.gaussians], [g[2] for g in preset.gaussians],
                              [g[0] for g in preset.gaussians])
    full = load_csv(SRF_DIR / preset.responses)
    if preset.band_ids is None:
        return SpectralResponse(tuple(_leading_band_id(n) for n in full.band_names), full.wavelengths_nm,
                                full.responses)
    picked = full.select([label for label, _ in preset.band_ids])
    return SpectralResponse(tuple(short for _, short in preset.band_ids), picked.wavelengths_nm,
                            picked.responses)


def preset_names() -> list[str]:
    """The sensor presets ``parse_srf`` knows (aliases included)."""
    return list(PRESETS)


def describe_presets() -> dict[str, str]:
    """One line per preset name: the sensor, its bands and the wavelengths they span, e.g. ``"sentinel2a"``:
    ``"Sentinel-2A MSI, ESA measured responses; 13 bands B1,...,B12; half-maximum edges 433-2286 nm; default
    B2,B3,B4,B8"`` (from the lowest band's lower to the highest band's upper half-maximum wavelength).

    A spectrometer's line gives the span of its band centres and its FWHM range instead."""
    lines = {}
    for name, preset in PRESETS.items():
        response = _preset_response(name)
        bands = f"{len(response.band_names)} bands {response._band_list(response.band_names)}"
        if preset.band_table is not None:
            _, centres, fwhm = _band_table(preset.band_table)
            span = (f"centres {centres.min():.0f}-{centres.max():.0f} nm, FWHM {fwhm.min():.1f}-"
                    f"{fwhm.max():.1f} nm")
        else:
            wl, curves = response.wavelengths_nm, response.responses
            edges = wl[np.any(curves >= 0.5 * curves.max(axis=1, keepdims=True), axis=0)]
            span = f"half-maximum edges {edges[0]:.0f}-{edges[-1]:.0f} nm"
        default = f"; default {','.join(preset.default_bands)}" if preset.default_bands else ""
        lines[name] = f"{preset.sensor}; {bands}; {span}{default}"
    return lines


def sensor_wavelengths(name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(centres_nm, fwhm_nm)``, each ``(bands,)`` float64 in nm in the sensor's band order, of an imaging
    spectrometer preset (``enmap``, ``prisma``, ``desis``, ``emit``; case-insensitive), from its band table."""
    preset = PRESETS.get(str(name).strip().lower())
    if preset is None or preset.band_table is None:
        known = ", ".join(n for n, p in PRESETS.items() if p.band_table is not None)
        raise InputError(f"{name!r} is not an imaging spectrometer preset; band centres and widths are known for "
                         f"{known}.")
    _, centres, fwhm = _band_table(preset.band_table)
    return centres.copy(), fwhm.copy()


def parse_srf(spec: str) -> SpectralResponse:
    """A sensor response from a specification string.

    Forms: ``"<preset>"`` (its default bands, e.g. Sentinel-2's 10 m bands B2,B3,B4,B8; all bands for most;
    see ``describe_presets()``), ``"<preset>:B2,B3,B4"`` (those bands, in that order; ``B1-B130`` is a range),
    ``"<preset>:all"``, ``"<path.csv>"`` or ``"<path.csv>:band1,band2"``. Preset and band names are
    case-insensitive.
    """
    spec = str(spec).strip()
    if not spec:
        raise InputError(f"No MSI sensor given; name a preset ({', '.join(preset_names())}) or a CSV file.")
    source, bands = spec, None
    head, sep, tail = spec.rpartition(":")
    head = head.strip()
    if sep and (head.lower() in PRESETS or (Path(head).is_file() and not Path(spec).is_file())):
        source, bands = head, tail
    preset = PRESETS.get(source.lower())
    if preset is not None:
        full = _preset_response(source.lower())
        if bands is None:
            return full.select(preset.default_bands) if preset.default_bands else full
    elif Path(source).is_file():
        full = load_csv(source)
    else:
        raise InputError(f"Unknown MSI sensor {spec!r}: it is neither a preset ({', '.join(preset_names())}) "
                         "nor an existing CSV file. Use e.g. 'sentinel2a:B2,B3,B4,B8' or the path of a "
                         "response CSV.")
    if bands is None or bands.strip().lower() == "all":
        return full
    return full.select(bands)
