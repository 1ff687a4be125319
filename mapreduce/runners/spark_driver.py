"""mrjob's Spark steps (``spark(input_path, output_path)``) on the Spark runner.

mrjob's Spark runner runs a Spark step by spark-submitting the job script, which calls the
job's ``spark()`` in a fresh driver process; the method makes its own ``SparkContext``
(``SparkContext(appName=...)``, without a master: spark-submit's ``--master`` decides),
reads ``input_path`` (the inputs joined by commas, or the previous step's output
directory), writes ``output_path`` with ``saveAsTextFile`` and usually ends with
``sc.stop()``.  Here too each Spark step runs in a process of its own
(``python -m mapreduce.runners.spark_driver REQUEST``), for the same reasons: the job's
``SparkContext(...)`` must be the only one in its process, and its ``sc.stop()`` must not
stop a context anyone else uses::

    runner (spark.py)                          driver process (this module's main)
      JobSession: options, inputs, OUT policy
      for each Spark step s:
        WORK/spark-step-s/ = output_path  ---->  load the job file (mrjob names mapped),
        master: --spark-master, else the         its module pickled by value (cloudpickle),
        running context's, else local[*]         so executors need only mapreduce;
        (PYSPARK_SUBMIT_ARGS, as spark-submit)   job.spark(input_path, output_path)
                                     <----  exit 0, or a pickled error record (type, the
                                            Python error line Spark's text carries, trace)
      the last step's part-* files -> WORK/committed/, then the session's job commit
      (_job.json, _SUCCESS); a failed step: one line naming the step and the error.

A job that mixes Spark steps with ``MRStep`` steps is refused at start (not yet run here).
"""
from __future__ import annotations

import argparse
import os
import pickle
import re
import subprocess
import sys
import traceback
from typing import Any, Optional

#: Lines of a driver process's stderr not passed on: the JVM's start-up notice, and
#: Spark's own ERROR log lines about a failed task (the runner reports the failure as one
#: line, with the Python traceback behind it).
_NOISE = re.compile(r"WARNING: Using incubator modules|\d\d/\d\d/\d\d \d\d:\d\d:\d\d ERROR ")


def run_spark_step(request: dict[str, Any], env: dict[str, str]) -> Optional[dict[str, Any]]:
    """Run one Spark step in a driver process; None on success, else its error record
    (``type``, ``message``, ``detail``).  ``request``: job path, class name, job options,
    step index, input and output path (see :func:`main`)."""
    result = request["output"] + ".error"
    with open(request["output"] + ".request", "wb") as f:
        pickle.dump(dict(request, result=result), f)
    proc = subprocess.Popen([sys.executable, "-m", "mapreduce.runners.spark_driver",
                             request["output"] + ".request"], env=env, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    with proc.stderr:
        for line in proc.stderr:
            if not _NOISE.match(line.decode("utf-8", "replace")):
                sys.stderr.write(line.decode("utf-8", "replace"))
                sys.stderr.flush()
    proc.wait()
    if proc.returncode == 0:
        return None
    try:
        with open(result, "rb") as f:
            return pickle.load(f)
    except OSError:  # killed before it could say why
        return {"type": "ProcessError", "message": f"the driver process exited with "
                f"status {proc.returncode}", "detail": ""}


def _error(exc: BaseException) -> dict[str, str]:
    """The error record of a failed ``spark()``: one line and the Python traceback behind
    it -- for a failed Spark task, the Python worker's traceback inside Spark's exception
    text (``Exception: KABOOM``), never the Java stack around it."""
    text = str(exc)
    java = getattr(exc, "java_exception", None)
    if java is not None:
        try:
            text += "\n" + str(java.toString())
        except Exception:  # the JVM may be gone already
            pass
    marker = "Traceback (most recent call last):"
    if type(exc).__name__ == "Py4JJavaError" and marker in text:
        # The last Python traceback in the text: its frames are indented, and the first
        # line after them that is not is the exception line.
        lines = text[text.rindex(marker):].splitlines()
        for n, line in enumerate(lines[1:], 1):
            if line and not line[0].isspace():
                return {"type": type(exc).__name__, "message": line.strip(),
                        "detail": "\n".join(lines[:n + 1]) + "\n"}
    first = (str(exc).strip().splitlines() or [""])[0]
    return {"type": type(exc).__name__,
            "message": f"{type(exc).__name__}: {first}" if first else type(exc).__name__,
            "detail": "".join(traceback.format_exception(exc))}


def main(argv: Optional[list[str]] = None) -> int:
    """The driver process: run one job's Spark step as its request file says."""
    parser = argparse.ArgumentParser(prog="python -m mapreduce.runners.spark_driver")
    parser.add_argument("request")
    args = parser.parse_args(argv)
    with open(args.request, "rb") as f:
        request = pickle.load(f)
    try:
        from mapreduce.loader import load_job_class
        from pyspark import cloudpickle

        cls, _ref = load_job_class(request["job_path"], request["class_name"])
        # Executors unpickle the job's functions (self.get_words): ship its module by
        # value, as spark-submit ships a script's __main__; mapreduce itself is imported
        # there by name.
        cloudpickle.register_pickle_by_value(sys.modules[cls.__module__])
        job = cls()
        job.options = argparse.Namespace(**request["job_options"])
        step = job.steps()[request["step"]]
        step.spark(request["input"], request["output"])
    except BaseException as exc:  # noqa: BLE001 -- every failure is reported, then exit 1
        with open(request["result"], "wb") as f:
            pickle.dump(_error(exc), f)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
