"""Which core runs the per-record kernels: the compiled one (``mapreduce._core``) or Python.

The shuffle's per-record work -- key encoding and decoding, the partition hash, packing and
unpacking run-file blocks, the k-way merge -- has two implementations that give the same
bytes and the same errors: the pure-Python code in ``codec``, ``runfile`` and ``shuffle``
(the reference, always present) and the C extension ``mapreduce._core`` (built by
``setup.py`` when a compiler is there).  ``docs/core.md`` says which function runs in C,
what C delegates back to Python, and how the two are tested against each other.

The choice is made once, here, at import, from the environment variable
``MAPREDUCE_CORE``:

* unset or empty: the C core if it is built, else Python;
* ``c``: the C core, and an ImportError if it is not built (a benchmark or CI run that
  asks for C must never silently measure Python);
* ``python``: the pure-Python core even when C is built.

Anything else is an error (never silently ignored).  Worker processes are forked from the
coordinator, so a whole job runs on one core.  ``codec``, ``runfile``, ``shuffle`` and
``kernel`` (the sort buffer's sort) import :data:`native` from here and bind their hot
functions at import; nothing else branches on the core.
"""
from __future__ import annotations

import os
from types import ModuleType
from typing import Optional

__all__ = ["ENV_VAR", "ACTIVE", "native", "describe"]

#: The environment variable that selects the core.
ENV_VAR = "MAPREDUCE_CORE"
_CHOICES = ("c", "python")


def _load() -> tuple[Optional[ModuleType], str]:
    """The extension module (or None) and why that core was chosen."""
    wanted = os.environ.get(ENV_VAR, "").strip().lower()
    if wanted and wanted not in _CHOICES:
        raise ImportError(f"{ENV_VAR}={os.environ[ENV_VAR]!r}: expected 'c' or 'python' "
                          "(or leave it unset: C when built)")
    if wanted == "python":
        return None, f"{ENV_VAR}=python"
    try:
        from mapreduce import _core
    except ImportError as exc:
        if wanted == "c":
            raise ImportError(f"{ENV_VAR}=c but the C core is not built ({exc}); reinstall "
                              f"with a C compiler (pip install .) or set {ENV_VAR}=python") \
                from exc
        hint = ""
        if os.path.exists(os.path.join(os.path.dirname(os.path.dirname(__file__)), "setup.py")):
            hint = "; in a source checkout, pip install -e . builds it next to the sources"
        return None, f"C core not built ({exc}{hint})"
    return _core, f"{ENV_VAR}=c" if wanted else "built"


#: The loaded extension module, or None when the pure-Python core runs.
native, _REASON = _load()
#: ``"c"`` or ``"python"``.
ACTIVE = "c" if native is not None else "python"


def describe() -> str:
    """One line for ``--version``: which core is active and why, e.g.
    ``core: c (built; .../mapreduce/_core.cpython-311-x86_64-linux-gnu.so)``."""
    if native is not None:
        return f"core: c ({_REASON}; {native.__file__})"
    return f"core: python ({_REASON})"
