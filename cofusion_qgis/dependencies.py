# SPDX-License-Identifier: GPL-2.0-or-later
"""Runtime dependencies inside QGIS: which are missing, and installing them with pip. No QGIS imports, standard
library only: this file is also a script that QGIS's Python runs (``python dependencies.py plan|install|check``).

QGIS ships its own Python with NumPy, GDAL's bindings, PyQt and usually SciPy, PyWavelets and pyqtgraph, but
without PyTorch, safetensors or spectral. ``runtime()`` lists every package the plugin imports, by distribution
and import name; ``missing`` checks them with ``importlib.util.find_spec`` (nothing is imported) and ``check``
imports them in a separate process (the truth, without loading torch into QGIS).

The installer never installs or shadows a package QGIS already has: those are built against each other (GDAL's
numpy bindings, SciPy) and a second copy breaks QGIS and every plugin using them.

- pip installs an explicit list with ``--no-deps``: the missing requirements (``requirements.txt`` pins) and the
  dependencies their wheels declare (read from the wheel's metadata where the index serves it, else the
  ``KNOWN_DEPENDENCIES`` table), minus every distribution QGIS's Python can already import (by distribution and
  by import name). After pip, the metadata of what landed in the folder is read again and anything still
  missing is installed the same way (e.g. NVIDIA's libraries of a CUDA build on Linux).
- pip also gets a constraints file pinning every distribution QGIS's Python sees (``name==version``), so a
  package that slipped into the list could only be the very version QGIS has.
- the folder goes *after* QGIS's own paths on ``sys.path`` (``activate``): a package QGIS has is never loaded from
  it. Copies left there by an older installer are removed before installing (``prune``).

PyTorch comes in a CPU build and CUDA builds, served by PyTorch's own package indexes (``TORCH_INDEXES``; any
index can be given); the rest comes from PyPI (or another index). With ``find_links`` (a folder of wheels) pip
works offline. ``plan`` states the download size before anything is downloaded: the index's file list gives each
chosen wheel's URL, and its size comes from the index (PEP 700) or an HTTP HEAD request; where the index cannot be
asked, ``APPROXIMATE_SIZES`` gives an "about" figure.
"""
from __future__ import annotations

import argparse
import contextlib
import email.parser
import html.parser
import importlib
import importlib.machinery
import importlib.metadata
import importlib.util
import json
import os
import platform
import queue
import re
import shutil
import subprocess
import sys
import sysconfig
import threading
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

#: The pinned runtime requirements; shipped in the plugin zip.
REQUIREMENTS_FILE = Path(__file__).resolve().parents[1] / "requirements.txt"
#: Package indexes of the PyTorch builds the user can choose between.
TORCH_INDEXES = {
    "cpu": "https://download.pytorch.org/whl/cpu",
    "cuda": "https://download.pytorch.org/whl/cu128",
}
#: Where every other package comes from.
PYPI = "https://pypi.org/simple"
TORCH = "torch"
#: Lines of ``python dependencies.py`` that carry an event (JSON) rather than pip's output.
EVENT = "@cofusion "
#: The environment variable by which QGIS hands its ``sys.path`` to the script (os.pathsep-separated).
QGIS_PATH_VARIABLE = "COFUSION_QGIS_PATH"

#: Import names of distributions whose module is not the distribution name with '-' -> '_'.
IMPORT_NAMES = {"pywavelets": "pywt", "gdal": "osgeo", "pyyaml": "yaml", "pillow": "PIL", "pyqt5": "PyQt5",
                "scikit-image": "skimage", "typing-extensions": "typing_extensions", "markupsafe": "markupsafe"}

#: What the packages a plugin install may need declare, for when the index serves no metadata (the real
#: metadata is read where it can be; the folder's metadata is checked again after pip).
KNOWN_DEPENDENCIES = {
    "torch": ("filelock", "typing-extensions>=4.10.0", "setuptools", "sympy>=1.13.3", "networkx>=2.5.1", "jinja2",
              "fsspec>=0.8.5"),
    "sympy": ("mpmath>=1.1.0,<1.4",),
    "jinja2": ("MarkupSafe>=2.0",),
    "spectral": ("numpy",),
    "safetensors": (),
    "scipy": ("numpy",),
    "pywavelets": ("numpy",),
    "pyqtgraph": ("numpy",),
}

#: Download sizes in MB when the index cannot be asked (PyTorch 2.13 wheels for CPython 3.11); labelled "about".
APPROXIMATE_SIZES = {
    ("torch", "cpu", "linux-x86_64"): 192, ("torch", "cpu", "win-amd64"): 122,
    ("torch", "cpu", "macosx-arm64"): 111, ("torch", "cuda", "linux-x86_64"): 3400,
    ("torch", "cuda", "win-amd64"): 3000, ("sympy", "", ""): 6.3, ("networkx", "", ""): 2.1,
    ("setuptools", "", ""): 1.2, ("mpmath", "", ""): 0.5, ("fsspec", "", ""): 0.2, ("jinja2", "", ""): 0.13,
    ("typing-extensions", "", ""): 0.05, ("filelock", "", ""): 0.02, ("markupsafe", "", ""): 0.02,
    ("safetensors", "", ""): 0.5, ("spectral", "", ""): 0.2, ("scipy", "", ""): 35, ("pywavelets", "", ""): 4.5,
    ("pyqtgraph", "", ""): 1.9,
}


class InstallError(Exception):
    """pip failed or was stopped; the message says how and what to do."""


class Canceled(InstallError):
    """The user stopped the installation."""


@dataclass(frozen=True)
class Requirement:
    """One runtime package: ``name`` the distribution (``PyWavelets``), ``spec`` as pip takes it
    (``torch==2.13.0``), ``import_name`` the module it provides when that is not the name with '-' -> '_'
    (``pywt``), ``label`` what the user reads; ``with_qgis``: it normally comes with QGIS (checked, installed only
    where QGIS lacks it); ``installable`` False: the plugin never installs it (NumPy, GDAL: QGIS is built on them).
    """

    name: str
    spec: str
    import_name: str = ""
    label: str = ""
    with_qgis: bool = False
    installable: bool = True

    @property
    def module(self) -> str:
        return self.import_name or IMPORT_NAMES.get(normalize(self.name), self.name.replace("-", "_"))

    @property
    def title(self) -> str:
        return self.label or self.name


LABELS = {"torch": "PyTorch", "safetensors": "safetensors", "spectral": "spectral (SPy)"}


def normalize(name: str) -> str:
    """A distribution name as PEP 503 compares them: lower case, runs of '-', '_', '.' as one '-'."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _split(spec: str) -> str:
    return re.split(r"[<>=!~ ;\[(]", spec.strip(), maxsplit=1)[0]


def read_requirements(path: str | os.PathLike = REQUIREMENTS_FILE) -> tuple[Requirement, ...]:
    """The requirements of a pip requirements file that apply to this interpreter (comments, blank lines and
    lines whose environment marker is false skipped: ``torch==2.8.0; python_version < "3.10"`` for QGIS's
    Python 3.9 on Windows)."""
    found = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        spec = line.split("#", 1)[0].strip()
        if spec and _applies(spec):
            name = _split(spec)
            found.append(Requirement(name, spec.split(";", 1)[0].strip(), label=LABELS.get(normalize(name), "")))
    return tuple(found)


def _applies(spec: str) -> bool:
    """Whether a requirement's environment marker (after ';') holds here (True without one), evaluated by
    ``packaging``; without it only ``python_version OP "X.Y"`` markers are understood (others hold)."""
    if ";" not in spec:
        return True
    pk = _packaging()
    if pk is not None:
        return bool(pk[3].Requirement(spec).marker.evaluate())
    marker = spec.split(";", 1)[1].strip()
    found = re.fullmatch(r"""python_version\s*(<=|>=|==|!=|<|>)\s*["'](\d+)\.(\d+)["']""", marker)
    if found is None:
        return True
    here, there = sys.version_info[:2], (int(found.group(2)), int(found.group(3)))
    return {"<": here < there, "<=": here <= there, ">": here > there, ">=": here >= there, "==": here == there,
            "!=": here != there}[found.group(1)]


def runtime(path: str | os.PathLike = REQUIREMENTS_FILE) -> tuple[Requirement, ...]:
    """Every package the plugin imports at run time (core, training, cofusion_qgis): the pinned ones of
    ``requirements.txt`` (installed by the plugin) and those that come with QGIS."""
    return read_requirements(path) + (
        Requirement("numpy", "numpy", label="NumPy", with_qgis=True, installable=False),
        Requirement("GDAL", "GDAL", "osgeo", "GDAL's Python bindings (osgeo)", with_qgis=True, installable=False),
        Requirement("scipy", "scipy", label="SciPy", with_qgis=True),
        Requirement("PyWavelets", "PyWavelets", "pywt", "PyWavelets (pywt)", with_qgis=True),
        Requirement("pyqtgraph", "pyqtgraph", label="pyqtgraph (the spectra plot)", with_qgis=True),
    )


#: The modules ``check`` imports for a requirement's module (the parts the plugin uses).
CHECK_IMPORTS = {"osgeo": ("osgeo.gdal", "osgeo.gdal_array"), "scipy": ("scipy.ndimage", "scipy.optimize"),
                 "safetensors": ("safetensors", "safetensors.torch")}


def missing(requirements: Sequence[Requirement] | None = None) -> list[Requirement]:
    """The requirements (default ``runtime()``) whose module cannot be found on ``sys.path`` (nothing is
    imported; ``check`` imports them)."""
    importlib.invalidate_caches()
    return [r for r in (runtime() if requirements is None else requirements)
            if importlib.util.find_spec(r.module) is None]


def site_dir(base: str | os.PathLike) -> Path:
    """The folder packages are installed into under ``base`` (a per-user folder, e.g. the QGIS profile's
    folder); one per Python minor version, since compiled wheels fit only the Python they were built for."""
    return Path(base) / "cofusion" / f"python{sys.version_info.major}.{sys.version_info.minor}"


def activate(folder: str | os.PathLike) -> bool:
    """Put ``folder`` on ``sys.path`` when it exists, *last*: QGIS's own packages always win over a copy in the
    folder (an older plugin put it first: it is moved to the end). Returns whether it is on the path."""
    path = os.fspath(folder)
    if not os.path.isdir(path):
        return False
    if path in sys.path:
        if sys.path[-1] == path:
            return True
        sys.path[:] = [p for p in sys.path if p != path]
    sys.path.append(path)
    importlib.invalidate_caches()
    return True


def _inside(path: str, folders: Sequence[Path]) -> bool:
    try:
        resolved = Path(path or os.getcwd()).resolve()
    except OSError:
        return False
    return any(resolved == f or f in resolved.parents for f in folders)


def qgis_paths(exclude: Iterable[str | os.PathLike] = (), path: Sequence[str] | None = None) -> list[str]:
    """QGIS's own import paths: ``path`` (default: what QGIS handed over in COFUSION_QGIS_PATH, else
    ``sys.path``) without the entries inside ``exclude`` (the plugin's site folder)."""
    if path is None:
        handed = os.environ.get(QGIS_PATH_VARIABLE)
        path = handed.split(os.pathsep) if handed else sys.path
    folders = [Path(f).resolve() for f in exclude]
    return [p for p in path if not _inside(p, folders)]


@dataclass(frozen=True)
class Installed:
    """A distribution found on some paths: its name as written, version, and the folder it lies in."""

    name: str
    version: str
    location: str


def distributions(paths: Sequence[str]) -> dict[str, Installed]:
    """Every distribution importlib.metadata finds on ``paths``, by normalized name; the first one on the path
    wins (the one Python imports)."""
    found: dict[str, Installed] = {}
    for dist in importlib.metadata.distributions(path=list(paths)):
        try:
            name, version = dist.metadata["Name"], dist.version
        except Exception:  # noqa: BLE001 (a broken .dist-info of some other package must not stop the check)
            continue
        if not name or not version:
            continue
        location = str(getattr(dist, "_path", ""))
        found.setdefault(normalize(name), Installed(name, version, location))
    return found


def module_found(module: str, paths: Sequence[str]) -> bool:
    """Whether the top-level package of ``module`` can be imported from ``paths`` (nothing is imported)."""
    top = module.split(".")[0]
    if top in sys.builtin_module_names:
        return True
    try:
        return importlib.machinery.PathFinder.find_spec(top, list(paths)) is not None
    except (ImportError, ValueError):
        return False


_VERSION = re.compile(r"^\s*v?(\d+!)?\d+(\.\d+)*((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?(\+[a-z0-9.]+)?\s*$", re.I)


def constraints(paths: Sequence[str]) -> str:
    """A pip constraints file pinning every distribution on ``paths`` to its version (``name==version``, one a
    line; versions pip cannot parse are left out)."""
    lines = [f"{normalize(d.name)}=={d.version}" for d in distributions(paths).values()
             if _VERSION.match(d.version) and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", d.name)]
    return "".join(line + "\n" for line in sorted(lines))


# --------------------------------------------------------------------------------------------- the plan
@dataclass
class Package:
    """One distribution the installer will install: ``spec`` for pip, ``index`` it comes from (None: the
    find-links folder), who needs it, and what the plan found: version, file, size in bytes (None: unknown),
    ``approximate``: the size is a table's estimate."""

    name: str
    spec: str
    index: str | None = None
    needed_by: str = ""
    version: str = ""
    file: str = ""
    url: str = ""
    size: int | None = None
    approximate: bool = False

    @property
    def pinned(self) -> str:
        """What pip is asked for: ``name==version`` when the plan chose a version, else the spec."""
        return f"{self.name}=={self.version}" if self.version else self.spec


@dataclass
class Plan:
    """What ``install`` does: ``packages`` to install, ``kept`` (name, version, reason) of those QGIS has,
    ``notes`` for the user, ``pruned`` copies of QGIS's packages found in the folder (removed first)."""

    packages: list[Package] = field(default_factory=list)
    kept: list[tuple[str, str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    pruned: list[tuple[str, str]] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(p.size or 0 for p in self.packages)

    @property
    def approximate(self) -> bool:
        return any(p.approximate or p.size is None for p in self.packages)

    def describe(self) -> str:
        """One line: 'Download: 205 MB (torch 192 MB, sympy 6.3 MB, ...)', 'about' where estimated."""
        if not self.packages:
            return "Nothing to download."
        parts = [f"{p.name} {'about ' if p.approximate else ''}{format_size(p.size)}" if p.size is not None
                 else f"{p.name} (size unknown)" for p in sorted(self.packages, key=lambda p: -(p.size or 0))]
        total = format_size(self.size)
        return f"Download: {'about ' if self.approximate else ''}{total} ({', '.join(parts)})."

    def to_json(self) -> dict:
        return {"packages": [asdict(p) for p in self.packages], "kept": self.kept, "notes": self.notes,
                "pruned": self.pruned, "size": self.size, "approximate": self.approximate,
                "text": self.describe()}

    @classmethod
    def from_json(cls, data: dict) -> Plan:
        return cls([Package(**p) for p in data.get("packages", [])], [tuple(k) for k in data.get("kept", [])],
                   list(data.get("notes", [])), [tuple(p) for p in data.get("pruned", [])])


def format_size(size: float | None) -> str:
    """Bytes as '192 MB', '1.2 GB', '350 kB'."""
    if size is None:
        return "unknown size"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            value = size / scale
            return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"
    return f"{int(size)} B"


def _packaging():
    """The ``packaging`` library (or pip's copy of it) for wheel tags, versions and markers; None if neither."""
    for prefix in ("packaging", "pip._vendor.packaging"):
        try:
            return tuple(importlib.import_module(f"{prefix}.{part}")
                         for part in ("tags", "version", "specifiers", "requirements"))
        except ImportError:
            continue
    return None


def platform_key() -> str:
    """'linux-x86_64', 'win-amd64', 'macosx-arm64' (the APPROXIMATE_SIZES key)."""
    key = sysconfig.get_platform()
    return re.sub(r"^macosx-[\d.]+-", "macosx-", key)


@dataclass
class IndexFile:
    filename: str
    url: str
    size: int | None = None
    requires_python: str = ""
    metadata: bool = False
    yanked: bool = False


class _Anchors(html.parser.HTMLParser):
    def __init__(self, base: str) -> None:
        super().__init__()
        self.base, self.files, self._attrs = base, [], None

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self._attrs = dict(attrs)

    def handle_data(self, data):
        if self._attrs is not None and self._attrs.get("href"):
            a = self._attrs
            self.files.append(IndexFile(
                data.strip() or urllib.parse.unquote(a["href"].split("#")[0].rsplit("/", 1)[-1]),
                urllib.parse.urljoin(self.base, a["href"]), None, a.get("data-requires-python") or "",
                bool(a.get("data-core-metadata") or a.get("data-dist-info-metadata")), "data-yanked" in a))
        self._attrs = None


def _open(url: str, *, method: str = "GET", accept: str | None = None, timeout: float = 20.0):
    headers = {"User-Agent": "cofusion-qgis-installer"}
    if accept:
        headers["Accept"] = accept
    context = None
    cafile = os.environ.get("PIP_CERT") or os.environ.get("REQUESTS_CA_BUNDLE")
    if url.startswith("https:") and cafile and os.path.isfile(cafile):
        import ssl

        context = ssl.create_default_context(cafile=cafile)
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers, method=method), timeout=timeout,
                                  context=context)


def index_files(index: str, name: str) -> list[IndexFile]:
    """The files of project ``name`` on a PEP 503 / PEP 691 simple index (HTML or JSON)."""
    url = index.rstrip("/") + "/" + normalize(name) + "/"
    if url.startswith("file:"):
        folder = Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path))
        page = folder / "index.html"
        if not page.is_file():
            return folder_files(folder) if folder.is_dir() else []
        parser = _Anchors(page.as_uri())
        parser.feed(page.read_text(encoding="utf-8", errors="replace"))
        return parser.files
    with _open(url, accept="application/vnd.pypi.simple.v1+json, text/html;q=0.1") as response:
        kind, body = response.headers.get("Content-Type", ""), response.read()
        base = response.geturl()
    if "json" in kind:
        return [IndexFile(f["filename"], urllib.parse.urljoin(base, f["url"]), f.get("size"),
                          f.get("requires-python") or "",
                          bool(f.get("core-metadata") or f.get("dist-info-metadata")), bool(f.get("yanked")))
                for f in json.loads(body).get("files", [])]
    parser = _Anchors(base)
    parser.feed(body.decode("utf-8", "replace"))
    return parser.files


def folder_files(folder: str | os.PathLike) -> list[IndexFile]:
    """The wheels and sdists in a find-links folder, with their sizes."""
    return [IndexFile(p.name, p.resolve().as_uri(), p.stat().st_size, metadata=p.suffix == ".whl")
            for p in sorted(Path(folder).iterdir()) if p.suffix == ".whl" or p.name.endswith(".tar.gz")]


def _wheel_parts(filename: str):
    """(name, version, 'py-abi-plat' tag string) of a wheel file name, else None."""
    parts = filename[:-4].split("-")
    if not filename.endswith(".whl") or len(parts) not in (5, 6):
        return None
    return parts[0], parts[1], "-".join(parts[-3:])


def _sdist_parts(filename: str):
    match = re.fullmatch(r"(.+)-([^-]+)\.tar\.gz", filename)
    return (match.group(1), match.group(2)) if match else None


def choose(files: Sequence[IndexFile], spec: str, pk=None) -> tuple[IndexFile, str] | None:
    """The file pip would pick for ``spec`` among ``files`` (newest version allowed by the spec and this Python,
    a wheel for this interpreter's best tag before an sdist), with its version; None if none fits."""
    pk = pk or _packaging()
    if pk is None:
        return None
    tags, version_mod, specifiers, requirements = pk
    requirement = requirements.Requirement(spec)
    ranks = {str(t): i for i, t in enumerate(tags.sys_tags())}
    python = platform.python_version()
    best = None
    for f in files:
        parts = _wheel_parts(f.filename) or _sdist_parts(f.filename)
        if parts is None or f.yanked or normalize(parts[0]) != normalize(requirement.name):
            continue
        try:
            version = version_mod.Version(parts[1])
            if f.requires_python and not specifiers.SpecifierSet(f.requires_python).contains(python):
                continue
        except (version_mod.InvalidVersion, specifiers.InvalidSpecifier):
            continue
        if not requirement.specifier.contains(version, prereleases=bool(requirement.specifier.prereleases)):
            continue
        if len(parts) == 3:
            matched = [ranks[str(t)] for t in tags.parse_tag(parts[2]) if str(t) in ranks]
            if not matched:
                continue
            key = (version, 1, -min(matched))
        else:
            key = (version, 0, 0)
        if best is None or key > best[0]:
            best = (key, f, parts[1])
    return (best[1], best[2]) if best else None


def _metadata_text(f: IndexFile) -> str | None:
    """The core metadata of a chosen file: from a local wheel, or the index's PEP 658 file; None otherwise."""
    if not f.metadata:
        return None
    if f.url.startswith("file:"):
        path = urllib.request.url2pathname(urllib.parse.urlparse(f.url).path)
        with zipfile.ZipFile(path) as wheel:
            names = [n for n in wheel.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n)]
            return wheel.read(names[0]).decode("utf-8", "replace") if names else None
    with _open(f.url.split("#")[0] + ".metadata") as response:
        return response.read().decode("utf-8", "replace")


def requires(metadata_text: str, pk=None) -> list[str] | None:
    """The requirements a distribution's metadata declares for this platform and no extras ('name>=1.0'), or
    None where they cannot be evaluated (no packaging library)."""
    pk = pk or _packaging()
    if pk is None:
        return None
    found = []
    for line in email.parser.Parser().parsestr(metadata_text, headersonly=True).get_all("Requires-Dist") or []:
        try:
            requirement = pk[3].Requirement(line)
        except Exception:  # noqa: BLE001 (an unparsable line of another package's metadata: skipped)
            continue
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        found.append(requirement.name + str(requirement.specifier))
    return found


def _satisfied(spec: str, version: str, pk) -> bool:
    if pk is None:
        return True
    try:
        requirement = pk[3].Requirement(spec)
        return requirement.specifier.contains(pk[1].Version(version), prereleases=True)
    except Exception:  # noqa: BLE001 (Debian's odd versions, e.g. mpmath 0.0.0 or '1.2.3-4': assume fine)
        return True


def make_plan(requirements: Sequence[Requirement], target: str | os.PathLike, variant: str = "cpu", *,
              torch_index: str | None = None, index: str | None = None, find_links: str | os.PathLike | None = None,
              query: bool = True, paths: Sequence[str] | None = None) -> Plan:
    """What installing ``requirements`` into ``target`` takes: the installable ones QGIS lacks and, recursively,
    what their wheels declare (else ``KNOWN_DEPENDENCIES``), minus everything QGIS's Python already has (by
    distribution name or import name), with the file pip will download and its size. ``query`` False: nothing is
    asked from the network (sizes from ``APPROXIMATE_SIZES``)."""
    if variant not in TORCH_INDEXES:
        raise InstallError(f"PyTorch build {variant!r} is not one of {', '.join(TORCH_INDEXES)}.")
    torch_index, index = torch_index or TORCH_INDEXES[variant], index or PYPI
    qgis = qgis_paths([target], paths)
    have = distributions(qgis)
    in_target = distributions([os.fspath(target)]) if os.path.isdir(target) else {}
    pk = _packaging()
    plan = Plan(pruned=[(d.name, d.version) for key, d in in_target.items() if key in have])
    planned: dict[str, Package] = {}
    listings: dict[tuple[str, str], list[IndexFile]] = {}

    def qgis_has(name: str) -> Installed | None:
        key = normalize(name)
        if key in have:
            return have[key]
        return Installed(name, "?", "") if module_found(IMPORT_NAMES.get(key, name.replace("-", "_")), qgis) else None

    def listing(source: str) -> list[IndexFile]:
        if (source, "") not in listings:
            listings[(source, "")] = folder_files(source)
        return listings[(source, "")]

    todo = [(r.spec, "") for r in requirements if r.installable]
    kept_note = {normalize(r.name) for r in requirements if not r.installable}
    for name in sorted(kept_note):
        found = qgis_has(name)
        if found is None:
            plan.notes.append(f"{name} is missing from QGIS's Python and is not installed by this plugin: "
                              "reinstall QGIS (it is part of QGIS).")
    while todo:
        spec, parent = todo.pop(0)
        name = _split(spec)
        key = normalize(name)
        if key in planned:
            continue
        found = qgis_has(name)
        if found is not None:
            reason = f"needed by {parent}" if parent else "requested"
            plan.kept.append((found.name, found.version, reason))
            if parent and found.version != "?" and not _satisfied(spec, found.version, pk):
                plan.notes.append(f"QGIS's {found.name} {found.version} is kept although {parent} asks for "
                                  f"{spec}: the plugin never replaces a package of QGIS's Python.")
            continue
        source = os.fspath(find_links) if find_links is not None else (torch_index if key == TORCH else index)
        package = Package(name, spec, None if find_links is not None else source, parent)
        planned[key] = package
        plan.packages.append(package)
        declared = None
        if query and pk is not None:
            try:
                if find_links is not None:
                    files = listing(source)
                else:
                    if (source, key) not in listings:
                        listings[(source, key)] = index_files(source, name)
                    files = listings[(source, key)]
                chosen = choose(files, spec, pk)
                if chosen is None:
                    where = f"The folder {source}" if find_links is not None else source
                    plan.notes.append(f"{where} has no {spec} for Python {platform.python_version()} on "
                                      f"{platform_key()}: pip will fail on it.")
                if chosen is not None:
                    f, package.version = chosen
                    package.file, package.url, package.size = f.filename, f.url.split("#")[0], f.size
                    if package.size is None and f.url.startswith("http"):
                        with contextlib.suppress(OSError, ValueError):
                            with _open(package.url, method="HEAD") as response:
                                length = response.headers.get("Content-Length")
                                package.size = int(length) if length else None
                    with contextlib.suppress(OSError, ValueError, zipfile.BadZipFile, KeyError):
                        text = _metadata_text(f)
                        declared = requires(text, pk) if text is not None else None
            except (OSError, ValueError) as exc:
                plan.notes.append(f"{source} could not be asked about {name} ({exc}); sizes are estimates.")
        if package.size is None:
            mb = (APPROXIMATE_SIZES.get((key, variant, platform_key()))
                  or APPROXIMATE_SIZES.get((key, "", "")))
            if mb is not None:
                package.size, package.approximate = int(mb * 1e6), True
        if declared is None:
            declared = list(KNOWN_DEPENDENCIES.get(key, ()))
            if key == TORCH and variant == "cuda" and sys.platform.startswith("linux"):
                plan.notes.append("A CUDA build on Linux also needs NVIDIA's CUDA libraries (about 2.5 GB, "
                                  "included in the estimate); they are installed after torch.")
        todo.extend((dep, name) for dep in declared)
    return plan


def prune(target: str | os.PathLike, paths: Sequence[str] | None = None) -> list[tuple[str, str, str]]:
    """Remove from ``target`` every distribution QGIS's Python also has (left by an older installer that put the
    folder first on sys.path): (name, version in the folder, QGIS's version) of each removed. Only files inside
    ``target`` that the distribution's RECORD lists are removed, then the folders this leaves empty."""
    target = Path(os.path.abspath(target))
    if not target.is_dir():
        return []
    have = distributions(qgis_paths([target], paths))
    removed = []
    for dist in list(importlib.metadata.distributions(path=[str(target)])):
        name, version = dist.metadata["Name"] or "", dist.version
        info = Path(os.path.abspath(str(getattr(dist, "_path", ""))))
        if normalize(name) not in have or info.parent != target:
            continue
        files = {info}
        for line in (dist.read_text("RECORD") or "").splitlines():
            relative = line.split(",", 1)[0].strip()
            if relative:
                files.add(Path(os.path.abspath(target / relative)))
        folders = set()
        for path in files:
            if target not in path.parents:
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    path.unlink()
            folders.update(p for p in path.parents if target in p.parents)
        for folder in sorted(folders, key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                pycache = folder / "__pycache__"
                if pycache.is_dir() and not any(f.suffix != ".pyc" for f in pycache.iterdir()):
                    shutil.rmtree(pycache, ignore_errors=True)
                folder.rmdir()  # only when empty
        removed.append((name, version, have[normalize(name)].version))
    importlib.invalidate_caches()
    return removed


# --------------------------------------------------------------------------------------------- pip
def interpreter() -> str:
    """The Python executable of the running interpreter. An embedded Python (QGIS, qgis_process) may report the
    host program or whatever ``python3`` is first on PATH as ``sys.executable``, so outside a virtual environment
    the installation's own executable under ``sys.exec_prefix`` is preferred."""
    if sys.prefix != sys.base_prefix:
        return sys.executable
    prefix, version = Path(sys.exec_prefix), f"{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (prefix / "python.exe", prefix / "python3.exe", prefix / "bin" / f"python{version}"):
        if candidate.is_file():
            return str(candidate)
    return sys.executable


def pip_commands(packages: Sequence[Package], target: str | os.PathLike, *, constraints_file: str | None = None,
                 find_links: str | os.PathLike | None = None, python: str | None = None) -> list[list[str]]:
    """The pip commands installing ``packages`` into ``target``: one per index (torch from its build's index),
    each ``--no-deps`` (exactly the planned list) and constrained to QGIS's versions; with ``find_links`` one run
    using only that folder (``--no-index``)."""
    base = [python or interpreter(), "-m", "pip", "install", "--no-deps", "--upgrade", "--target", os.fspath(target),
            "--disable-pip-version-check", "--no-warn-script-location", "--progress-bar", "off"]
    if constraints_file:
        base += ["--constraint", constraints_file]
    if find_links is not None:
        specs = [p.pinned for p in packages]
        return [base + ["--no-index", "--find-links", os.fspath(find_links)] + specs] if specs else []
    by_index: dict[str, list[str]] = {}
    for p in packages:
        by_index.setdefault(p.index or PYPI, []).append(p.pinned)
    return [base + ["--index-url", source] + specs for source, specs in by_index.items()]


def install_commands(requirements: Sequence[Requirement], target: str | os.PathLike, variant: str = "cpu", *,
                     torch_index: str | None = None, index: str | None = None,
                     find_links: str | os.PathLike | None = None, python: str | None = None,
                     query: bool = False) -> list[list[str]]:
    """The pip commands ``install`` starts with (without asking the network unless ``query``), for display."""
    plan = make_plan(requirements, target, variant, torch_index=torch_index, index=index, find_links=find_links,
                     query=query)
    return pip_commands(plan.packages, target, constraints_file=str(constraints_path(target)),
                        find_links=find_links, python=python)


def constraints_path(target: str | os.PathLike) -> Path:
    """Where the constraints file of QGIS's versions is written: beside the site folder."""
    return Path(target).parent / f"constraints-{Path(target).name}.txt"


_DOWNLOAD = re.compile(r"^\s*Downloading (\S+?)(?: \((?P<size>[\d.]+ [kMG]?B)\))?\s*$")
_COLLECT = re.compile(r"^\s*Collecting (\S+)")
_FILE = re.compile(r"([A-Za-z0-9_.]+?)-(\d[^-]*)-[^/]*\.whl$|([A-Za-z0-9_.]+)-(\d[^-/]*)\.tar\.gz$")


def _project(url_or_file: str) -> str:
    name = urllib.parse.unquote(url_or_file.rsplit("/", 1)[-1])
    match = _FILE.search(name)
    if not match:
        return name
    project, version = (match.group(1), match.group(2)) if match.group(1) else (match.group(3), match.group(4))
    return f"{project.replace('_', '-')} {version}"


def describe(line: str) -> tuple[str, str] | None:
    """pip's output line in plain words: ('step', 'Downloading torch 2.13.0 (192 MB)…'), ('error', one readable
    line), ('retry', ...), or None for lines that say nothing new."""
    text = line.strip()
    if not text or text.startswith(("$ ", EVENT.strip())):
        return None
    match = _DOWNLOAD.match(text)
    if match:
        size = match.group("size")
        return "step", f"Downloading {_project(match.group(1))}{f' ({size})' if size else ''}…"
    if text.startswith("Using cached "):
        return "step", f"Using the copy downloaded before of {_project(text.split()[2])}…"
    if text.startswith("Processing "):
        return "step", f"Using the local file of {_project(text.split()[-1])}…"
    match = _COLLECT.match(text)
    if match:
        return "step", f"Looking up {match.group(1).replace('==', ' ')}…"
    if text.startswith("Installing collected packages:"):
        return "step", f"Installing {text.split(':', 1)[1].strip()} (this can take a few minutes)…"
    if text.startswith("Successfully installed "):
        names = [re.sub(r"-(\d)", r" \1", n, count=1) for n in text.split()[2:]]
        return "step", f"Installed {', '.join(names)}."
    if text.startswith("WARNING: Retrying"):
        reason = ("the package index cannot be reached" if "NewConnectionError" in text or "resolution" in text
                  else "the connection broke")
        where = re.search(r"'\)?:\s*(\S+)\s*$", text)
        return "retry", f"Retrying: {reason}{f' ({where.group(1)})' if where else ''}…"
    if not text.startswith("ERROR:"):
        return None
    message = text[len("ERROR:"):].strip()
    if message.startswith("Could not find a version that satisfies the requirement"):
        wanted = message.split("requirement", 1)[1].split("(")[0].strip()
        return "error", (f"No file of {wanted} fits this Python ({platform.python_version()}, {platform_key()}) "
                         "in the package index: choose another index or PyTorch build, or check the network.")
    if message.startswith("No matching distribution found for"):
        wanted = message.rsplit(" ", 1)[-1]
        return "error", f"No file of {wanted} fits this Python ({platform.python_version()}, {platform_key()})."
    if "No space left on device" in message or "Errno 28" in message:
        return "error", "Not enough disk space for the packages: free some space and install again."
    if "Access is denied" in message or "Permission denied" in message or "WinError 5" in message:
        return "error", ("A file could not be written (in use or not writable): restart QGIS without opening the "
                         f"CoFusion panel and install again. ({message})")
    if "HASHES" in message.upper():
        return "error", "A download was damaged on the way: install again."
    if "ssl" in message.lower() or "certificate" in message.lower():
        return "error", f"The package index's certificate could not be checked (a proxy?): {message}"
    if message.startswith("Exception:"):
        return "error", "pip stopped with an internal error; the details below say where."
    return "error", message


def run_pip(command: Sequence[str], output: Callable[[str], None], cancel: Callable[[], bool] | None = None,
            env: dict | None = None, cwd: str | None = None) -> int:
    """Run one pip command, every output line to ``output``; ``cancel()`` is polled about five times a second
    (also while pip prints nothing) and stops pip (Canceled). Returns pip's exit code."""
    lines: queue.Queue = queue.Queue()
    with subprocess.Popen(list(command), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                          text=True, errors="replace", env=env, cwd=cwd) as pip:
        def read():
            for line in pip.stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=read, daemon=True).start()
        while True:
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                line = ""
            if line is None:
                break
            if line:
                output(line.rstrip("\r\n"))
            if cancel is not None and cancel():
                pip.terminate()
                try:
                    pip.wait(5)
                except subprocess.TimeoutExpired:
                    pip.kill()
                raise Canceled("The installation was stopped; packages already installed stay, run it again to "
                               "finish it.")
        return pip.wait()


def install(requirements: Sequence[Requirement], target: str | os.PathLike, variant: str = "cpu", *,
            torch_index: str | None = None, index: str | None = None, find_links: str | os.PathLike | None = None,
            output: Callable[[str], None] | None = None, event: Callable[[dict], None] | None = None,
            cancel: Callable[[], bool] | None = None, plan: Plan | None = None, python: str | None = None,
            env: dict | None = None, query: bool = True) -> Plan:
    """Install ``requirements`` into ``target``: remove copies of QGIS's packages from the folder (``prune``),
    plan (``make_plan``), write the constraints file, run pip (``--no-deps``), then install what the installed
    packages' metadata still asks for and QGIS lacks. pip's lines go to ``output``, plain-words steps to
    ``event({'event': 'step', 'text': ...})``. Raises InstallError (Canceled when ``cancel()`` stopped it);
    packages already installed stay."""
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    emit = output or (lambda _line: None)
    tell = event or (lambda _event: None)
    qgis = qgis_paths([target])
    for name, version, theirs in prune(target, qgis):
        tell({"event": "step", "text": f"Removed {name} {version} from the plugin's folder: QGIS has {name} "
                                       f"{theirs}."})
    if plan is None:
        tell({"event": "step", "text": "Working out what to download…"})
        plan = _cancelable(lambda: make_plan(requirements, target, variant, torch_index=torch_index, index=index,
                                             find_links=find_links, paths=qgis, query=query), cancel)
        tell({"event": "plan", "plan": plan.to_json()})
    path = constraints_path(target)
    path.write_text(constraints(qgis), encoding="utf-8")
    packages, done_names, errors = list(plan.packages), set(), []
    for _round in range(4):
        if not packages:
            break
        for command in pip_commands(packages, target, constraints_file=str(path), find_links=find_links,
                                    python=python):
            emit("$ " + " ".join(command))

            def line_out(line: str) -> None:
                emit(line)
                said = describe(line)
                if said is not None:
                    kind, text = said
                    if kind == "error":
                        errors.append(text)
                    tell({"event": kind, "text": text})

            code = run_pip(command, line_out, cancel, env=env, cwd=str(target))
            if code != 0:
                first = next((e for e in errors if not e.startswith("pip stopped")), errors[0] if errors else "")
                raise InstallError(first or f"pip failed (exit code {code}); the details say why. Check the "
                                   f"network connection, or install the packages by hand into {target}")
        done_names |= {normalize(p.name) for p in packages}
        packages = _still_needed(target, qgis, done_names, variant, index, find_links)
    for name, version, theirs in prune(target, qgis):
        tell({"event": "step", "text": f"Removed {name} {version}: QGIS has {name} {theirs}."})
    return plan


def _cancelable(work: Callable[[], Plan], cancel: Callable[[], bool] | None) -> Plan:
    """``work()`` in a thread, polling ``cancel`` (a slow index must not hold up Stop)."""
    if cancel is None:
        return work()
    outcome: list = []

    def run():
        try:
            outcome.append((True, work()))
        except BaseException as exc:  # noqa: BLE001 (re-raised in the caller's thread)
            outcome.append((False, exc))

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(0.2)
        if cancel():
            raise Canceled("The installation was stopped before anything was downloaded.")
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


def _still_needed(target: Path, qgis: Sequence[str], done: set, variant: str, index: str | None,
                  find_links) -> list[Package]:
    """What the metadata of the packages now in ``target`` asks for that neither QGIS nor the folder has."""
    pk = _packaging()
    if pk is None:
        return []
    have = distributions(qgis)
    here = distributions([str(target)])
    wanted: dict[str, Package] = {}
    for dist in importlib.metadata.distributions(path=[str(target)]):
        text = dist.read_text("METADATA") or ""
        for spec in requires(text, pk) or []:
            key = normalize(_split(spec))
            if key in have or key in here or key in done or key in wanted:
                continue
            if module_found(IMPORT_NAMES.get(key, _split(spec).replace("-", "_")), qgis):
                continue
            wanted[key] = Package(_split(spec), spec, None if find_links is not None else (index or PYPI),
                                  dist.metadata["Name"])
    return list(wanted.values())


# --------------------------------------------------------------------------------------------- the check
CHECK_SCRIPT = r"""
import importlib, json, os, sys
paths = json.loads(sys.argv[1]); target = sys.argv[2]; modules = json.loads(sys.argv[3])
sys.path[:] = [p for p in paths if p] + ([target] if target else [])
result = {}
for module in modules:
    try:
        loaded = importlib.import_module(module)
        result[module] = {"ok": True, "file": getattr(loaded, "__file__", None) or "",
                          "version": str(getattr(loaded, "__version__", ""))}
    except BaseException as exc:
        result[module] = {"ok": False, "error": (type(exc).__name__ + ": " + str(exc)).splitlines()[0][:300]}
print(json.dumps(result))
"""


def check_modules(requirements: Sequence[Requirement] | None = None) -> list[str]:
    """The modules ``check`` imports for ``requirements`` (default ``runtime()``)."""
    found: list[str] = []
    for r in runtime() if requirements is None else requirements:
        for module in CHECK_IMPORTS.get(r.module, (r.module,)):
            if module not in found:
                found.append(module)
    return found


def check(target: str | os.PathLike | None, requirements: Sequence[Requirement] | None = None, *,
          paths: Sequence[str] | None = None, python: str | None = None, timeout: float = 300) -> dict:
    """Import every runtime module in a new Python process with QGIS's paths and then ``target`` (as the plugin
    sets it up): {module: {'ok', 'file', 'version'} or {'ok': False, 'error'}}; a module that imports from
    ``target`` although QGIS has it is reported as not ok."""
    modules = check_modules(requirements)
    qgis = qgis_paths([target] if target else [], paths)
    done = subprocess.run([python or interpreter(), "-c", CHECK_SCRIPT, json.dumps(qgis),
                           os.fspath(target) if target else "", json.dumps(modules)],
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    try:
        result = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        error = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        return {m: {"ok": False, "error": f"the check could not run: {error}"} for m in modules}
    if target:
        folder = [Path(target).resolve()]
        for module, state in result.items():
            if state.get("ok") and state.get("file") and _inside(state["file"], folder) \
                    and module_found(module, qgis):
                result[module] = {"ok": False, "error": f"loaded from {target} although QGIS has it"}
    return result


def summary(result: dict, requirements: Sequence[Requirement] | None = None) -> tuple[list[Requirement], str]:
    """The requirements whose modules failed in ``check``'s ``result``, and one line per failure."""
    failed, lines = [], []
    for r in runtime() if requirements is None else requirements:
        bad = [(m, result[m]) for m in CHECK_IMPORTS.get(r.module, (r.module,)) if m in result
               and not result[m].get("ok")]
        if bad:
            failed.append(r)
            lines.append(f"{r.title}: {bad[0][1].get('error', 'fails to import')}")
    return failed, "\n".join(lines)


# --------------------------------------------------------------------------------------------- the script
def _say(event: dict) -> None:
    print(EVENT + json.dumps(event), flush=True)


def _watch_stdin(flag: threading.Event) -> None:
    """Cancel when stdin closes (the dialog's Cancel, or QGIS gone): the script stops pip and exits."""
    def watch():
        try:
            while sys.stdin.readline():
                pass
        except (OSError, ValueError):
            pass
        flag.set()

    threading.Thread(target=watch, daemon=True).start()


def main(argv: Sequence[str] | None = None) -> int:
    """``python dependencies.py plan|install|check --target DIR [...]``: events as EVENT-prefixed JSON lines."""
    parser = argparse.ArgumentParser(prog="dependencies.py", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("plan", "install", "check"))
    parser.add_argument("--target", required=True, help="the plugin's site folder")
    parser.add_argument("--variant", default="cpu", choices=sorted(TORCH_INDEXES))
    parser.add_argument("--torch-index", help="index of the PyTorch build (default: the variant's)")
    parser.add_argument("--index", help=f"index of the other packages (default {PYPI})")
    parser.add_argument("--find-links", help="a folder of wheels: install offline from it")
    parser.add_argument("--package", action="append", help="install this spec (default: the missing runtime "
                                                            "requirements)")
    parser.add_argument("--offline-plan", action="store_true", help="plan without asking the network")
    parser.add_argument("--watch-stdin", action="store_true", help="stop when stdin closes")
    args = parser.parse_args(argv)
    target = Path(args.target)
    requested = [Requirement(_split(s), s) for s in args.package or ()]
    known = {normalize(r.name) for r in runtime()}
    checked = list(runtime()) + [r for r in requested if normalize(r.name) not in known]
    if args.command == "check":
        result = check(target, checked)
        failed, text = summary(result, checked)
        _say({"event": "check", "result": result, "missing": [r.name for r in failed], "text": text})
        return 0
    if not requested:
        qgis = qgis_paths([target])
        requested = [r for r in runtime() if not module_found(r.module, qgis + [str(target)])]
    options = {"torch_index": args.torch_index, "index": args.index, "find_links": args.find_links}
    cancel = threading.Event()
    if args.watch_stdin:
        _watch_stdin(cancel)
    try:
        if args.command == "plan":
            plan = make_plan(requested, target, args.variant, query=not args.offline_plan, **options)
            path = str(constraints_path(target))
            commands = pip_commands(plan.packages, target, constraints_file=path, find_links=args.find_links)
            _say({"event": "plan", "plan": plan.to_json(), "commands": commands})
            return 0
        install(requested, target, args.variant, output=lambda line: print(line, flush=True), event=_say,
                cancel=cancel.is_set, query=not args.offline_plan, **options)
    except Canceled as exc:
        _say({"event": "canceled", "text": str(exc)})
        return 130
    except (InstallError, OSError) as exc:
        _say({"event": "failed", "text": str(exc)})
        return 1
    _say({"event": "step", "text": "Checking that every package imports…"})
    result = check(target, checked)
    failed, text = summary(result, checked)
    wanted = {normalize(r.name) for r in requested if r.installable}
    ok = not [r for r in failed if normalize(r.name) in wanted]
    _say({"event": "done", "ok": ok, "result": result, "missing": [r.name for r in failed], "text": text})
    return 0 if ok else 3


if __name__ == "__main__":
    sys.exit(main())
