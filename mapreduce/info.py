"""What ``python -m mapreduce --version`` prints: the version and the active core.

Kept out of ``cli.py`` (whose parser is being restructured) so that ``__main__`` can answer
``--version`` with two lines; ``cli.build_parser`` can later hook the same text in with
``parser.add_argument("--version", action="version", version=version_text())``.
"""
from __future__ import annotations

from mapreduce import __version__
from mapreduce.core import describe

__all__ = ["version_text"]


def version_text() -> str:
    """``mapreduce 0.1.0 (core: c (built; /path/_core....so))``."""
    return f"mapreduce {__version__} ({describe()})"
