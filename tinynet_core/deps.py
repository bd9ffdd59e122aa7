"""Importing dependencies without their import-time deprecation warnings.

fvcore.nn and GPyTorch's linear_operator call ``torch.jit.script`` at import, which recent torch marks as
deprecated with a FutureWarning; a user of this package did nothing to cause it and can do nothing about it.
"""
from __future__ import annotations

import importlib
import warnings
from types import ModuleType


def import_quietly(name: str) -> ModuleType:
    """``importlib.import_module(name)`` with the FutureWarnings raised while importing it silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return importlib.import_module(name)
