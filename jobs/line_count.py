"""Line count: ``wc``'s lines, words and characters over all the input.

Input: text files.  A line is what the engine hands the mapper: text up to ``\\n`` (a
``\\r`` before it is dropped too); a last line without a newline counts, an empty file has
none.  Words are runs of non-whitespace (``str.split()``), characters are the characters of
the lines without their line endings (Unicode code points, not bytes).
Output: three lines, whatever the input (an empty file gives zeros)::

    "chars"<TAB>n
    "lines"<TAB>n
    "words"<TAB>n

(in whichever part files the keys hash to; there is one line per key.)

In-mapper combining: each map task counts into instance attributes (``mapper_init`` sets
them to 0, ``mapper`` adds to them and emits nothing, ``mapper_final`` yields the three
totals), so the shuffle carries three records per map task instead of one per line, and no
combiner is needed.  ``mapper_init``/``mapper_final`` run for every map task, an empty
file's included, so every key reaches the reducer at least once; the reducer sums.

    python -m mapreduce run jobs/line_count.py sample_data/ -o out/ -q
    python jobs/line_count.py sample_data/          # prints the pairs
"""
from mapreduce import Job


class LineCount(Job):
    def mapper_init(self):
        self.lines = 0
        self.words = 0
        self.chars = 0

    def mapper(self, _, line):
        self.lines += 1
        self.words += len(line.split())
        self.chars += len(line)

    def mapper_final(self):
        yield "lines", self.lines
        yield "words", self.words
        yield "chars", self.chars

    def reducer(self, key, counts):
        yield key, sum(counts)


if __name__ == "__main__":
    LineCount.run()
