# Copyright 2009-2019 Yelp and Contributors
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
# http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

"""The helpers of mrjob's ``mrjob/util.py`` that job files import (``cmd_line``,
``file_ext``, ``safeeval``, ``to_lines``), from mrjob 0.7.4.  The rest of that module is
about launching Hadoop and EMR, which mapreduce does not do; importing another name from
``mrjob.util`` in a job file fails at load with an ImportError naming it."""
from __future__ import annotations

import shlex
from typing import Any, Iterable, Iterator


def cmd_line(args: Iterable[Any]) -> str:
    """Build a command line that works in a shell."""
    return " ".join(shlex.quote(str(x)) for x in args)


def file_ext(filename: str) -> str:
    """The file extension, including the ``.``: ``foo.tar.gz`` -> ``.tar.gz``,
    ``.emacs`` -> ``''``."""
    stripped_name = filename.lstrip(".")
    dot_index = stripped_name.find(".")
    if dot_index == -1:
        return ""
    return stripped_name[dot_index:]


def safeeval(expr: Any, globals: Any = None, locals: Any = None) -> Any:
    """Like eval, but with nearly everything in the environment blanked out."""
    safe_globals = {"False": False, "None": None, "True": True, "__builtin__": None,
                    "__builtins__": None, "set": set, "range": range}

    def open(*args: Any, **kwargs: Any) -> None:  # noqa: A001 - mrjob blanks out open
        raise NameError("name 'open' is not defined")
    safe_globals["open"] = open
    if globals:
        safe_globals.update(globals)
    return eval(expr, safe_globals, locals)


def to_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Lines (with their newlines) from a stream of byte chunks."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            yield line + b"\n"
    if pending:
        yield pending
