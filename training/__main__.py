# SPDX-License-Identifier: GPL-2.0-or-later
"""``python -m cofusion.training`` (see ``cli.py``).

The signal policy (``core.interrupts``) is in force before PyTorch and the training modules load, so that a
Ctrl-C or a SIGTERM during start-up ends the run like one during training.
"""
import sys
import warnings

from ..core.interrupts import Interrupts

with Interrupts() as interrupts:
    try:
        with warnings.catch_warnings():  # GDAL >= 3.9 warns until a program says which error mode it uses
            warnings.simplefilter("ignore", FutureWarning)
            from osgeo import gdal
        gdal.DontUseExceptions()  # this process is ours: the mode the core works in either way (core.raster)
        from .cli import main

        code = main(interrupts=interrupts)
    except KeyboardInterrupt:  # a second signal before main() took over
        sys.stderr.write("interrupted; nothing was written\n")
        code = interrupts.exit_code
sys.exit(code)
