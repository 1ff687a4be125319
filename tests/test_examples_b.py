"""Example jobs jobs/secondary_sort.py, jobs/pagerank.py and jobs/grid_search.py, run end to
end through the command line and checked against plain Python, NumPy and scikit-learn; and
side data shared between workers (a 200 MB array is not copied into each worker)."""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
JOBS = ROOT / "jobs"
DATA = JOBS / "data"
sys.path.insert(0, str(JOBS))

import grid_search  # noqa: E402
import pagerank  # noqa: E402
import secondary_sort  # noqa: E402

ENV = dict(os.environ)  # the package is installed (pip install -e): no PYTHONPATH
MODES = ["disk", "memory"]


def run_cli(job, inputs, out: Path, *options: str, env=None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "mapreduce", "run", str(job), *map(str, inputs),
           "-o", str(out), "--workers", "2", "-q", *options]
    return subprocess.run(cmd, cwd=ROOT, env=env or ENV, capture_output=True, text=True)


def run(job, inputs, out: Path, *options: str) -> Path:
    proc = run_cli(job, inputs, out, *options)
    assert proc.returncode == 0, proc.stderr
    assert (out / "_SUCCESS").exists()
    return out


def pairs(out: Path) -> list:
    result = []
    for part in sorted(out.glob("part-*")):
        for line in part.read_text(encoding="utf-8").splitlines():
            key, value = line.split("\t")
            result.append((json.loads(key), json.loads(value)))
    return result


def output_bytes(out: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(out.glob("part-*")))


def counters(out: Path) -> dict:
    return json.loads((out / "_job.json").read_text())["counters"]


# --------------------------------------------------------------------------------------------
# secondary_sort.py
# --------------------------------------------------------------------------------------------
def python_timelines(lines) -> dict:
    by_user = defaultdict(list)
    for line in lines:
        record = secondary_sort.parse_event(line)
        if record:
            by_user[record[0]].append((record[1], record[2]))
    return {u: [list(e) for e in sorted(events)] for u, events in by_user.items()}


def python_sessions(lines, gap) -> dict:
    sessions = {}
    for user, events in python_timelines(lines).items():
        cut = [0] + [i for i in range(1, len(events)) if events[i][0] - events[i - 1][0] > gap]
        for n, (a, b) in enumerate(zip(cut, cut[1:] + [len(events)]), 1):
            sessions[(user, n)] = events[a:b]
    return sessions


@pytest.fixture(scope="module")
def many_events(tmp_path_factory) -> Path:
    """5,000 events in 3 files, so the map side spills many times under a tiny sort buffer."""
    d = tmp_path_factory.mktemp("events")
    lines = secondary_sort.make_events(count=4_990, users=40, seed=5)
    lines.insert(100, "# a comment")
    lines.insert(200, "")
    lines.append("u,99,event, with, commas")
    for i in range(3):
        (d / f"events-{i}.csv").write_text("\n".join(lines[i::3]) + "\n")
    return d


def test_shipped_events_are_the_generators():
    shipped = (DATA / "events" / "events.csv").read_text().splitlines()
    assert shipped == secondary_sort.make_events()
    assert len(shipped) == 400
    assert shipped != sorted(shipped)


@pytest.mark.parametrize("mode", MODES)
def test_secondary_sort_matches_python_sorted(tmp_path, many_events, mode):
    out = run(JOBS / "secondary_sort.py", [many_events], tmp_path / "out", "--mode", mode,
              "--sort-buffer", "2KB", "--split-size", "16KB", "--reducers", "3")
    got = pairs(out)
    lines = [l for f in sorted(many_events.iterdir()) for l in f.read_text().splitlines()]
    assert dict(got) == python_timelines(lines)
    assert len(got) == len(dict(got))                      # one line per user
    for part in sorted(out.glob("part-*")):                # keys in order within a part
        keys = [json.loads(l.split("\t")[0]) for l in part.read_text().splitlines()]
        assert keys == sorted(keys)
    c = counters(out)["framework"]
    if mode == "disk":
        map_tasks = sum(1 for t in json.loads((out / "_job.json").read_text())["tasks"]
                        if t["kind"] == "map")
        assert c["SPILL_FILES"] > 3 * map_tasks            # the tiny buffer really spilled


@pytest.mark.parametrize("mode", MODES)
def test_secondary_sort_sessions(tmp_path, mode):
    events = DATA / "events" / "events.csv"
    out = run(JOBS / "secondary_sort.py", [events], tmp_path / "out", "--mode", mode,
              "--session-gap", "1800", "--sort-buffer", "1KB")
    got = {tuple(k): v for k, v in pairs(out)}
    assert got == python_sessions(events.read_text().splitlines(), 1800)
    assert len(got) > len(python_timelines(events.read_text().splitlines()))


def test_secondary_sort_bad_line_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("u1,10,login\nu1,ten,logout\n")
    proc = run_cli(JOBS / "secondary_sort.py", [bad], tmp_path / "out")
    assert proc.returncode == 1
    assert "bad.csv line 2" in proc.stderr and "timestamp is not an integer" in proc.stderr


# --------------------------------------------------------------------------------------------
# pagerank.py
# --------------------------------------------------------------------------------------------
def numpy_pagerank(lines, iterations=10, damping=0.85) -> dict:
    """Dense power iteration: r' = (1-d)/N + d (M r + (sum of dangling r)/N)."""
    import numpy as np

    nodes, links = set(), defaultdict(set)
    for line in lines:
        ids = pagerank.parse_edge_line(line)
        nodes.update(ids)
        if len(ids) == 2:
            links[ids[0]].add(ids[1])
    order = sorted(nodes, key=pagerank.node_order)
    index = {node: i for i, node in enumerate(order)}
    n = len(order)
    m = np.zeros((n, n))
    dangling = np.ones(n, dtype=bool)
    for src, dsts in links.items():
        dangling[index[src]] = False
        for dst in dsts:
            m[index[dst], index[src]] = 1.0 / len(dsts)
    r = np.full(n, 1.0 / n)
    for _ in range(iterations):
        r = (1 - damping) / n + damping * (m @ r + r[dangling].sum() / n)
    return {node: float(r[index[node]]) for node in order}


def assert_ranks_close(got: list, want: dict, tol=1e-9):
    assert len(got) == len(want)
    got = dict(got)
    assert set(got) == set(want)
    assert max(abs(got[k] - want[k]) for k in want) < tol
    assert abs(sum(got.values()) - 1.0) < 1e-12


def test_shipped_graph_is_the_generators():
    lines = (DATA / "graph" / "edges.txt").read_text().splitlines()
    assert lines == pagerank.make_graph()
    sources = {l.split()[0] for l in lines}
    targets = {l.split()[1] for l in lines}
    assert len(sources | targets) == 50 and targets - sources == {"49"}  # 49 is dangling


@pytest.mark.parametrize("mode", MODES)
def test_pagerank_matches_numpy_power_iteration(tmp_path, mode):
    edges = DATA / "graph" / "edges.txt"
    out = run(JOBS / "pagerank.py", [edges], tmp_path / "out", "--mode", mode)
    assert_ranks_close(pairs(out), numpy_pagerank(edges.read_text().splitlines()))


def test_pagerank_output_independent_of_reducers_and_splits(tmp_path):
    edges = DATA / "graph" / "edges.txt"
    a = run(JOBS / "pagerank.py", [edges], tmp_path / "a", "--reducers", "1")
    b = run(JOBS / "pagerank.py", [edges], tmp_path / "b", "--reducers", "5",
            "--split-size", "97", "--mode", "memory")
    assert sorted(output_bytes(a).splitlines()) == sorted(output_bytes(b).splitlines())


def test_pagerank_string_ids_several_dangling_duplicates(tmp_path):
    lines = ["# a comment", "a b", "a b", "a c", "b c", "c a", "c c", "d a", "e", "",
             "a 7", "7 a", "f d", "d x", "x"]   # e, x: dangling; e isolated; c self-loop
    edges = tmp_path / "edges.txt"
    edges.write_text("\n".join(lines) + "\n")
    out = run(JOBS / "pagerank.py", [edges], tmp_path / "out", "--damping", "0.9",
              "--reducers", "3")
    assert_ranks_close(pairs(out), numpy_pagerank(lines, damping=0.9))


def test_pagerank_iterations_option(tmp_path):
    edges = DATA / "graph" / "edges.txt"
    for iterations in (3, 12):
        out = run(JOBS / "pagerank.py", [edges], tmp_path / f"out{iterations}",
                  "--iterations", str(iterations))
        assert_ranks_close(pairs(out), numpy_pagerank(edges.read_text().splitlines(),
                                                      iterations=iterations))


def test_exact_add_is_order_independent():
    rng = random.Random(1)
    xs = [rng.random() * 10 ** rng.randint(-20, 20) for _ in range(500)]
    import math

    for trial in range(5):
        rng.shuffle(xs)
        partials: list = []
        for x in xs:
            pagerank.exact_add(partials, x)
        assert math.fsum(partials) == math.fsum(xs)


# --------------------------------------------------------------------------------------------
# grid_search.py
# --------------------------------------------------------------------------------------------
GRID = {"C": [1, 10], "gamma": [0.001, 0.01]}
FOLDS = 3


@pytest.fixture(scope="module")
def sklearn_reference():
    pytest.importorskip("sklearn", reason="scikit-learn is not installed "
                                          "(pip install 'mapreduce[examples]')")
    from sklearn.datasets import load_digits
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.svm import SVC

    X, y = load_digits(return_X_y=True)
    return GridSearchCV(SVC(), GRID, cv=StratifiedKFold(n_splits=FOLDS)).fit(X, y)


def test_shipped_grid_is_the_full_grid(tmp_path):
    grid_search.write_grid(tmp_path / "params.jsonl")
    shipped = (DATA / "grid" / "params.jsonl").read_bytes()
    assert shipped == (tmp_path / "params.jsonl").read_bytes()
    lines = shipped.splitlines(keepends=True)
    assert len(lines) == 9 and {len(l) for l in lines} == {grid_search.SPEC_LINE_BYTES}


@pytest.mark.parametrize("mode", MODES)
def test_grid_search_matches_gridsearchcv(tmp_path, sklearn_reference, mode):
    spec = tmp_path / "params.jsonl"
    grid_search.write_grid(spec, GRID)
    out = run(JOBS / "grid_search.py", [spec], tmp_path / "out", "--mode", mode,
              "--folds", str(FOLDS), "--split-size", str(grid_search.SPEC_LINE_BYTES))
    got = pairs(out)
    assert [rank for rank, _ in got] == list(range(1, len(got) + 1))
    by_params = {json.dumps(v["params"], sort_keys=True): v for _, v in got}
    cv = sklearn_reference.cv_results_
    assert len(by_params) == len(cv["params"]) == 4
    for i, params in enumerate(cv["params"]):
        mine = by_params[json.dumps(params, sort_keys=True)]
        assert abs(mine["mean_test_score"] - cv["mean_test_score"][i]) < 1e-12
        assert abs(mine["std_test_score"] - cv["std_test_score"][i]) < 1e-12
        assert mine["split_test_scores"] == [cv[f"split{f}_test_score"][i]
                                             for f in range(FOLDS)]
    assert got[0][1]["params"] == sklearn_reference.best_params_
    means = [v["mean_test_score"] for _, v in got]
    assert means == sorted(means, reverse=True)
    assert counters(out)["grid_search"]["FITS"] == 4 * FOLDS


def test_grid_search_ties_keep_spec_order():
    job = grid_search.GridSearch()
    order = ['{"C":3}', '{"C":1}', '{"C":2}']
    job.side_data = {"order": order}
    results = [('{"C":1}', (0.5, 0.0, [])), ('{"C":2}', (0.9, 0.0, [])),
               ('{"C":3}', (0.5, 0.1, []))]
    ranked = [(r, v["params"]["C"]) for r, v in job.reducer_rank(None, iter(results))]
    assert ranked == [(1, 2), (2, 3), (3, 1)]


def test_grid_search_without_sklearn_says_how_to_install(tmp_path):
    fake = tmp_path / "fake"
    (fake / "sklearn").mkdir(parents=True)
    (fake / "sklearn" / "__init__.py").write_text(
        "raise ImportError(\"No module named 'sklearn'\")\n")
    env = {**ENV, "PYTHONPATH": str(fake)}  # an sklearn that fails to import
    proc = run_cli(JOBS / "grid_search.py", [DATA / "grid" / "params.jsonl"], tmp_path / "out",
                   env=env)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mapreduce: error:"), proc.stderr
    assert "pip install 'mapreduce[examples]'" in lines[0]


# --------------------------------------------------------------------------------------------
# side data: a 200 MB array shared by the workers, not copied into each
# --------------------------------------------------------------------------------------------
ARRAY_BYTES = 200 * 10 ** 6

SIDE_SUM_JOB = '''
import os
import time

import numpy as np
import psutil

from mapreduce import Job

N = {n}  # float64s: {mb} MB


class SideSum(Job):
    REDUCERS = 1

    def configure_args(self, parser):
        parser.add_argument("--barrier", default="")

    def prepare(self, inputs):
        return {{"big": np.arange(N, dtype=np.float64)}}

    def mapper(self, _, line):
        big = self.side_data["big"]
        total = float(big.sum())  # reads (maps) every page of the array
        # Wait until every task has read the array, so that all workers map it at once
        # (a page mapped by one process only counts in its USS, shared or not).
        open(os.path.join(self.options.barrier, str(os.getpid())), "w").close()
        deadline = time.monotonic() + 15
        while len(os.listdir(self.options.barrier)) < int(line) and time.monotonic() < deadline:
            time.sleep(0.01)
        waited = len(os.listdir(self.options.barrier))
        m = psutil.Process().memory_full_info()
        for name in ("uss", "pss", "rss", "shared"):
            self.increment_counter("memory", f"{{os.getpid()}}_{{name}}", getattr(m, name))
        copy = np.array(big)  # what a private copy would cost: the probe must see it
        uss_with_copy = psutil.Process().memory_full_info().uss
        del copy
        yield None, {{"pid": os.getpid(), "sum": total, "uss": m.uss, "pss": m.pss,
                      "rss": m.rss, "shared": m.shared, "uss_with_copy": uss_with_copy,
                      "writeable": bool(big.flags.writeable), "barrier": waited}}

    def reducer(self, key, values):
        for v in sorted(values, key=lambda v: v["pid"]):
            yield key, v
'''


def test_side_data_array_is_shared_not_copied(tmp_path):
    pytest.importorskip("numpy")
    pytest.importorskip("psutil")
    n = ARRAY_BYTES // 8
    job = tmp_path / "side_sum.py"
    job.write_text(textwrap.dedent(SIDE_SUM_JOB.format(n=n, mb=ARRAY_BYTES // 10 ** 6)))
    workers = 2
    inputs = []
    for i in range(workers):  # one map task per file: each worker runs one
        (tmp_path / f"in{i}.txt").write_text(f"{workers}\n")
        inputs.append(tmp_path / f"in{i}.txt")
    (tmp_path / "barrier").mkdir()
    # --split-size 2: each 2-byte file its own map task (small files are otherwise packed)
    out = run(job, inputs, tmp_path / "out", "--barrier", str(tmp_path / "barrier"),
              "--split-size", "2")
    results = [v for _, v in pairs(out)]
    assert len(results) == workers and len({r["pid"] for r in results}) == workers
    assert all(r["barrier"] == workers for r in results), "the tasks did not run at once"
    mb = 10 ** 6
    report = "; ".join(f"pid {r['pid']}: USS {r['uss'] / mb:.1f} MB, PSS {r['pss'] / mb:.1f} MB, "
                       f"RSS {r['rss'] / mb:.1f} MB (file-backed {r['shared'] / mb:.1f} MB), "
                       f"USS with a private copy {r['uss_with_copy'] / mb:.1f} MB"
                       for r in results)
    print(f"\n{workers} workers, {ARRAY_BYTES / mb:.0f} MB side-data array: {report}")
    expected_sum = float(n) * (n - 1) / 2
    for r in results:
        assert r["sum"] == expected_sum                       # every page was read
        assert not r["writeable"]                             # read-only in tasks
        assert r["shared"] > 0.9 * ARRAY_BYTES                # resident, file-backed
        assert r["uss"] < ARRAY_BYTES / 4, report             # not a private copy
        assert r["uss_with_copy"] - r["uss"] > 0.9 * ARRAY_BYTES  # a copy would show
    # N workers share one copy: the proportional set sizes add up to about one array
    # (plus each worker's own small footprint), not N arrays.
    assert sum(r["pss"] for r in results) < 1.5 * ARRAY_BYTES, report
    assert counters(out)["memory"][f"{results[0]['pid']}_uss"] == results[0]["uss"]
