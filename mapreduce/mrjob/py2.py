"""mrjob's ``mrjob/py2.py`` names that job files import, for Python 3 only (mrjob 0.7.4
kept them for code that ran on both)."""
from __future__ import annotations

from typing import Any
from urllib.parse import urljoin, urlparse  # noqa: F401 - re-exported for job files

PY2 = False
string_types = (str,)


def to_unicode(s: Any) -> str:
    """Bytes decoded as UTF-8 (latin-1 if that fails); str unchanged."""
    if isinstance(s, bytes):
        try:
            return s.decode("utf_8")
        except UnicodeDecodeError:
            return s.decode("latin_1")
    return s
