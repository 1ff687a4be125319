"""Inverted index: for every word, the input files it occurs in.

Input: text files (several; a directory is walked).  A word is a run of ``[\\w']``
characters, lowercased (as in ``jobs/wordcount.py``).
Output: one line per distinct word, ``"word"<TAB>["file1", "file2", ...]``: the distinct
files holding the word, sorted, sorted by word within each part file.

Files are named by their base name (``kjv-ecclesiastes.txt``), not by the path the engine
reports in ``self.input_path``.  That path is spelled as the input was given on the command
line (``sample_data/x.txt``, ``./sample_data/x.txt``, ``/home/me/sample_data/x.txt``, a
temporary directory...), so it would make the output depend on where and how the job was
started; the base name does not.  The price: two files with the same name in different
directories count as one.  ``--full-path`` keeps the path as given instead.

Map: ``(word, file)`` once per distinct word of a line.  The combiner emits each distinct
file of a word once (sorted), which is safe because set union is associative, commutative
and idempotent: deduplicating a spill's values, or a merge of already deduplicated spills,
never loses a file and the reducer deduplicates again.  It shrinks the shuffle to about one
record per (word, file) per map task.  The reducer yields the sorted distinct files.

    python -m mapreduce run jobs/inverted_index.py sample_data/ -o out/ -q
    python jobs/inverted_index.py sample_data/          # prints the pairs
"""
import os
import re

from mapreduce import Job

WORD_RE = re.compile(r"[\w']+")


class InvertedIndex(Job):
    def configure_args(self, parser):
        parser.add_argument("--full-path", action="store_true",
                            help="name files by their path as given, not their base name")

    def mapper_init(self):
        path = self.input_path or ""
        self.file = path if self.options.full_path else os.path.basename(path)

    def mapper(self, _, line):
        for word in dict.fromkeys(w.lower() for w in WORD_RE.findall(line)):
            yield word, self.file

    def combiner(self, word, files):
        for name in sorted(set(files)):
            yield word, name

    def reducer(self, word, files):
        yield word, sorted(set(files))


if __name__ == "__main__":
    InvertedIndex.run()
