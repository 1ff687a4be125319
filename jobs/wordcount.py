"""Word count: how often each word occurs in the input.

Input: text files.  A word is a run of ``[\\w']`` characters, lowercased.
Output: one line per distinct word, ``"word"<TAB>count``, sorted by word within each part
file.  The combiner sums counts map-side, which is safe because addition is associative and
commutative, and shrinks the shuffle to one record per distinct word per spill.

    python -m mapreduce run jobs/wordcount.py sample_data/ -o out/
    python jobs/wordcount.py sample_data/          # prints the pairs
"""
import re

from mapreduce import Job

WORD_RE = re.compile(r"[\w']+")


class WordCount(Job):
    def mapper(self, _, line):
        for word in WORD_RE.findall(line):
            yield word.lower(), 1

    def combiner(self, word, counts):
        yield word, sum(counts)

    def reducer(self, word, counts):
        yield word, sum(counts)


if __name__ == "__main__":
    WordCount.run()
