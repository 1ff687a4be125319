"""``mrjob.compat.jobconf_from_env``: a Hadoop job setting as a task sees it.

Hadoop Streaming hands each task its configuration as environment variables (dots become
underscores); mrjob's ``jobconf_from_env`` reads them, trying the Hadoop 1 and 2 spellings of
a name.  The compatibility layer's task wrappers (``mapreduce.mrjob.job``) set the
variables that mean something here before the user's code runs: the input file of a map
task (``mapreduce.map.input.file``), the task's partition and the number of reducers.
"""
from __future__ import annotations

import os
from typing import Optional

#: Names with the same meaning in Hadoop 1 and Hadoop 2 (mrjob's _JOBCONF_MAP, the part
#: that applies here).
_SYNONYMS = [
    ("map.input.file", "mapreduce.map.input.file"),
    ("map.input.start", "mapreduce.map.input.start"),
    ("map.input.length", "mapreduce.map.input.length"),
    ("mapred.task.partition", "mapreduce.task.partition"),
    ("mapred.reduce.tasks", "mapreduce.job.reduces"),
    ("mapred.map.tasks", "mapreduce.job.maps"),
    ("mapred.task.id", "mapreduce.task.attempt.id"),
    ("mapred.tip.id", "mapreduce.task.id"),
    ("mapred.job.id", "mapreduce.job.id"),
]
_OTHER = {a: b for a, b in _SYNONYMS} | {b: a for a, b in _SYNONYMS}


def jobconf_from_env(variable: str, default: Optional[str] = None) -> Optional[str]:
    """The value of jobconf ``variable`` in this task's environment, else ``default``."""
    for name in (variable, _OTHER.get(variable)):
        if name is not None:
            value = os.environ.get(name.replace(".", "_"))
            if value is not None:
                return value
    return default


def translate_jobconf(variable: str, version: str) -> str:
    """``variable`` as Hadoop ``version`` spells it (1.x or 2.x and later)."""
    hadoop1 = {b: a for a, b in _SYNONYMS}
    hadoop2 = dict(_SYNONYMS)
    if str(version).startswith(("0.", "1.")):
        return hadoop1.get(variable, variable)
    return hadoop2.get(variable, variable)


def set_task_env(values: dict[str, object]) -> None:
    """Set jobconf values (by their Hadoop 2 names) in the environment of this task, under
    both spellings, as Hadoop Streaming does."""
    for name, value in values.items():
        os.environ[name.replace(".", "_")] = str(value)
        other = _OTHER.get(name)
        if other:
            os.environ[other.replace(".", "_")] = str(value)
