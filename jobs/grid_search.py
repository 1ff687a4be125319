"""Grid search: k-fold cross-validation of SVC parameter sets on the digits data, in parallel.

Computes: for each parameter set of an ``sklearn.svm.SVC``, its accuracy on each of
``--folds`` (default 5) cross-validation folds of scikit-learn's bundled digits data set
(``sklearn.datasets.load_digits()``, 1797 8x8 images, no download), and the mean and
standard deviation over the folds: what ``GridSearchCV(SVC(), grid,
cv=StratifiedKFold(folds))`` reports as ``mean_test_score`` / ``std_test_score``, with the
same numbers (the folds are ``StratifiedKFold(n_splits=folds)``, unshuffled).

Input: a grid spec, one JSON object of SVC parameters per line (``{"C": 1, "gamma": 0.01}``);
blank lines are skipped.  ``jobs/data/grid/params.jsonl`` holds ``C`` in [0.1, 1, 10] x
``gamma`` in [0.001, 0.01, 0.1], in ``GridSearchCV``'s order (C outer), each line padded with
spaces to ``SPEC_LINE_BYTES`` (32) bytes so that ``--split-size 32`` makes one map task per
parameter set and the fits run in parallel.  Write another grid with :func:`write_grid`.

Output: one line per parameter set, best first, keyed by rank (1, 2, ...)::

    1	{"params": {"C": 10, "gamma": 0.001}, "mean_test_score": 0.97..., "std_test_score": ...,
         "split_test_scores": [...]}

ranked by mean score, descending; ties keep the spec file's order (as ``GridSearchCV``'s
``best_params_`` does: the first of the tied parameter sets in grid order).

Job option: ``--folds K`` (default 5, >= 2).

Shape:

* ``prepare()`` (once, in the coordinator) loads the digits data and computes which fold
  each sample is tested in; it returns them as NumPy arrays ``X`` (1797 x 64 float64), ``y``
  and ``fold``, which the engine stores once as ``.npy`` files that every worker maps read-only
  (``self.side_data``): no task loads the data set or receives a pickled copy of it.  It also
  reads the spec files for the parameter sets' order (for ties).
* Step 1 map: per parameter set, per fold, fit an SVC on the fold's training samples and
  score it on its test samples; emit ``(params key, (fold, accuracy))``, the key being the
  parameter set as canonical JSON.  No combiner: the reducer needs all of a set's scores in
  fold order.  Reduce: mean and standard deviation of the fold scores (NumPy, in fold order,
  as scikit-learn computes them).
* Step 2: every result under one key (``None``), so a single reducer ranks them.
  ``REDUCERS = 1``: one output file.

scikit-learn and NumPy are optional extras of this package: without them the job stops before
any task runs with ``... pip install 'mapreduce[examples]'``.

    python -m mapreduce run jobs/grid_search.py jobs/data/grid/params.jsonl -o out/ -q \\
        --split-size 32
    python -m mapreduce run jobs/grid_search.py jobs/data/grid/ -o out/ -q --folds 3
    python jobs/grid_search.py jobs/data/grid/params.jsonl --split-size 32   # prints them
"""
import argparse
import json

from mapreduce import Job, Step
from mapreduce.errors import JobDefinitionError

SPEC_LINE_BYTES = 32
C_VALUES = (0.1, 1, 10)
GAMMA_VALUES = (0.001, 0.01, 0.1)


def _require_sklearn():
    """Import what the job needs, or fail with one line saying how to install it."""
    try:
        import numpy  # noqa: F401
        import sklearn.datasets  # noqa: F401
        import sklearn.model_selection  # noqa: F401
        import sklearn.svm  # noqa: F401
    except ImportError as exc:
        raise JobDefinitionError(
            f"jobs/grid_search.py needs scikit-learn and NumPy ({exc}): "
            "pip install 'mapreduce[examples]'") from None


def _open_text(path):
    if path.endswith(".gz"):
        import gzip
        return gzip.open(path, "rt", encoding="utf-8")
    if path.endswith(".bz2"):
        import bz2
        return bz2.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def _folds(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 2:
        raise argparse.ArgumentTypeError(f"must be >= 2, got {value}")
    return value


def params_key(params):
    """A parameter set's key: canonical JSON (sorted keys, no spaces)."""
    return json.dumps(params, sort_keys=True, separators=(",", ":"))


def parse_params(line):
    """A spec line -> dict of SVC parameters; None for a blank line."""
    if not line.strip():
        return None
    params = json.loads(line)
    if not isinstance(params, dict):
        raise ValueError(f"expected a JSON object of SVC parameters, got {line.strip()!r}")
    return params


def write_grid(path, grid=None):
    """Write a grid spec: the product of ``grid`` (name -> values; default C x gamma above)
    in ``sklearn.model_selection.ParameterGrid``'s order, one set per padded line."""
    import itertools

    grid = grid or {"C": C_VALUES, "gamma": GAMMA_VALUES}
    names = sorted(grid)
    with open(path, "w", encoding="utf-8") as f:
        for values in itertools.product(*(grid[n] for n in names)):
            line = json.dumps(dict(zip(names, values)))
            f.write(line.ljust(SPEC_LINE_BYTES - 1) + "\n")


class GridSearch(Job):
    REDUCERS = 1

    def configure_args(self, parser):
        parser.add_argument("--folds", type=_folds, default=5,
                            help="cross-validation folds, StratifiedKFold without shuffling "
                                 "(default 5)")

    def prepare(self, inputs):
        _require_sklearn()
        import numpy as np
        from sklearn.datasets import load_digits
        from sklearn.model_selection import StratifiedKFold

        X, y = load_digits(return_X_y=True)
        fold = np.empty(len(y), dtype=np.int64)
        for f, (_, test) in enumerate(StratifiedKFold(n_splits=self.options.folds)
                                      .split(X, y)):
            fold[test] = f
        order = []
        for path in inputs:
            with _open_text(path) as spec:
                for line in spec:
                    params = parse_params(line)
                    if params is not None and params_key(params) not in order:
                        order.append(params_key(params))
        return {"X": X, "y": y, "fold": fold, "order": order}

    def steps(self):
        return [Step(mapper_init=self.mapper_init, mapper=self.mapper_fit,
                     reducer=self.reducer_summary),
                Step(mapper=self.mapper_collect, reducer=self.reducer_rank)]

    def mapper_init(self):
        _require_sklearn()

    def mapper_fit(self, _, line):
        from sklearn.svm import SVC

        params = parse_params(line)
        if params is None:
            return
        X, y, fold = self.side_data["X"], self.side_data["y"], self.side_data["fold"]
        key = params_key(params)
        for f in range(self.options.folds):
            test = fold == f
            model = SVC(**params).fit(X[~test], y[~test])
            yield key, (f, float(model.score(X[test], y[test])))
            self.increment_counter("grid_search", "FITS")

    def reducer_summary(self, key, fold_scores):
        import numpy as np

        scores = np.array([s for _, s in sorted(fold_scores)])
        yield key, (float(scores.mean()), float(scores.std()), scores.tolist())

    def mapper_collect(self, key, summary):
        yield None, (key, summary)

    def reducer_rank(self, _, results):
        position = {k: i for i, k in enumerate(self.side_data["order"])}
        ranked = sorted(results, key=lambda r: (-r[1][0], position.get(r[0], len(position)),
                                                r[0]))
        for rank, (key, (mean, std, scores)) in enumerate(ranked, 1):
            yield rank, {"params": json.loads(key), "mean_test_score": mean,
                         "std_test_score": std, "split_test_scores": scores}


if __name__ == "__main__":
    GridSearch.run()
