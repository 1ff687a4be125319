"""The end of a job with many tasks: the work directory's removal.

``layout.remove_tree`` unlinks a large tree's files from several threads (on ext4 an unlink
of an fsynced file waits for the journal; concurrent ones share it).  Checked here for what it
must keep doing: everything under the tree goes, a symlink inside it is removed and never
followed, a missing tree is no error; and a job of a few hundred tasks leaves no work
directory and the right output.
"""
from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
from pathlib import Path

from mapreduce.layout import remove_tree

REPO = Path(__file__).resolve().parent.parent


def test_remove_tree_removes_everything_and_follows_no_symlink(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    tree = tmp_path / "tree"
    for d in range(5):
        sub = tree / f"step-{d}" / "nested"
        sub.mkdir(parents=True)
        for i in range(40):  # 200 files: above the parallel threshold
            with open(sub / f"map-{i:05d}.out", "wb") as f:
                f.write(b"x" * 100)
                f.flush()
                os.fsync(f.fileno())
    (tree / "link-to-outside").symlink_to(outside, target_is_directory=True)
    (tree / "dangling").symlink_to(tmp_path / "nowhere")
    (tmp_path / "link-tree").symlink_to(outside, target_is_directory=True)
    remove_tree(str(tmp_path / "link-tree"))  # a symlink itself: refused, nothing followed
    assert (outside / "keep.txt").read_text() == "keep"
    remove_tree(str(tree))
    assert not tree.exists() and not tree.is_symlink()
    assert (outside / "keep.txt").read_text() == "keep"
    remove_tree(str(tree))  # already gone: nothing to do, no error


def test_job_of_hundreds_of_tasks_commits_and_leaves_no_work_directory(tmp_path):
    lines = [" ".join(f"w{(i * 7 + j) % 13}" for j in range(20)) for i in range(600)]
    (tmp_path / "in.txt").write_text("".join(line + "\n" for line in lines))
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "mapreduce", "run",
                           str(REPO / "benchmarks" / "jobs" / "wc_split.py"),
                           "--job", "WordCountSplit", "in.txt", "-o", str(out),
                           "--split-size", "150", "-q"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    expected = collections.Counter(w for line in lines for w in line.split())
    got = {}
    for part in sorted(out.glob("part-*")):
        for row in part.read_text().splitlines():
            key, value = row.split("\t")
            got[json.loads(key)] = json.loads(value)
    assert got == dict(expected)
    assert sorted(p.name for p in out.iterdir()) == \
        sorted(["_SUCCESS", "_job.json"] + [p.name for p in out.glob("part-*")])
    summary = json.loads((out / "_job.json").read_text())
    assert sum(1 for t in summary["tasks"] if t["kind"] == "map") >= 200


def test_job_json_text_is_the_same_json_one_task_a_line():
    from mapreduce.session import summary_text

    class Odd:
        def __str__(self) -> str:
            return "odd"

    tasks = [{"kind": "map", "index": i, "input": f"f{i} bytes 0-9", "counters": {"a": i}}
             for i in range(50)]
    summary = {"schema": 2, "job": {"fingerprint_parts": {"inputs": [["a", 1, 2.5]]},
                                    "empty": {}, "none": None},
               "counters": {"framework": {"X": 1}}, "phases": [], "tasks": tasks,
               "odd": Odd(), "text": "tab\tquote\"é"}
    text = summary_text(summary)
    assert json.loads(text) == json.loads(json.dumps(summary, default=str))
    lines = text.splitlines()
    for task in tasks:  # each task whole on its own line
        assert "    " + json.dumps(task) + ("," if task is not tasks[-1] else "") in lines
    assert lines[1] == '  "schema": 2,'
