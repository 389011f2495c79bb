# SPDX-License-Identifier: GPL-2.0-or-later
"""Fixtures of the installer tests: fake wheels written by hand (no build backend, no network), a folder of them,
a PEP 503 index of them served on 127.0.0.1, an index that never answers, and an environment in which pip sees
no configuration of this machine (pip.conf, PIP_* variables)."""
from __future__ import annotations

import base64
import hashlib
import http.server
import os
import socket
import threading
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pytest

#: The fake distributions: (name, version, Requires-Dist lines). `numpy` and `scipy` are named like packages QGIS
#: has (a copy must never be installed); `spectral` like a runtime dependency QGIS lacks.
FAKES = (
    ("cofusion-dummy-dep", "0.1", ("numpy>=99", "scipy", "cofusion-dummy-extra>=0.2",
                                   'cofusion-never; sys_platform == "nowhere"', 'cofusion-fancy; extra == "fancy"')),
    ("cofusion-dummy-extra", "0.2", ()),
    ("numpy", "99.0", ()),
    ("scipy", "99.0", ("numpy>=99",)),
    ("spectral", "0.25", ("numpy",)),
)


def make_wheel(folder: Path, name: str, version: str, requires: Sequence[str] = (), module: str | None = None,
               extra: dict[str, str] | None = None) -> Path:
    """A pure-Python wheel of ``name`` ``version`` whose module (default: the name with '-' -> '_') holds
    ``VERSION`` and ``FAKE = True``; its metadata declares ``requires``; ``extra``: more files (path: text)."""
    module = module or name.replace("-", "_")
    dist = f"{name.replace('-', '_')}-{version}"
    files = {
        f"{module}/__init__.py": f"VERSION = {version!r}\n__version__ = VERSION\nFAKE = True\n",
        **(extra or {}),
        f"{dist}.dist-info/METADATA": (f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
                                       + "".join(f"Requires-Dist: {r}\n" for r in requires)),
        f"{dist}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: cofusion-tests\nRoot-Is-Purelib: true\n"
                                   "Tag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    files[f"{dist}.dist-info/RECORD"] = "\n".join(record + [f"{dist}.dist-info/RECORD,,"]) + "\n"
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return wheel


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory) -> Path:
    """A folder with a wheel of every FAKES entry."""
    folder = tmp_path_factory.mktemp("wheels")
    for name, version, requires in FAKES:
        make_wheel(folder, name, version, requires)
    return folder


@pytest.fixture
def pip_env(tmp_path) -> dict:
    """The environment for pip: none of this machine's pip configuration (find-links, indexes, constraints)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_CACHE_DIR="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    return env


@pytest.fixture
def isolated_pip(monkeypatch, pip_env) -> dict:
    """pip_env for the subprocesses of this test process (in-process install calls)."""
    for key in [k for k in os.environ if k.startswith("PIP_")]:
        monkeypatch.delenv(key)
    for key, value in pip_env.items():
        if key.startswith("PIP_"):
            monkeypatch.setenv(key, value)
    return pip_env


def write_index(root: Path, wheels: Path, *, metadata: bool) -> Path:
    """A PEP 503 simple index under ``root``/simple of every wheel in ``wheels`` (files under ``root``/files);
    ``metadata``: the anchors announce PEP 658 metadata files, which are written beside the wheels."""
    files = root / "files"
    files.mkdir(parents=True, exist_ok=True)
    projects: dict[str, list[str]] = {}
    for wheel in sorted(wheels.glob("*.whl")):
        (files / wheel.name).write_bytes(wheel.read_bytes())
        name = wheel.name.split("-")[0].replace("_", "-").lower()
        attribute = ""
        if metadata:
            with zipfile.ZipFile(wheel) as archive:
                text = next(archive.read(n) for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
            (files / f"{wheel.name}.metadata").write_bytes(text)
            attribute = ' data-core-metadata="true" data-dist-info-metadata="true"'
        projects.setdefault(name, []).append(f'<a href="../../files/{wheel.name}"{attribute} '
                                             f'data-requires-python="&gt;=3.8">{wheel.name}</a>')
    for name, anchors in projects.items():
        page = root / "simple" / name
        page.mkdir(parents=True, exist_ok=True)
        (page / "index.html").write_text("<!DOCTYPE html><html><body>\n" + "<br>\n".join(anchors) + "\n</body></html>")
    return root / "simple"


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *_args):
        pass


@pytest.fixture
def serve(tmp_path):
    """serve(wheels, metadata=False) -> the URL of a simple index of ``wheels`` on 127.0.0.1 (stopped after the
    test)."""
    servers = []

    def start(wheels: Path, metadata: bool = False) -> str:
        root = tmp_path / f"index{len(servers)}"
        write_index(root, wheels, metadata=metadata)
        handler = lambda *a, **k: _Quiet(*a, directory=str(root), **k)  # noqa: E731
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/simple"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def silent_index():
    """The URL of an index that accepts connections and never answers (pip waits: the cancel tests)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/simple"
    stop.set()
    for connection in held:
        connection.close()
    listener.close()
