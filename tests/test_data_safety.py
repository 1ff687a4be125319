"""Data safety: the work directory, the job commit and ``--resume`` never destroy data or
accept wrong output (issue 13), end to end through the real CLI.

Each test reproduces one way the engine used to lose data, accept damaged or stale bytes, hang
or crash, and checks the fixed behaviour against an independent reference: a fault-free run
of the same job (byte for byte), plain-Python word counts, or the files the user had before.

1. ``--work-dir``: the framework works in a private directory it creates inside the one named,
   deletes only that, and refuses a work directory that overlaps the output or an input, or
   one made by another user;
2. a work directory on another file system commits (copy, fsync, rename);
3. damaged committed part files are found on ``--resume`` and their tasks re-run;
4. inputs that change under the job (same size and mtime; truncated mid-run) fail the job;
5. ``--skip-bad-records`` holds across ``--resume``;
6. side data is checked against its digest whenever a worker loads it;
7. size-0 pseudo-files (``/proc/cpuinfo``) are refused, not read as empty;
8. memory mode never hangs on a stopped idle worker;
9. damaged map outputs are not charged to the reducer; damaged step outputs are re-made;
10. two jobs sharing a ``--work-dir`` do not meet; the output path is in the fingerprint;
11. a kill during the job commit is finished by ``--resume`` (also with ``-o`` inside the
    input directory); what a reader must check is ``_SUCCESS``;
12. a mapper whose forked child returns into the task fails the job with one line;
13. replaying a journal of many commits is linear;
14. messages: disk full on the reduce side, a corrupt journal, a worker killed by SIGKILL
    (out of memory?), ``sys.exit`` in a task.
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

import ft_helpers as H
import test_fault_tolerance as FT
from mapreduce.journal import TASK_COMMITTED

STD = FT.STD


@pytest.fixture
def runner(tmp_path):
    r = H.Runner(str(tmp_path / "_runs"))
    yield r
    r.close()


@pytest.fixture(scope="module")
def words(tmp_path_factory) -> FT.Ref:
    base = str(tmp_path_factory.mktemp("safety-words"))
    inp = H.write_words(os.path.join(base, "words.txt"), FT.SEED + 13, 20000)
    ref = FT._reference(base, "wc", H.WORDCOUNT, [inp], STD)
    assert H.output_counts(ref.out) == H.word_counts([inp])
    return ref


def _tree(path: str) -> dict[str, bytes]:
    """Every file under ``path`` (relative name -> bytes), to compare before and after."""
    found = {}
    for root, _dirs, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            with open(full, "rb") as f:
                found[os.path.relpath(full, path)] = f.read()
    return found


def _private_dirs(parent: str) -> list[str]:
    return sorted(glob.glob(os.path.join(parent, "mapreduce-*")))


# ============================================================================================
# 1. --work-dir
# ============================================================================================

@pytest.mark.parametrize("keep", [False, True])
def test_work_dir_keeps_what_it_points_at(keep, words, runner, tmp_path):
    victim = tmp_path / "victim"
    (victim / "sub").mkdir(parents=True)
    (victim / "precious.txt").write_text("precious\n")
    (victim / "sub" / "deep.txt").write_text("deep\n")
    before = _tree(str(victim))
    out = str(tmp_path / "out")
    runner.ok(H.command(H.WORDCOUNT, words.inputs, out, *STD, "--work-dir", str(victim),
                        *(["--keep-work"] if keep else [])))
    H.assert_same_output(out, words.out)
    after = _tree(str(victim))
    for name, data in before.items():
        assert after.get(name) == data, f"{name} in the --work-dir was lost or changed"
    private = _private_dirs(str(victim))
    if keep:
        # The journal and logs are kept, in the private directory the job made.
        assert len(private) == 1 and os.path.isfile(os.path.join(private[0], "journal"))
        assert os.stat(private[0]).st_mode & 0o077 == 0, "the private work dir is not private"
    else:
        assert private == [] and set(after) == set(before)


def test_work_dir_that_does_not_exist_is_made_and_only_its_private_part_removed(
        words, runner, tmp_path):
    scratch = tmp_path / "scratch" / "deeper"
    out = str(tmp_path / "out")
    runner.ok(H.command(H.WORDCOUNT, words.inputs, out, *STD, "--work-dir", str(scratch)))
    H.assert_same_output(out, words.out)
    assert scratch.is_dir() and os.listdir(scratch) == []


def test_work_dir_overlapping_inputs_or_output_is_refused(words, runner, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(words.inputs[0], data / "words.txt")
    before = _tree(str(data))
    parent = tmp_path / "parent"
    out = parent / "out"
    cases = [
        (str(data), [str(data)], str(tmp_path / "o1")),           # work dir = input directory
        (str(data / "inner"), [str(data)], str(tmp_path / "o2")),  # inside the input directory
        (str(out), [str(data)], str(out)),                         # = the output directory
        (str(out / "inside"), [str(data)], str(out)),              # inside the output
    ]
    for work, inputs, o in cases:
        run = runner.run(H.command(H.WORDCOUNT, inputs, o, "--work-dir", work))
        assert run.returncode == 2, (work, run.stderr)
        line = H.one_line_error(run.stderr)
        assert "--work-dir" in line and work in line, line
        assert _tree(str(data)) == before
        assert not os.path.exists(os.path.join(o, "_SUCCESS"))
    # The output's parent is fine: the job works in a private directory inside it, and the
    # parent's other files and the output survive the end of the job.
    parent.mkdir()
    (parent / "neighbour.txt").write_text("stay\n")
    runner.ok(H.command(H.WORDCOUNT, [str(data)], str(out), *STD, "--work-dir", str(parent)))
    H.assert_same_output(str(out), words.out)
    assert (parent / "neighbour.txt").read_text() == "stay\n"
    assert sorted(os.listdir(parent)) == ["neighbour.txt", "out"]


def test_work_dir_made_by_someone_else_is_refused(words, runner, tmp_path):
    if os.getuid() != 0:
        pytest.skip("needs root to give a directory to another user")
    scratch = tmp_path / "scratch"
    out = str(tmp_path / "out")
    argv = H.command(FT.H.ft_job("commit_killer.py"), words.inputs, out, *STD,
                     "--work-dir", str(scratch))
    killed = runner.run(argv, FT_KILL_COMMIT="1", FT_OUT=out)
    assert killed.returncode == -signal.SIGKILL
    [private] = _private_dirs(str(scratch))
    os.chown(private, 65534, 65534)
    before = _tree(private)
    for extra in (["--resume"], ["--overwrite"]):
        run = runner.run(argv + extra)
        assert run.returncode == 1, run.stderr
        line = H.one_line_error(run.stderr)
        assert private in line and "another user" in line, line
        assert _tree(private) == before
    # A directory of ours that mapreduce did not make (no owner marker) is not taken either.
    os.chown(private, 0, 0)
    os.remove(os.path.join(private, "_OWNER"))
    run = runner.run(argv + ["--resume"])
    assert run.returncode == 1 and "not made by mapreduce" in H.one_line_error(run.stderr)


# ============================================================================================
# 2. a work directory on another file system
# ============================================================================================

@pytest.fixture
def other_fs(tmp_path):
    mnt = str(tmp_path / "otherfs")
    os.makedirs(mnt)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200m", "tmpfs", mnt],
                          capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", mnt], capture_output=True, timeout=30)


def test_work_dir_on_another_file_system_commits(other_fs, words, runner, tmp_path):
    assert os.stat(other_fs).st_dev != os.stat(str(tmp_path)).st_dev
    out = str(tmp_path / "out")
    runner.ok(H.command(H.WORDCOUNT, words.inputs, out, *STD, "--work-dir", other_fs))
    H.assert_same_output(out, words.out)
    assert os.listdir(other_fs) == []
    # and --resume after a kill in the middle of the commit finishes it across devices
    out2 = str(tmp_path / "out2")
    argv = H.command(H.ft_job("commit_killer.py"), words.inputs, out2, *STD,
                     "--work-dir", other_fs)
    assert runner.run(argv, FT_KILL_COMMIT="2", FT_OUT=out2).returncode == -signal.SIGKILL
    runner.ok(argv + ["--resume"])
    H.assert_same_output(out2, words.out)


# ============================================================================================
# 3. damaged committed part files
# ============================================================================================

def _damage(path: str, how: str) -> None:
    size = os.path.getsize(path)
    if how == "truncate":
        os.truncate(path, size // 2)
    elif how == "flip":
        with open(path, "r+b") as f:
            f.seek(size // 2)
            b = f.read(1)
            f.seek(size // 2)
            f.write(bytes([b[0] ^ 0x01]))
    else:
        with open(path, "ab") as f:
            f.write(b'"extra"\t1\n')


@pytest.mark.parametrize("how", ["truncate", "flip", "append"])
@pytest.mark.parametrize("where", ["committed", "output"])
def test_damaged_committed_part_is_rerun_on_resume(how, where, words, runner, tmp_path):
    out = str(tmp_path / "out")
    argv = H.command(H.ft_job("commit_killer.py"), words.inputs, out, *STD)
    # Kill before the first part is moved (all parts in committed/) or after two moved.
    kill_at = "1" if where == "committed" else "3"
    assert runner.run(argv, FT_KILL_COMMIT=kill_at, FT_OUT=out).returncode == -signal.SIGKILL
    if where == "committed":
        victim = os.path.join(out, "_temporary", "committed", "part-00001")
    else:
        victim = os.path.join(out, "part-00000")
    assert os.path.isfile(victim)
    _damage(victim, how)
    run = runner.ok(argv + ["--resume", "-v"])
    H.assert_same_output(out, words.out)
    summary = H.load_summary(out)
    index = int(victim[-5:])
    runs = [t for t in H.attempts_of(summary, (0, "reduce", index))]
    assert [t["status"] for t in runs] == ["discarded", "committed"], runs
    assert victim in run.stderr  # --verbose says which file failed its check


# ============================================================================================
# 4. inputs that change under the job
# ============================================================================================

@pytest.mark.parametrize("how", ["in-place", "rename"])
def test_input_rewritten_with_same_size_and_mtime_is_refused_on_resume(
        how, words, runner, tmp_path):
    inp = str(tmp_path / "words.txt")
    shutil.copyfile(words.inputs[0], inp)
    out = str(tmp_path / "out")
    argv = H.command(H.WORDCOUNT, [inp], out, *STD)
    FT.start_and_kill(runner, argv, out, FT.records_at_least(H.journal_path(out), 5))
    st = os.stat(inp)
    with open(inp, "rb") as f:
        data = bytearray(f.read())
    data[10:14] = b"ZZZZ" if data[10:14] != b"ZZZZ" else b"YYYY"
    if how == "in-place":
        with open(inp, "r+b") as f:
            f.write(data)
    else:  # what cp -p and rsync -t do: a new file, its times set, renamed over the old one
        with open(inp + ".new", "wb") as f:
            f.write(data)
        os.utime(inp + ".new", ns=(st.st_atime_ns, st.st_mtime_ns))
        os.replace(inp + ".new", inp)
    os.utime(inp, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(inp).st_size == st.st_size and os.stat(inp).st_mtime_ns == st.st_mtime_ns
    run = runner.run(argv + ["--resume"])
    assert run.returncode == 1, run.stderr
    line = H.one_line_error(run.stderr)
    assert inp in line and "changed" in line, line
    assert not os.path.exists(os.path.join(out, "_SUCCESS"))


def test_input_truncated_during_the_run_fails_naming_it(runner, tmp_path):
    inp = H.write_words(str(tmp_path / "words.txt"), FT.SEED + 14, 20000)
    out = str(tmp_path / "out")
    gate = str(tmp_path / "gate")
    run = runner.start(H.command(H.ft_job("gated.py"), [inp], out, "--split-size", "128KB",
                                 "--workers", "1"), FT_GATE=gate)
    deadline = time.monotonic() + 60
    while not any(H.worker_task(p) for p in H.children(run.pid)):
        assert time.monotonic() < deadline and run.proc.poll() is None, run.stderr
        time.sleep(0.01)
    os.truncate(inp, os.path.getsize(inp) // 3)
    open(gate, "w").close()
    assert run.wait() == 1, run.stderr
    line = H.one_line_error(run.stderr)
    assert inp in line and ("changed" in line or "shorter" in line), line
    assert not os.path.exists(os.path.join(out, "_SUCCESS"))
    assert not glob.glob(os.path.join(out, "part-*"))


def test_input_rewritten_during_the_run_fails_before_the_commit(runner, tmp_path):
    """Same size, same mtime, new bytes, while the job runs: caught by the check of every
    input's identity just before the job commits."""
    inp = H.write_words(str(tmp_path / "words.txt"), FT.SEED + 15, 5000)
    out = str(tmp_path / "out")
    gate = str(tmp_path / "gate")
    run = runner.start(H.command(H.ft_job("gated.py"), [inp], out, "--workers", "1"),
                       FT_GATE=gate)
    deadline = time.monotonic() + 60
    while not any(H.worker_task(p) for p in H.children(run.pid)):
        assert time.monotonic() < deadline and run.proc.poll() is None, run.stderr
        time.sleep(0.01)
    st = os.stat(inp)
    with open(inp + ".new", "wb") as f:
        with open(inp, "rb") as old:
            f.write(old.read().replace(b"w1", b"w2"))
    os.utime(inp + ".new", ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(inp + ".new", inp)
    open(gate, "w").close()
    assert run.wait() == 1, run.stderr
    line = H.one_line_error(run.stderr)
    assert inp in line and "changed" in line, line
    assert not os.path.exists(os.path.join(out, "_SUCCESS"))


# ============================================================================================
# 5. --skip-bad-records across --resume
# ============================================================================================

def test_skip_bad_records_limit_holds_across_resume(runner, tmp_path):
    # Two poisoned lines, in the first and the last map task; the limit allows one.
    inp = H.write_words(str(tmp_path / "in.txt"), FT.SEED + 16, 12000, poison=(3, 11990))
    out = str(tmp_path / "out")
    argv = H.command(H.ft_job("bad_records.py"), [inp], out, "--split-size", "64KB",
                     "--workers", "1", "--skip-bad-records", "1")
    journal = H.journal_path(out)

    def first_map_committed():
        return any(r.type == TASK_COMMITTED and r.payload["index"] == 0
                   for r in H.journal_records(journal))
    killed = FT.start_and_kill(runner, argv, out, first_map_committed)
    last_map = (os.path.getsize(inp) - 1) // 65536
    assert (0, "map", 0) in killed.committed and (0, "map", last_map) not in killed.committed
    run = runner.run(argv + ["--resume"])
    assert run.returncode == 1, run.stderr
    line = H.one_line_error(run.stderr)
    assert "2 bad records were skipped" in line and "--skip-bad-records=1" in line, line
    assert not os.path.exists(os.path.join(out, "_SUCCESS"))


# ============================================================================================
# 6. side data is checked whenever it is loaded
# ============================================================================================

class _Evil:
    def __reduce__(self):
        return (open, (os.environ["FT_PWNED"], "w"))


def test_side_data_swapped_after_it_was_stored_is_not_loaded(tmp_path, monkeypatch):
    import pickle

    from mapreduce.errors import CorruptDataError
    from mapreduce.sidedata import PICKLE_FILE, load_side_data, store_side_data

    ref = store_side_data({"split_points": [1, 2, 3]}, str(tmp_path / "side"))
    pwned = tmp_path / "pwned"
    monkeypatch.setenv("FT_PWNED", str(pwned))
    with open(tmp_path / "side" / PICKLE_FILE, "wb") as f:
        pickle.dump({"split_points": _Evil()}, f)
    with pytest.raises(CorruptDataError) as info:
        load_side_data(ref)
    assert PICKLE_FILE in str(info.value) and "digest" in str(info.value)
    assert not pwned.exists(), "the swapped-in pickle ran code"


def test_side_data_array_swapped_is_not_loaded(tmp_path):
    np = pytest.importorskip("numpy")
    from mapreduce.errors import CorruptDataError
    from mapreduce.sidedata import load_side_data, store_side_data

    ref = store_side_data({"a": np.arange(10)}, str(tmp_path / "side"))
    [npy] = glob.glob(str(tmp_path / "side" / "*.npy"))
    np.save(npy, np.arange(10) * 2)
    with pytest.raises(CorruptDataError):
        load_side_data(ref)


# ============================================================================================
# 7. size-0 pseudo-files
# ============================================================================================

def test_pseudo_file_reporting_size_zero_is_refused(runner, tmp_path):
    if not os.path.exists("/proc/cpuinfo") or os.path.getsize("/proc/cpuinfo") != 0:
        pytest.skip("no /proc/cpuinfo of reported size 0 here")
    out = str(tmp_path / "out")
    run = runner.run(H.command(H.WORDCOUNT, ["/proc/cpuinfo"], out))
    assert run.returncode == 1, run.stderr
    line = H.one_line_error(run.stderr)
    assert "/proc/cpuinfo" in line and "size 0" in line, line
    assert not os.path.exists(os.path.join(out, "_SUCCESS"))


# ============================================================================================
# 8. memory mode and a stopped idle worker
# ============================================================================================

def test_memory_mode_does_not_hang_on_a_stopped_idle_worker(runner, tmp_path):
    inp = H.write_letters(str(tmp_path / "letters.txt"), FT.SEED + 17, 60000)  # ~4 MB
    opts = ["--mode", "memory", "--split-size", "64MB", "--workers", "3", "--reducers", "4"]
    ref = FT._reference(str(tmp_path), "letters", H.WORDCOUNT, [inp], opts)
    # The stopped worker's task must time out; 10 s leaves the one map task (about 1 s on
    # a quiet machine) room on a loaded one, where 5 s timed it out too
    opts += ["--task-timeout", "10"]
    out = str(tmp_path / "out")
    gate = str(tmp_path / "gate")
    run = runner.start(H.command(H.ft_job("gated.py"), [inp], out, *opts), FT_GATE=gate)
    deadline = time.monotonic() + 60
    while True:
        kids = H.children(run.pid)
        busy = [p for p in kids if H.worker_task(p)]
        idle = [p for p in kids if not H.worker_task(p)]
        if len(kids) == 3 and busy:
            break
        assert time.monotonic() < deadline and run.proc.poll() is None, run.stderr
        time.sleep(0.01)
    stopped = max(idle)  # the last worker made: the third reduce spec is sent to it
    os.kill(stopped, signal.SIGSTOP)
    try:
        open(gate, "w").close()
        assert run.wait(timeout=90) == 0, run.stderr
    finally:
        try:
            os.kill(stopped, signal.SIGCONT)
        except ProcessLookupError:
            pass
    H.assert_same_output(out, ref.out)
    failed = [t for t in H.load_summary(out)["tasks"] if t["status"] == "failed"]
    assert failed and all("timed out" in t["error"] for t in failed), failed


# ============================================================================================
# 9. fetch failures are the map's, not the reducer's; damaged step outputs
# ============================================================================================

def test_many_damaged_map_outputs_do_not_fail_the_reducer(words, runner, tmp_path):
    out = str(tmp_path / "out")
    marker = str(tmp_path / "damaged")
    run = runner.run(H.command(H.ft_job("corrupt_map_output.py"), words.inputs, out, *STD,
                               "--max-attempts", "2"),
                     FT_CORRUPT_MODE="flip-data", FT_CORRUPT_MARKER=marker,
                     FT_CORRUPT_INDEX="all",
                     FT_CORRUPT_GLOB=os.path.join(out, "_temporary", "step-0", "map-*.out"))
    with open(marker, encoding="utf-8") as f:
        damaged = f.read().split("\n")
    assert len(damaged) == words.maps >= 4
    assert run.returncode == 0, run.stderr
    H.assert_same_output(out, words.out)


def test_damaged_step_output_is_remade_while_the_job_runs(runner, tmp_path):
    inp = H.write_words(str(tmp_path / "words.txt"), FT.SEED + 18, 20000)
    job = H.ft_job("corrupt_step_output.py")
    opts = ["--split-size", "128KB", "--workers", "1", "--reducers", "3"]
    ref = FT._reference(str(tmp_path), "steps", job, [inp], opts)
    expected: dict = {}
    for word, count in H.word_counts([inp]).items():
        expected[len(word)] = expected.get(len(word), 0) + count
    assert H.output_counts(ref.out) == expected
    out = str(tmp_path / "out")
    marker = str(tmp_path / "damaged")
    run = runner.run(H.command(job, [inp], out, *opts), FT_CORRUPT_MARKER=marker,
                     FT_CORRUPT_INDEX="2",
                     FT_CORRUPT_GLOB=os.path.join(out, "_temporary", "step-0", "output-*.run"))
    assert os.path.exists(marker)
    assert run.returncode == 0, run.stderr
    H.assert_same_output(out, ref.out)
    summary = H.load_summary(out)
    remade = [t for t in summary["tasks"] if (t["step"], t["kind"], t["index"]) == (0, "reduce", 2)]
    assert [t["status"] for t in remade] == ["committed", "committed"], remade


# ============================================================================================
# 10. two jobs, one --work-dir
# ============================================================================================

def test_two_jobs_sharing_a_work_dir_do_not_meet(words, runner, tmp_path):
    scratch = str(tmp_path / "scratch")
    out1, out2 = str(tmp_path / "out1"), str(tmp_path / "out2")
    gate = str(tmp_path / "gate")
    first = runner.start(H.command(H.ft_job("gated.py"), words.inputs, out1, *STD,
                                   "--work-dir", scratch), FT_GATE=gate)
    deadline = time.monotonic() + 60
    while not any(H.worker_task(p) for p in H.children(first.pid)):
        assert time.monotonic() < deadline and first.proc.poll() is None, first.stderr
        time.sleep(0.01)
    runner.ok(H.command(H.WORDCOUNT, words.inputs, out2, *STD, "--work-dir", scratch))
    H.assert_same_output(out2, words.out)
    open(gate, "w").close()
    assert first.wait() == 0, first.stderr
    H.assert_same_output(out1, words.out)


def test_resume_refuses_a_journal_of_another_output(words, runner, tmp_path):
    """The output path is part of the fingerprint: a work directory moved under another
    output is not taken for that output's job."""
    out = str(tmp_path / "out")
    argv = H.command(H.WORDCOUNT, words.inputs, out, *STD)
    FT.start_and_kill(runner, argv, out, FT.records_at_least(H.journal_path(out), 4))
    moved = str(tmp_path / "moved")
    os.rename(out, moved)
    run = runner.run(H.command(H.WORDCOUNT, words.inputs, moved, *STD, "--resume"))
    assert run.returncode == 1, run.stderr
    line = H.one_line_error(run.stderr)
    assert "output" in line and out in line, line


# ============================================================================================
# 11. a kill during the job commit
# ============================================================================================

@pytest.mark.parametrize("kill_at", [1, 2, 5, 6])  # before part 0, part 1, _job.json, _SUCCESS
def test_kill_during_job_commit_is_finished_by_resume(kill_at, words, runner, tmp_path):
    out = str(tmp_path / "out")
    argv = H.command(H.ft_job("commit_killer.py"), words.inputs, out, *STD)
    killed = runner.run(argv, FT_KILL_COMMIT=str(kill_at), FT_OUT=out)
    assert killed.returncode == -signal.SIGKILL
    assert not os.path.exists(os.path.join(out, "_SUCCESS"))
    plain = runner.run(argv)
    assert plain.returncode == 1 and "--resume" in H.one_line_error(plain.stderr)
    runner.ok(argv + ["--resume"])
    H.assert_same_output(out, words.out)


def test_kill_during_commit_with_output_inside_the_input_directory(words, runner, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(words.inputs[0], data / "words.txt")
    out = str(data / "out")
    argv = H.command(H.ft_job("commit_killer.py"), [str(data)], out, *STD)
    assert runner.run(argv, FT_KILL_COMMIT="3", FT_OUT=out).returncode == -signal.SIGKILL
    assert glob.glob(os.path.join(out, "part-*"))  # two parts moved, no _SUCCESS
    runner.ok(argv + ["--resume"])
    H.assert_same_output(out, words.out)
    # and a later --overwrite run does not read the old output as input
    runner.ok(H.command(H.WORDCOUNT, [str(data)], out, *STD, "--overwrite"))
    H.assert_same_output(out, words.out)


# ============================================================================================
# 12. a forked child returning into the task
# ============================================================================================

def test_forked_child_returning_into_the_task_fails_cleanly(runner, tmp_path):
    inp = H.write_words(str(tmp_path / "in.txt"), FT.SEED + 19, 2000)
    out = str(tmp_path / "out")
    run = runner.run(H.command(H.ft_job("forking_mapper.py"), [inp], out, "--workers", "2"),
                     FT_FORK="escape")
    assert run.returncode == 1, run.stderr
    line = H.one_line_error(run.stderr)
    assert "fork" in line and "os._exit" in line, line
    assert "Traceback" not in run.stderr.split(line)[0]
    assert not os.path.exists(os.path.join(out, "_SUCCESS"))
    assert H.wait_group_gone(run.pid, 10), "a forked child outlived the job"
    # A task that forks and ends its child properly is fine.
    runner.ok(H.command(H.ft_job("forking_mapper.py"), [inp], out, "--workers", "2",
                        "--overwrite"), FT_FORK="clean")
    assert H.output_counts(out) == H.word_counts([inp])


# ============================================================================================
# 13. replaying many commits is linear
# ============================================================================================

class _CountingList(list):
    """A list that counts the items every iteration over it visits."""

    visits = 0

    def __iter__(self):
        for item in list.__iter__(self):
            _CountingList.visits += 1
            yield item


def test_replaying_many_commits_visits_each_task_record_a_bounded_number_of_times():
    from mapreduce.runners.local import LocalRunner

    n = 3000
    tracker = LocalRunner.__new__(LocalRunner)
    tracker.committed, tracker.task_counters, tracker.recovered = {}, {}, {}
    tracker.skipped_by_task = {}
    tracker.tasks = _CountingList()
    for i in range(n):
        key = (0, "map", i)
        tracker._replay_commit({"step": 0, "kind": "map", "index": i, "attempt": "1-1",
                                "output": {"path": f"/x/{i}"}, "counters": [],
                                "task": {"step": 0, "kind": "map", "index": i,
                                         "status": "committed"}})
        assert key in tracker.committed
    _CountingList.visits = 0
    for i in range(n):
        tracker._drop((0, "map", i))
    assert _CountingList.visits <= 10 * n, _CountingList.visits
    assert all(t["status"] == "discarded" for t in list.__iter__(tracker.tasks))


# ============================================================================================
# 14. messages
# ============================================================================================

def test_sys_exit_in_a_task_names_the_users_line(runner, tmp_path):
    inp = str(tmp_path / "in.txt")
    with open(inp, "w") as f:
        f.write("a b\nc EXIT d\ne\n")
    out = str(tmp_path / "out")
    run = runner.run(H.command(H.ft_job("sys_exit.py"), [inp], out, "--max-attempts", "1"))
    assert run.returncode == 1, run.stderr
    line = H.one_line_error(run.stderr)
    assert "mapper called sys.exit(3)" in line and f"{inp} line 2" in line, line
    detail = run.stderr.split(line, 1)[1]
    assert "sys_exit.py" in detail and "mapreduce/" not in detail, detail


def test_worker_killed_by_sigkill_says_it_may_have_run_out_of_memory(runner, tmp_path):
    inp = str(tmp_path / "in.txt")
    with open(inp, "w") as f:
        f.write("a\n")
    out = str(tmp_path / "out")
    run = runner.run(H.command(H.ft_job("memory_hog.py"), [inp], out, "--max-attempts", "1"))
    assert run.returncode == 1, run.stderr
    line = H.one_line_error(run.stderr)
    assert "SIGKILL" in line and "out of memory" in line and "MiB" in line, line
    peak = int(line.split(" MiB")[0].rsplit(" ", 1)[1])
    assert peak >= 200, line


def test_disk_full_in_a_reduce_side_merge_is_reported_as_disk_full():
    import errno

    from mapreduce.kernel import reduce_error

    full = OSError(errno.ENOSPC, "No space left on device", "/w/step-0/attempts/x.merge")
    assert reduce_error(full, "reducer", "k", 0) is full


def test_corrupt_journal_message_says_what_to_do(words, runner, tmp_path):
    out = str(tmp_path / "out")
    journal = H.journal_path(out)
    argv = H.command(H.WORDCOUNT, words.inputs, out, *STD)
    killed = FT.start_and_kill(runner, argv, out, FT.records_at_least(journal, 6))
    victim = killed.records[3]
    with open(journal, "r+b") as f:
        f.seek(victim.offset + 9 + 5)
        b = f.read(1)
        f.seek(victim.offset + 9 + 5)
        f.write(bytes([b[0] ^ 0x01]))
    run = runner.run(argv + ["--resume"])
    assert run.returncode == 1
    line = H.one_line_error(run.stderr)
    assert f"offset {victim.offset}" in line and "--overwrite" in line, line


# ============================================================================================
# issue 14, items 1 and 2 (the same commit protocol)
# ============================================================================================

def test_resume_of_a_finished_output_refuses_what_changed(words, runner, tmp_path):
    out = str(tmp_path / "out")
    argv = H.command(H.WORDCOUNT, words.inputs, out, *STD)
    runner.ok(argv)
    before = H.part_bytes(out)
    runner.ok(argv + ["--resume"])  # nothing changed: nothing to do
    changed = list(argv)
    changed[changed.index("--reducers") + 1] = "2"
    run = runner.run(changed + ["--resume"])
    assert run.returncode == 1, run.stderr
    assert "--reducers" in H.one_line_error(run.stderr)
    other_job = H.command(H.ft_job("sys_exit.py"), words.inputs, out, *STD, "--resume")
    run = runner.run(other_job)
    assert run.returncode == 1 and "job" in H.one_line_error(run.stderr)
    assert H.part_bytes(out) == before


def test_overwrite_keeps_the_old_output_until_the_new_job_commits(words, runner, tmp_path):
    out = str(tmp_path / "out")
    runner.ok(H.command(H.WORDCOUNT, words.inputs, out, *STD))
    old = _tree(out)
    # A new job that fails keeps the old output complete and readable.
    bad = str(tmp_path / "exit.txt")
    with open(bad, "w") as f:
        f.write("a EXIT\n")
    run = runner.run(H.command(H.ft_job("sys_exit.py"), [bad], out, "--overwrite",
                               "--max-attempts", "1"))
    assert run.returncode == 1
    now = _tree(out)
    assert {k: v for k, v in now.items() if not k.startswith("_temporary")} == old
    # A new job killed before its commit: the old output is still whole.
    small = str(tmp_path / "small.txt")
    with open(small, "w") as f:
        f.write("x y x\n")
    argv = H.command(H.ft_job("commit_killer.py"), [small], out, "--reducers", "1")
    run = runner.start(argv + ["--overwrite"], FT_GATE=str(tmp_path / "gate"))
    deadline = time.monotonic() + 60
    while not any(H.worker_task(p) for p in H.children(run.pid)):
        assert time.monotonic() < deadline and run.proc.poll() is None, run.stderr
        time.sleep(0.01)
    H.sigkill(run.pid)
    assert run.wait() == -signal.SIGKILL
    now = _tree(out)
    assert {k: v for k, v in now.items() if not k.startswith(("_temporary", "_LOCK"))} == old
    # ... and killed in the middle of its commit (old output set aside, the new part moved
    # in, no _job.json yet): neither claims to be complete ...
    killed = runner.run(argv + ["--resume"], FT_KILL_COMMIT="2", FT_OUT=out)
    assert killed.returncode == -signal.SIGKILL
    assert not os.path.exists(os.path.join(out, "_SUCCESS"))
    # ... and --resume finishes it: the new output alone.
    runner.ok(argv + ["--resume"])
    assert sorted(H.part_bytes(out)) == ["part-00000"]
    assert H.output_counts(out) == {"x": 2, "y": 1}
    with open(os.path.join(out, "_job.json"), encoding="utf-8") as f:
        assert json.load(f)["reducers"] == 1
    assert sorted(os.listdir(out)) == ["_SUCCESS", "_job.json", "part-00000"]
