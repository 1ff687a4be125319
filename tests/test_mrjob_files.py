"""mrjob's files, switches and commands (issue 17, part 2): FILES / DIRS / ARCHIVES,
``add_file_arg``, ``--files`` / ``--dirs`` / ``--archives`` / ``--cmdenv`` / ``--setup``,
each task in its own working directory.

Oracles: the real mrjob 0.7.4 (in the ``test`` extra) running the same unedited script --
its inline runner, or its local runner where only that one runs ``--setup`` -- and plain
Python.  Every run of ours is ``python -m mapreduce run`` in a subprocess, as a user runs
it, from a directory that is neither the script's nor the input's (so a relative open only
works if the file really is in the task's working directory).
"""
from __future__ import annotations

import collections
import io
import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from ft_helpers import one_error_line

EXAMPLES = Path(__file__).parent / "mrjob_examples"
TIMEOUT = 120


def cli(*args, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mapreduce", "run", *map(str, args)],
                          cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT)


def mrjob(script, *args, cwd, runner="inline") -> list[bytes]:
    pytest.importorskip("mrjob")
    proc = subprocess.run([sys.executable, str(script), "-r", runner, "--no-conf",
                           *map(str, args)], cwd=cwd, capture_output=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr.decode()
    return sorted(proc.stdout.splitlines())


def our_lines(out: Path) -> list[bytes]:
    return sorted(b"".join(p.read_bytes() for p in sorted(out.glob("part-*"))).splitlines())


@pytest.fixture
def elsewhere(tmp_path) -> Path:
    """The directory the commands run from: holds nothing the job opens."""
    d = tmp_path / "elsewhere"
    d.mkdir()
    return d


# --- mr_most_used_word: FILES = ['stop_words.txt'] and add_file_arg ------------------------
def test_most_used_word_with_its_files_and_an_alternate_stop_words_file(tmp_path, elsewhere):
    words = ["the"] * 9 + ["and"] * 7 + ["zebra"] * 5 + ["apple"] * 3
    text = tmp_path / "in.txt"
    text.write_text("\n".join(" ".join(words[i:i + 5]) for i in range(0, len(words), 5)) + "\n")
    script = EXAMPLES / "mr_most_used_word.py"
    stop = set((EXAMPLES / "stop_words.txt").read_text().split())
    counts = collections.Counter(words)
    # The default FILES stop words drop "the" and "and": zebra is the answer.
    assert {"the", "and"} <= stop and "zebra" not in stop
    expected = max((n, w) for w, n in counts.items() if w not in stop)[1]
    assert expected == "zebra"
    for runner in ("local", "inline"):
        out = tmp_path / f"out-{runner}"
        proc = cli(script, text, "-o", out, "-q", "--runner", runner, cwd=elsewhere)
        assert proc.returncode == 0, proc.stderr
        assert our_lines(out) == [b'"zebra"']
    assert mrjob(script, text, cwd=elsewhere) == [b'"zebra"']
    # add_file_arg: another stop words file, given relative to where the command runs.
    (elsewhere / "mine").mkdir()
    (elsewhere / "mine" / "alt.txt").write_text("the\nzebra\n")
    out = tmp_path / "out-alt"
    proc = cli(script, text, "-o", out, "-q", "--stop-words-file", "mine/alt.txt",
               cwd=elsewhere)
    assert proc.returncode == 0, proc.stderr
    assert our_lines(out) == [b'"and"']
    assert mrjob(script, text, "--stop-words-file", "mine/alt.txt", cwd=elsewhere) == \
        [b'"and"']
    # mrjob's testing pattern, the unedited script loaded by mapreduce: the same answers
    from mapreduce.loader import load_job_class

    job_class = load_job_class(str(script))[0]
    here = os.getcwd()
    os.chdir(elsewhere)
    try:
        for args, answer in [([], (None, "zebra")), (["--stop-words-file", "mine/alt.txt"],
                                                     (None, "and"))]:
            job = job_class(["-r", "local", "--num-cores", "2", *args, str(text)])
            with job.make_runner() as runner:
                runner.run()
                assert list(job.parse_output(runner.cat_output())) == [answer]
    finally:
        os.chdir(here)


# --- FILES / DIRS / ARCHIVES with #NAME, what a task sees --------------------------------------
FILES_JOB = '''
import os
import re
from mrjob.job import MRJob


class MRShowFiles(MRJob):
    FILES = ['data/words.txt#alias.txt']
    DIRS = ['conf']
    ARCHIVES = ['pack.tar.gz']

    def configure_args(self):
        super().configure_args()
        self.add_file_arg('--extra', action='append', default=[])

    def mapper_init(self):
        with open('alias.txt') as f:
            self.words = f.read().split()
        with open(os.path.join('conf', 'a.txt')) as f:
            self.conf = f.read().strip()
        with open(os.path.join('pack.tar.gz', 'inner', 'b.txt')) as f:
            self.packed = f.read().strip()
        self.extra = []
        for name in self.options.extra:
            with open(name) as f:
                self.extra.append([name, f.read().strip()])

    def mapper(self, _, line):
        for word in line.split():
            if word in self.words:
                yield word, 1

    def reducer(self, key, values):
        values = list(values)
        yield key, sum(values) if isinstance(values[0], int) else values[0]

    def reducer_init(self):
        # the reduce task has the same working directory
        with open('alias.txt') as f:
            yield 'reducer-sees', len(f.read().split())

    def mapper_final(self):
        yield 'conf', self.conf
        yield 'packed', self.packed
        yield 'extra', self.extra


if __name__ == '__main__':
    MRShowFiles.run()
'''


def _files_project(root: Path) -> Path:
    (root / "data").mkdir()
    (root / "data" / "words.txt").write_text("fox dog\n")
    (root / "conf").mkdir()
    (root / "conf" / "a.txt").write_text("from-a-dir\n")
    (root / "inner").mkdir()
    (root / "inner" / "b.txt").write_text("from-an-archive\n")
    with tarfile.open(root / "pack.tar.gz", "w:gz") as tar:
        tar.add(root / "inner", arcname="inner")
    script = root / "mr_show_files.py"
    script.write_text(FILES_JOB)
    return script


def test_files_dirs_archives_and_aliases_are_in_every_tasks_working_directory(
        tmp_path, elsewhere):
    project = tmp_path / "project"
    project.mkdir()
    script = _files_project(project)
    text = tmp_path / "in.txt"
    text.write_text("the fox and the dog\nfox\n" * 50)
    (elsewhere / "x.txt").write_text("ex\n")
    args = [text, "--extra", "x.txt", "--extra", str(elsewhere / "x.txt") + "#y.txt"]
    for runner in ("local", "inline"):
        out = tmp_path / f"out-{runner}"
        proc = cli(script, *args, "-o", out, "-q", "--runner", runner, "--reducers", "1",
                   cwd=elsewhere)
        assert proc.returncode == 0, proc.stderr
        lines = our_lines(out)
        assert b'"fox"\t100' in lines and b'"dog"\t50' in lines
        assert b'"extra"\t[["x.txt", "ex"], ["y.txt", "ex"]]' in lines
        assert b'"packed"\t"from-an-archive"' in lines
        assert b'"conf"\t"from-a-dir"' in lines
        assert b'"reducer-sees"\t2' in lines
        # the same lines as mrjob's (one map task's worth of *_final lines each)
        ours = sorted(set(lines))
        assert ours == sorted(set(mrjob(script, *args, cwd=elsewhere)))
    assert sorted(p.name for p in elsewhere.iterdir()) == ["x.txt"]  # nothing left behind


def test_a_missing_file_is_one_line_at_start_naming_it(tmp_path, elsewhere):
    project = tmp_path / "project"
    project.mkdir()
    script = _files_project(project)
    text = tmp_path / "in.txt"
    text.write_text("fox\n")
    (project / "data" / "words.txt").unlink()
    proc = cli(script, text, "-o", tmp_path / "o1", cwd=elsewhere)
    one_error_line(proc, "FILES", "data/words.txt", "no such file")
    (project / "data" / "words.txt").write_text("fox\n")
    proc = cli(script, text, "-o", tmp_path / "o2", "--extra", "gone.txt", cwd=elsewhere)
    one_error_line(proc, "--extra", "gone.txt")
    proc = cli(script, text, "-o", tmp_path / "o3", "--files", "nope.txt", cwd=elsewhere)
    one_error_line(proc, "--files", "nope.txt")
    proc = cli(script, text, "-o", tmp_path / "o4", "--archives", str(text), cwd=elsewhere)
    one_error_line(proc, "--archives", "not an archive")
    proc = cli(script, text, "-o", tmp_path / "o5", "--files", f"{text}#alias.txt",
               cwd=elsewhere)
    one_error_line(proc, "alias.txt", "both")
    for n in range(1, 6):
        assert not (tmp_path / f"o{n}").exists()


# --- --files, --cmdenv and --setup: the CLI, MRJob(args), and mrjob's local runner --------------
ENV_JOB = '''
import os
import re
from mrjob.job import MRJob


class MREnv(MRJob):
    def mapper_init(self):
        with open('made.txt') as f:
            made = f.read().strip()
        with open('given.txt') as f:
            given = f.read().strip()
        yield 'env', [os.environ.get('COLOUR'), os.environ.get('SHADE'), made, given]

    def mapper(self, _, line):
        return iter(())

    def reducer(self, key, values):
        yield key, sorted(set(map(tuple, values)))


if __name__ == '__main__':
    MREnv.run()
'''


def test_cmdenv_setup_and_files_switches_as_mrjobs_local_runner(tmp_path, elsewhere):
    script = tmp_path / "mr_env.py"
    script.write_text(ENV_JOB)
    text = tmp_path / "in.txt"
    text.write_text("a\nb\n")
    (tmp_path / "seed.txt").write_text("seeded\n")
    (elsewhere / "given.txt").write_text("given\n")
    switches = ["--cmdenv", "COLOUR=blue", "--files", "given.txt",
                "--setup", "export SHADE=dark-$COLOUR",
                "--setup", f"cp {tmp_path / 'seed.txt'}#s.txt made.txt"]
    expected = [b'"env"\t[["blue", "dark-blue", "seeded", "given"]]']
    for runner in ("local", "inline"):
        out = tmp_path / f"out-{runner}"
        proc = cli(script, text, "-o", out, "-q", "--runner", runner, *switches,
                   cwd=elsewhere)
        assert proc.returncode == 0, proc.stderr
        assert our_lines(out) == expected
    assert mrjob(script, text, *switches, cwd=elsewhere, runner="local") == expected
    # mrjob's testing pattern, same switches (run from where --files' path is relative to)
    from mapreduce.mrjob import MRJob
    namespace = {"__name__": "mr_env_ours"}
    exec(compile(ENV_JOB.replace("from mrjob.job import MRJob",
                                 "from mapreduce.mrjob import MRJob"), str(script), "exec"),
         namespace)
    assert issubclass(namespace["MREnv"], MRJob)
    here = os.getcwd()
    os.chdir(elsewhere)
    try:
        job = namespace["MREnv"](["-r", "inline", *switches, "-"])
        job.sandbox(stdin=io.BytesIO(b"x\n"))
        with job.make_runner() as runner:
            runner.run()
            assert list(job.parse_output(runner.cat_output())) == [
                ("env", [["blue", "dark-blue", "seeded", "given"]])]
    finally:
        os.chdir(here)


def test_a_failing_setup_command_fails_the_job_naming_it(tmp_path, elsewhere):
    script = tmp_path / "mr_env.py"
    script.write_text(ENV_JOB)
    text = tmp_path / "in.txt"
    text.write_text("a\n")
    proc = cli(script, text, "-o", tmp_path / "o", "--runner", "inline",
               "--setup", "echo broken >&2; exit 3", cwd=elsewhere)
    assert proc.returncode == 1, proc.stderr
    assert "--setup" in proc.stderr and "status 3" in proc.stderr and "broken" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "o" / "_SUCCESS").exists()


def test_working_directory_options_are_refused_where_tasks_have_none(tmp_path):
    script = tmp_path / "mr_env.py"
    script.write_text(ENV_JOB)
    proc = cli(script, tmp_path / "mr_env.py", "-o", tmp_path / "o", "--runner", "spark",
               "--cmdenv", "A=1", cwd=tmp_path)
    one_error_line(proc, "--cmdenv", "spark")
    assert not (tmp_path / "o").exists()
    # a job's own FILES too (mr_most_used_word), naming the setting
    proc = cli(EXAMPLES / "mr_most_used_word.py", tmp_path / "mr_env.py", "-o", tmp_path / "o",
               "--runner", "spark", cwd=tmp_path)
    one_error_line(proc, "FILES", "--runner spark")
    assert not (tmp_path / "o").exists()


# --- combiner_cmd and combiner_pre_filter, as mrjob's local runner runs them ------------------
COMBINER_CMD_JOB = '''
from mrjob.job import MRJob
from mrjob.step import MRStep


class MRUpperCount(MRJob):
    """The combiner command upper-cases every map output line; the reducer sums."""

    def steps(self):
        return [MRStep(mapper=self.mapper, combiner_cmd='tr a-z A-Z',
                       reducer=self.reducer)]

    def mapper(self, _, line):
        for word in line.split():
            yield word, 1

    def reducer(self, word, ones):
        yield word, sum(ones)


if __name__ == '__main__':
    MRUpperCount.run()
'''

COMBINER_PRE_FILTER_JOB = '''
from mrjob.job import MRJob


class MRFilteredCount(MRJob):
    """Lines holding $DROP never reach the Python combiner (and so the reducer)."""

    def mapper(self, _, line):
        for word in line.split():
            yield word, 1

    def combiner_pre_filter(self):
        return 'grep -v -F "$DROP"'

    def combiner(self, word, ones):
        yield word, sum(ones)

    def reducer(self, word, counts):
        yield word, sum(counts)


if __name__ == '__main__':
    MRFilteredCount.run()
'''


COMBINER_CASES = [(COMBINER_CMD_JOB, "upper"), (COMBINER_PRE_FILTER_JOB, "filtered")]


def _combiner_case(source, name, tmp_path):
    """The job file, its input, the switches it needs and the expected lines (plain Python:
    the Counter of the words, upper-cased or without those holding "the")."""
    script = tmp_path / f"mr_{name}.py"
    script.write_text(source)
    words = "the cat there dog cat the mouse other cat".split()
    text = tmp_path / "in.txt"
    text.write_text("\n".join(" ".join(words[i:] + words[:i]) for i in range(40)) + "\n")
    counts = collections.Counter(w for line in text.read_text().split("\n")
                                 for w in line.split())
    if name == "upper":
        expected, switches = {w.upper(): n for w, n in counts.items()}, []
    else:
        expected = {w: n for w, n in counts.items() if "the" not in w}
        switches = ["--cmdenv", "DROP=the"]
    return script, text, switches, sorted(f'"{w}"\t{n}'.encode() for w, n in expected.items())


@pytest.mark.parametrize("source,name", COMBINER_CASES, ids=[n for _, n in COMBINER_CASES])
def test_combiner_commands_run_once_per_map_task_over_its_sorted_output(
        source, name, tmp_path, elsewhere):
    script, text, switches, expected = _combiner_case(source, name, tmp_path)
    for runner in ("local", "inline"):
        out = tmp_path / f"out-{runner}"
        proc = cli(script, text, "-o", out, "-q", "--runner", runner, "--split-size", "400",
                   *switches, cwd=elsewhere)
        assert proc.returncode == 0, proc.stderr
        assert our_lines(out) == expected


@pytest.mark.slow  # mrjob's local runner takes ~15 s a job here (a Python process per task)
@pytest.mark.parametrize("source,name", COMBINER_CASES, ids=[n for _, n in COMBINER_CASES])
def test_combiner_commands_as_mrjobs_local_runner(source, name, tmp_path, elsewhere):
    script, text, switches, expected = _combiner_case(source, name, tmp_path)
    assert mrjob(script, text, *switches, cwd=elsewhere, runner="local") == expected
    out = tmp_path / "out"
    proc = cli(script, text, "-o", out, "-q", *switches, cwd=elsewhere)
    assert proc.returncode == 0, proc.stderr
    assert our_lines(out) == expected


# --- pass_arg_through ---------------------------------------------------------------------------
PASS_JOB = '''
from mrjob.job import MRJob


class MRWhere(MRJob):
    def configure_args(self):
        super().configure_args()
        self.pass_arg_through('--runner')
        self.pass_arg_through(%r)

    def mapper(self, _, line):
        yield 'runner', self.options.runner

    def reducer(self, key, values):
        yield key, sorted(set(values))


if __name__ == '__main__':
    MRWhere.run()
'''


def test_pass_arg_through_gives_tasks_the_runner_switch(tmp_path, elsewhere):
    script = tmp_path / "mr_where.py"
    script.write_text(PASS_JOB % "-r")
    text = tmp_path / "in.txt"
    text.write_text("a\nb\n")
    for runner in ("inline", "local"):
        out = tmp_path / f"out-{runner}"
        proc = cli(script, text, "-o", out, "-q", "--runner", runner, cwd=elsewhere)
        assert proc.returncode == 0, proc.stderr
        assert our_lines(out) == [f'"runner"\t["{runner}"]'.encode()]
    assert mrjob(script, text, cwd=elsewhere) == [b'"runner"\t["inline"]']
    # a switch that means nothing here: refused at start, naming it
    script.write_text(PASS_JOB % "--emr-action-on-failure")
    proc = cli(script, text, "-o", tmp_path / "o", cwd=elsewhere)
    one_error_line(proc, "pass_arg_through", "--emr-action-on-failure")
    assert not (tmp_path / "o").exists()


# --- --resume: the files are staged again for the tasks still to run ---------------------------
RESUME_JOB = '''
import os
import re
from mrjob.job import MRJob


class MRResumed(MRJob):
    FILES = ['words.txt']

    def mapper_init(self):
        with open('words.txt') as f:
            self.words = set(f.read().split())

    def mapper(self, _, line):
        for word in line.split():
            if word in self.words:
                yield word, 1

    def reducer_init(self):
        with open('words.txt') as f:
            self.suffix = f.read().split()[0]
        if not os.path.exists(%r):  # the first run's reduce fails once
            open(%r, 'w').close()
            raise RuntimeError('first run stops here')

    def reducer(self, word, ones):
        yield word + self.suffix, sum(ones)


if __name__ == '__main__':
    MRResumed.run()
'''


def test_resume_stages_the_files_again(tmp_path, elsewhere):
    marker = str(tmp_path / "failed-once")
    script = tmp_path / "mr_resumed.py"
    script.write_text(RESUME_JOB % (marker, marker))
    (tmp_path / "words.txt").write_text("cat dog\n")
    text = tmp_path / "in.txt"
    text.write_text("cat dog bird\ncat\n")
    out = tmp_path / "out"
    first = cli(script, text, "-o", out, "-q", "--max-attempts", "1", "--reducers", "1",
                cwd=elsewhere)
    assert first.returncode == 1 and "first run stops here" in first.stderr
    assert not (out / "_SUCCESS").exists()
    second = cli(script, text, "-o", out, "-q", "--resume", "--reducers", "1", cwd=elsewhere)
    assert second.returncode == 0, second.stderr
    assert our_lines(out) == [b'"catcat"\t2', b'"dogcat"\t1']
    tasks = json.loads((out / "_job.json").read_text())["tasks"]
    assert [(t["kind"], bool(t.get("recovered"))) for t in tasks] == [("map", True),
                                                                      ("reduce", False)]


# --- the same for a plain mapreduce.Job: the command line and the Python API ---------------------
PLAIN_JOB = '''
import os
import re
from mapreduce import Job


class Lookup(Job):
    def mapper_init(self):
        with open('names.txt') as f:
            self.names = dict(line.split() for line in f)
        with open(os.path.join('tables', 'suffix.txt')) as f:
            self.suffix = f.read().strip() + os.environ.get('MARK', '')

    def mapper(self, _, line):
        for word in line.split():
            yield self.names.get(word, word) + self.suffix, 1

    def reducer(self, key, ones):
        yield key, sum(ones)
'''


def test_a_plain_job_gets_files_dirs_and_cmdenv_from_the_cli_and_the_api(tmp_path, elsewhere):
    import mapreduce

    script = tmp_path / "lookup.py"
    script.write_text(PLAIN_JOB)
    (tmp_path / "n.txt").write_text("a alpha\nb beta\n")
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "suffix.txt").write_text("-x\n")
    text = tmp_path / "in.txt"
    text.write_text("a b c a\n")
    expected = sorted(b'"%s"\t%d' % (k.encode(), n) for k, n in
                      collections.Counter(["alpha-x!", "beta-x!", "c-x!", "alpha-x!"]).items())
    proc = cli(script, text, "-o", tmp_path / "cli", "-q",
               "--files", f"{tmp_path}/n.txt#names.txt", "--dirs", f"{tmp_path}/t#tables",
               "--cmdenv", "MARK=!", cwd=elsewhere)
    assert proc.returncode == 0, proc.stderr
    assert our_lines(tmp_path / "cli") == expected
    here = os.getcwd()
    result = mapreduce.run(str(script), [str(text)], str(tmp_path / "api"), runner="inline",
                           files=[f"{tmp_path}/n.txt#names.txt"],
                           dirs=[f"{tmp_path}/t#tables"], cmdenv={"MARK": "!"},
                           progress=False)
    assert os.getcwd() == here and "MARK" not in os.environ  # put back after each task
    assert our_lines(Path(result.output_dir)) == expected


# --- mrjob's # syntax in --setup, and the directory put back -----------------------------------
def test_setup_hash_paths_are_uploaded_and_replaced_by_their_names(tmp_path):
    from mapreduce.errors import UsageError
    from mapreduce.taskdir import parse_setup

    (tmp_path / "setup.sh").write_text("echo hi\n")
    (tmp_path / "lib").mkdir()
    with tarfile.open(tmp_path / "deps.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "lib", arcname="lib")
    d = str(tmp_path)
    command, uploads = parse_setup(
        f"sh {d}/setup.sh#; export PYTHONPATH=$PYTHONPATH:{d}/deps.tar.gz#deps/; "
        f"ls {d}/lib/#code/ '{d}/setup.sh#quoted' # a comment", "--setup")
    assert command == ("sh setup.sh; export PYTHONPATH=$PYTHONPATH:deps/; "
                       f"ls code/ '{d}/setup.sh#quoted' # a comment")
    assert [(u.kind, u.path, u.name) for u in uploads] == [
        ("file", f"{d}/setup.sh", "setup.sh"), ("archive", f"{d}/deps.tar.gz", "deps"),
        ("dir", f"{d}/lib", "code")]
    with pytest.raises(UsageError, match=re.escape(f"--setup: {d}/gone.sh: no such file")):
        parse_setup(f"sh {d}/gone.sh#", "--setup")
    with pytest.raises(UsageError, match="no closing quotation"):
        parse_setup("echo 'open", "--setup")


def test_task_directory_is_undone_even_when_the_task_fails(tmp_path):
    from mapreduce.errors import TaskFailedError
    from mapreduce.taskdir import resolve_upload, stage, task_directory

    (tmp_path / "f.txt").write_text("data\n")
    spec = stage([resolve_upload("file", f"{tmp_path}/f.txt#g.txt", "--files")],
                 str(tmp_path / "work" / "files"), {"MAPREDUCE_TEST_X": "1"},
                 ["export MAPREDUCE_TEST_Y=$MAPREDUCE_TEST_X$MAPREDUCE_TEST_X"])
    before = (os.getcwd(), dict(os.environ), list(sys.path))
    with pytest.raises(ZeroDivisionError):
        with task_directory(spec, "t") as wd:
            assert os.getcwd() == wd and sys.path[0] == wd
            assert Path("g.txt").read_text() == "data\n"
            assert os.environ["MAPREDUCE_TEST_Y"] == "11"
            1 / 0
    assert (os.getcwd(), dict(os.environ), list(sys.path)) == before
    assert not os.path.exists(wd)
    failing = stage([], str(tmp_path / "work2" / "files"), {}, ["false"])
    with pytest.raises(TaskFailedError, match="--setup 'false' exited with status 1"):
        with task_directory(failing, "t"):
            pass
    assert (os.getcwd(), dict(os.environ), list(sys.path)) == before


def test_archives_are_known_by_their_contents_and_stay_inside_their_directory(tmp_path):
    import zipfile

    from mapreduce.errors import UsageError
    from mapreduce.taskdir import resolve_upload, stage, task_directory

    with zipfile.ZipFile(tmp_path / "lib.jar", "w") as jar:  # a zip under another name
        jar.writestr("pkg/mod.py", "VALUE = 7\n")
    (tmp_path / "evil").mkdir()
    (tmp_path / "evil" / "x.txt").write_text("x\n")
    with tarfile.open(tmp_path / "evil.tgz", "w:gz") as tar:
        tar.add(tmp_path / "evil" / "x.txt", arcname="../escaped.txt")
    jar = resolve_upload("archive", f"{tmp_path}/lib.jar#lib", "--archives")
    spec = stage([jar], str(tmp_path / "w" / "files"), {}, [])
    with task_directory(spec, "t"):
        assert Path("lib/pkg/mod.py").read_text() == "VALUE = 7\n"
    evil = resolve_upload("archive", f"{tmp_path}/evil.tgz", "--archives")
    with pytest.raises(UsageError, match="evil.tgz: cannot unpack"):
        stage([evil], str(tmp_path / "w2" / "files"), {}, [])
    assert not (tmp_path / "w2" / "escaped.txt").exists()
    with pytest.raises(UsageError, match="not an archive"):
        resolve_upload("archive", f"{tmp_path}/evil/x.txt", "--archives")
