"""Builds the optional C core, ``mapreduce._core`` (the package metadata is in pyproject.toml).

The extension is optional by design: when it cannot be compiled (no C compiler, no Python
headers) the install still succeeds with a warning and mapreduce runs its pure-Python path,
which produces the same bytes (docs/core.md).  ``MAPREDUCE_REQUIRE_CORE=1`` turns a failed
build into an error (CI sets it, so a broken C file cannot pass as "no compiler").
"""
import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    """build_ext that turns a compiler failure into a warning unless the core is required."""

    def run(self):
        try:
            super().run()
        except Exception as exc:  # no compiler at all: DistutilsPlatformError and kin
            self._skip(exc)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:  # CCompilerError, DistutilsExecError, OSError, ...
            self._skip(exc)

    def _skip(self, exc):
        if os.environ.get("MAPREDUCE_REQUIRE_CORE") == "1":
            raise
        print(f"WARNING: mapreduce's C core was not built ({type(exc).__name__}: {exc}); "
              "mapreduce will run its pure-Python core (same results, slower).",
              file=sys.stderr)


setup(
    ext_modules=[Extension("mapreduce._core", ["mapreduce/_core.c"],
                           extra_compile_args=["-std=c11", "-O2"])],
    cmdclass={"build_ext": OptionalBuildExt},
)
