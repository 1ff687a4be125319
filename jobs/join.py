"""Join: a reduce-side join of two sets of CSV-ish text files on their first field.

Input: text files of records ``key,rest...``, one per line.  The join key is the text
before the first separator (``--sep``, default ``,``) and ``rest`` everything after it (``""``
when there is no separator); blank lines and lines starting with ``#`` (e.g. a commented
header) are skipped.  Files whose name matches ``--left`` form the left side, all the others
the right side.
Output: one line per joined pair of records, ``"key"<TAB>["left rest", "right rest"]``, sorted
by key within each part file.  An inner join (the default) outputs only keys present on both
sides; ``--how left`` (a left outer join) also outputs every left record whose key has no
right record, as ``"key"<TAB>["left rest", null]``.  A key with several records on both sides
gives every combination (the cross product).

Job options:

* ``--left PATTERN`` (default ``left``): which input files are the left side.  PATTERN is
  matched against each file's base name: as a glob (``fnmatch``, case-sensitive) if it
  contains ``*``, ``?`` or ``[``, otherwise as a substring.  The job fails before any task
  runs (exit status 2) if no input file, or every input file, matches.
* ``--how inner|left`` (default ``inner``): the kind of join.
* ``--sep SEP`` (default ``,``): the field separator.

Map: ``(key, (side, rest))`` per record, the side ("L" or "R") decided by the name of the
file being read (``self.input_path``, the task context of a map task).  No combiner: there
is nothing to combine before both sides of a key have met.  The reducer gathers the key's
left and right records (both are held in memory, so a key with a huge number of records
needs that much memory) and yields the pairs.

The output order is deterministic: for each key, left records in input order, each paired
with the right records in input order.  This relies on the engine's guarantee that, without
``SORT_VALUES``, a reducer sees a key's values in the order the mappers emitted them over
the input (input files in command-line order, a directory's files sorted by name, lines in
file order), whatever the split size, worker count or ``--mode``.

Demo data in ``jobs/data/join/``: ``users.csv`` (left: ``user_id,name,country``) and
``orders.csv`` (right: ``user_id,order_id,amount``)::

    python -m mapreduce run jobs/join.py jobs/data/join/ -o out/ --left users -q
    python -m mapreduce run jobs/join.py jobs/data/join/ -o out/ --left users --how left -q
    python jobs/join.py jobs/data/join/ --left 'user*.csv' --how left     # prints the pairs
"""
import fnmatch
import os

from mapreduce import Job
from mapreduce.errors import UsageError

LEFT, RIGHT = "L", "R"


def is_left(path, pattern):
    """Whether the file at ``path`` belongs to the left side under ``--left pattern``."""
    name = os.path.basename(path)
    if any(c in pattern for c in "*?["):
        return fnmatch.fnmatchcase(name, pattern)
    return pattern in name


class Join(Job):
    def configure_args(self, parser):
        parser.add_argument("--left", default="left", metavar="PATTERN",
                            help="input files whose base name matches PATTERN (a glob if it "
                                 "has * ? or [, else a substring) are the left side; the "
                                 "others the right side (default: left)")
        parser.add_argument("--how", choices=["inner", "left"], default="inner",
                            help="inner join (default), or left outer join: left records "
                                 "without a match are output with null on the right")
        parser.add_argument("--sep", default=",",
                            help="field separator; the key is the first field (default ,)")

    def prepare(self, inputs):
        left = [path for path in inputs if is_left(path, self.options.left)]
        if not left:
            raise UsageError(f"--left {self.options.left!r} matches no input file's name, so "
                             f"the left side is empty (inputs: {', '.join(inputs)})")
        if len(left) == len(inputs):
            raise UsageError(f"--left {self.options.left!r} matches every input file's name, "
                             "so the right side is empty")
        return None

    def mapper_init(self):
        self.side = LEFT if is_left(self.input_path or "", self.options.left) else RIGHT

    def mapper(self, _, line):
        if not line.strip() or line.startswith("#"):
            return
        key, _sep, rest = line.partition(self.options.sep)
        self.increment_counter("join", "left records" if self.side == LEFT else "right records")
        yield key, (self.side, rest)

    def reducer(self, key, tagged):
        lefts, rights = [], []
        for side, rest in tagged:
            (lefts if side == LEFT else rights).append(rest)
        if not rights:
            if lefts:
                self.increment_counter("join", "unmatched left keys")
            if self.options.how == "left":
                for left in lefts:
                    yield key, (left, None)
            return
        if not lefts:
            self.increment_counter("join", "unmatched right keys")
        for left in lefts:
            for right in rights:
                yield key, (left, right)


if __name__ == "__main__":
    Join.run()
