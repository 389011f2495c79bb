# SPDX-License-Identifier: GPL-2.0-or-later
"""Public fusion networks of other authors, reimplemented to compare speed on the same input (not shipped)."""
