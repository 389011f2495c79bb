# SPDX-License-Identifier: GPL-2.0-or-later
"""The CoFusion network (Multi-Scale Generator with SpaCAM, SpeCAM and SSCFM) and its configuration."""
from .config import ModelConfig
from .net import CoFusionNet, build_model

__all__ = ["CoFusionNet", "ModelConfig", "build_model"]
