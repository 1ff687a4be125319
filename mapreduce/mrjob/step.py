"""mrjob's step classes (``mrjob.step``): :class:`MRStep` and the kinds mapreduce refuses.

``MRStep`` takes mrjob's keywords, checks them as mrjob does (an unknown keyword is a
TypeError, a conflicting pair a ValueError) and answers ``step["mapper"]`` as mrjob does
(the identity mapper when none was given).  ``MRJob.engine_steps`` turns each one into a
:class:`mapreduce.Step`.  ``JarStep``, ``SparkJarStep`` and ``SparkScriptStep`` run Java or
a separate script on a cluster: they can be built (so a job file imports) but a job that
returns one is refused at start, naming it.  ``SparkStep`` is what ``spark()`` becomes.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator, Optional

_MAPPER_FUNCS = ("mapper", "mapper_init", "mapper_final", "mapper_cmd",
                 "mapper_pre_filter", "mapper_raw")
_COMBINER_FUNCS = ("combiner", "combiner_init", "combiner_final", "combiner_cmd",
                   "combiner_pre_filter")
_REDUCER_FUNCS = ("reducer", "reducer_init", "reducer_final", "reducer_cmd",
                  "reducer_pre_filter")
_JOB_STEP_FUNC_PARAMS = _MAPPER_FUNCS + _COMBINER_FUNCS + _REDUCER_FUNCS
_JOB_STEP_PARAMS = _JOB_STEP_FUNC_PARAMS + ("jobconf",)

#: Placeholders mrjob replaces in a JarStep's / SparkScriptStep's arguments.
INPUT = "<input>"
OUTPUT = "<output>"
GENERIC_ARGS = "<generic args>"


def _IDENTITY_MAPPER(key: Any, value: Any) -> Iterator[tuple]:
    yield key, value


def _IDENTITY_REDUCER(key: Any, values: Any) -> Iterator[tuple]:
    for value in values:
        yield key, value


class StepFailedException(Exception):
    """mrjob's exception for a failed step (importable; mapreduce raises its own errors)."""


class MRStep:
    """One streaming step: mrjob's keywords (see ``mrjob.step.MRStep``)."""

    def __init__(self, **kwargs: Any) -> None:
        bad_kwargs = sorted(set(kwargs) - set(_JOB_STEP_PARAMS))
        if bad_kwargs:
            raise TypeError(f"MRStep() got an unexpected keyword argument {bad_kwargs[0]!r}")
        if not set(kwargs) & set(_JOB_STEP_FUNC_PARAMS):
            raise ValueError("Step has no mappers and no reducers")
        self.has_explicit_mapper = any(v for k, v in kwargs.items() if k in _MAPPER_FUNCS)
        self.has_explicit_combiner = any(v for k, v in kwargs.items()
                                         if k in _COMBINER_FUNCS)
        self.has_explicit_reducer = any(v for k, v in kwargs.items() if k in _REDUCER_FUNCS)
        steps: dict[str, Any] = dict.fromkeys(_JOB_STEP_PARAMS)
        steps.update(kwargs)

        def _check_conflict(func: str, other_funcs: tuple) -> None:
            if steps[func]:
                for other in other_funcs:
                    if steps[other] and other != func:
                        raise ValueError(f"Can't specify both {func} and {other}")

        _check_conflict("mapper_cmd", _MAPPER_FUNCS)
        _check_conflict("mapper_raw", ("mapper", "mapper_pre_filter"))
        _check_conflict("combiner_cmd", _COMBINER_FUNCS)
        _check_conflict("reducer_cmd", _REDUCER_FUNCS)
        self._steps = steps

    def __repr__(self) -> str:
        given = ", ".join(f"{k}={v!r}" for k, v in self._steps.items() if v is not None)
        return f"{type(self).__name__}({given})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MRStep) and self._steps == other._steps

    def __getitem__(self, key: str) -> Any:
        # As mrjob: there is always a mapper (Hadoop Streaming needs one); an identity
        # reducer/combiner only when their hooks were given without the function itself.
        if key == "mapper" and self._steps["mapper"] is None:
            return _IDENTITY_MAPPER
        if key == "reducer" and self._steps["reducer"] is None and self.has_explicit_reducer:
            return _IDENTITY_REDUCER
        if key == "combiner" and self._steps["combiner"] is None and \
                self.has_explicit_combiner:
            return _IDENTITY_REDUCER
        return self._steps[key]

    def given(self, key: str) -> Any:
        """What the step was given for ``key`` (None if nothing), without the identities."""
        return self._steps[key]


class _RefusedStep:
    """A step kind mapreduce does not run: constructible, refused when a job returns it."""

    what = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs

    def __repr__(self) -> str:
        return f"{type(self).__name__}(...)"


class JarStep(_RefusedStep):
    what = "runs a Java jar on Hadoop"


class SparkJarStep(_RefusedStep):
    what = "runs a Java jar on Spark"


class SparkScriptStep(_RefusedStep):
    what = "runs a separate Spark script"


class SparkStep:
    """A step run by the job's ``spark(input_path, output_path)`` method."""

    def __init__(self, spark: Callable[..., Any], spark_args: Optional[list] = None) -> None:
        self.spark = spark
        self.spark_args = list(spark_args or [])

    def __repr__(self) -> str:
        return f"SparkStep(spark={self.spark!r})"
