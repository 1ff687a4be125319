"""What ``python -m mapreduce --version`` prints: the version and the active core.

``cli.build_parser`` adds it as ``--version``.
"""
from __future__ import annotations

from mapreduce.core import describe

#: The package's version (re-exported as ``mapreduce.__version__``).
__version__ = "0.1.0"

__all__ = ["version_text", "__version__"]


def version_text() -> str:
    """``mapreduce 0.1.0 (core: c (built; /path/_core....so))``."""
    return f"mapreduce {__version__} ({describe()})"
