# CoFusion for QGIS: set-up, tests, benchmarks. Every target installs what it needs on a fresh Debian 12.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
SITE := $(VENV)/lib/python3.11/site-packages
# The repository root is the package `cofusion`: $(PKGDIR)/cofusion links to it, and a .pth puts $(PKGDIR) on
# the venv's path. QGIS finds the same folder as a plugin through QGIS_PLUGINPATH=$(PKGDIR).
PKGDIR := $(VENV)/pkg
STAMP := $(VENV)/.setup-done
APT_PACKAGES := qgis python3-qgis qgis-providers python3-gdal gdal-bin python3-pyqtgraph python3-pywt \
	python3-scipy python3-venv xvfb xauth
export QT_QPA_PLATFORM ?= offscreen
# Debian's qgis_process wrapper passes --noversioncheck, which the 3.22 binary rejects: call the binary.
QGIS_PROCESS := qgis_process.bin
RUN := PYTHONPATH=$(abspath $(PKGDIR)):$(abspath $(SITE)) QGIS_PLUGINPATH=$(abspath $(PKGDIR))
# qgis_process with this checkout as the plugin `cofusion` and the venv's packages, e.g.
#   $(PROCESS) run cofusion:assess --json -- FUSED=a.tif REFERENCE=b.tif OUTPUT_TABLE=t.csv ...
# after `make plugin-enable` (once per QGIS profile).
PROCESS := $(RUN) $(QGIS_PROCESS)
# The installable plugin zip: only what the plugin loads (no tests, benchmarks, CLI, caches or venv).
VERSION := $(shell sed -n 's/^version=//p' metadata.txt)
ZIP := dist/cofusion-$(VERSION).zip
PLUGIN_FILES := metadata.txt LICENSE __init__.py requirements.txt core training cofusion_qgis resources
# `make deploy` unpacks the zip into this QGIS profile's plugin folder (QGIS_PROFILE=name for another profile).
QGIS_PROFILE ?= default
QGIS_PROFILES ?= $(HOME)/.local/share/QGIS/QGIS3/profiles
PLUGINS_DIR := $(QGIS_PROFILES)/$(QGIS_PROFILE)/python/plugins

.PHONY: setup apt test lint demo bench bench-baselines bench-errors bench-fuse clean plugin-enable zip deploy

setup: apt $(STAMP)

# Installs only the Debian packages that are missing; a no-op (one dpkg query) when all are there.
apt:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
		| grep -q "install ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "Installing Debian packages: $$missing"; \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

# numpy and scipy stay Debian's (GDAL and QGIS are built against them): the constraints file pins them.
$(STAMP): requirements.txt requirements-dev.txt requirements-batch.txt Makefile
	test -x $(PY) || /usr/bin/python3 -m venv --system-site-packages $(VENV)
	/usr/bin/python3 -c 'import numpy, scipy; print(f"numpy=={numpy.__version__}\nscipy=={scipy.__version__}")' \
		> $(VENV)/constraints.txt
	$(PY) -m pip install -q --disable-pip-version-check -c $(VENV)/constraints.txt \
		-r requirements.txt -r requirements-dev.txt -r requirements-batch.txt
	mkdir -p $(PKGDIR) && ln -sfn $(CURDIR) $(PKGDIR)/cofusion
	echo "$(abspath $(PKGDIR))" > $(SITE)/cofusion.pth
	$(PY) -c 'from osgeo import gdal_array; import qgis.core, torch, numpy; \
		torch.from_numpy(numpy.zeros(2, numpy.float32)); import cofusion.core'
	touch $@

# The code QGIS runs must run on Python 3.9 (QGIS 3.22-3.28 on Windows): vermin fails on anything newer (zip(strict=),
# match, datetime.UTC, ...). Annotations are not evaluated (from __future__ import annotations); vermin does not
# see a runtime `X | Y` (its union-types feature flags every annotation too): write Union/Optional there.
PY39_CODE := core training cofusion_qgis cli.py __init__.py __main__.py

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/vermin --no-tips --violations --no-eval-annotations --target=3.9- $(PY39_CODE)

test: setup lint
	$(PY) -m pytest -q -p no:cacheprovider tests

# The suite on newer QGIS, Python, numpy, GDAL and torch: in a chroot built from Debian's own packages under build/
# (tools/chroot_test.sh SUITE NAME; built once, then reused), with the chroot's python3 and no venv or pip.
# test-qgis340: Debian 13 trixie, QGIS 3.40 LTR; test-qgis344: Debian sid, QGIS 3.44. PYTEST_ARGS="-k ..." narrows.
.PHONY: test-qgis340 test-qgis344
test-qgis340:
	tools/chroot_test.sh trixie qgis340 $(PYTEST_ARGS)

test-qgis344:
	tools/chroot_test.sh sid qgis344 $(PYTEST_ARGS)

# The bundled sample fused by CoFusion (bundled model) and the classical methods through qgis_process, assessed
# against its reference.
demo: setup plugin-enable
	$(RUN) $(PY) tools/demo.py --process "$(QGIS_PROCESS)"

bench: bench-baselines bench-errors bench-fuse

bench-baselines: setup
	$(PY) bench/baselines.py --out bench/results/baselines.md

# Where the classical fusions' error lies (the evidence for the network's blended base; seconds).
bench-errors: setup
	$(PY) bench/error_structure.py --out bench/results/error_structure.md

# Network and engine speed, memory flatness, tile/batch sweep (about 6 minutes on 2 quiet cores).
bench-fuse: setup
	$(PY) bench/fuse_speed.py --out bench/results/fuse_speed.md

# Enables the plugin for qgis_process in the default QGIS profile (qgis_process loads only enabled plugins).
plugin-enable: setup
	@$(PROCESS) plugins 2>/dev/null | grep -q '^\* cofusion$$' || $(PROCESS) plugins enable cofusion > /dev/null

zip:
	rm -rf build/zip && mkdir -p build/zip/cofusion dist
	cp -r $(PLUGIN_FILES) build/zip/cofusion/
	rm -f $(ZIP) && cd build/zip && zip -q -r -X ../../$(ZIP) cofusion -x '*/__pycache__/*' '*.pyc'
	rm -rf build/zip
	@echo "wrote $(ZIP)"

deploy: zip
	mkdir -p "$(PLUGINS_DIR)"
	rm -rf "$(PLUGINS_DIR)/cofusion"
	unzip -q $(ZIP) -d "$(PLUGINS_DIR)"
	@echo "installed into $(PLUGINS_DIR)/cofusion; enable it in QGIS (Plugins > Manage and Install Plugins)"

clean:
	rm -rf $(VENV) build dist

# docs/screenshot.png: the QGIS desktop under Xvfb with this checkout as the plugin, in a throw-away profile; the
# startup script tools/screenshot.py opens the sample scene, fuses it in the dock (bundled model unless
# COFUSION_MODEL names another), plots the spectra at two pinned points, then saves the toolbox searched for
# "pansharpening" (docs/screenshot_toolbox.png) and styled Processing results (docs/screenshot_processing.png).
SCREENSHOT := docs/screenshot.png
.PHONY: screenshot
screenshot: setup
	profiles=$$(mktemp -d) && mkdir -p $$profiles/profiles/default/QGIS && \
	printf '[PythonPlugins]\ncofusion=true\n' > $$profiles/profiles/default/QGIS/QGIS3.ini && \
	$(RUN) COFUSION_SCREENSHOT=$(abspath $(SCREENSHOT)) COFUSION_SAMPLE=$(CURDIR)/resources/sample QT_QPA_PLATFORM=xcb \
		timeout 600 xvfb-run -a -s "-screen 0 1280x800x24" qgis --nologo --noversioncheck --profiles-path $$profiles --code tools/screenshot.py; \
	status=$$?; rm -rf $$profiles; exit $$status
