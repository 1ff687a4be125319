"""Top words: the N most frequent words of the input, in rank order.

Input: text files.  A word is a run of ``[\\w']`` characters, lowercased (as in
``jobs/wordcount.py``).
Output: N lines ``"word"<TAB>count``, most frequent first; words with equal counts are
ranked alphabetically (count descending, then word ascending), so the output is the same on
every run.  All N lines are in one part file (the other part files are empty); read them in
file order, as ``cat OUT/part-*`` does.

Job option: ``--top N`` (default 10), how many words to keep.

Two steps:

1. Word count.  Map: ``(word, 1)`` per occurrence; the combiner and the reducer sum.
2. Top N.  Map: ``(None, (count, word))`` for every distinct word, so everything meets in the
   single reduce call of key ``None``.  The combiner keeps only the N best ``(count, word)``
   pairs of each map-side spill (a bounded heap, ``heapq.nsmallest``), so the one reducer
   receives at most N pairs per spill instead of one per distinct word.  That combiner is
   safe because "the N best" under a total order is decomposable: every member of the N best
   of the whole input is among the N best of whichever part it came from, so selecting from
   the per-part survivors gives exactly the global answer; the selection is associative and
   commutative, and running it any number of times (zero included) changes nothing.  Ties
   cannot make it ambiguous because the order includes the word, which is unique after
   step 1.  The reducer selects the N best again and yields them in rank order.

Run it::

    python -m mapreduce run jobs/top_words.py sample_data/ -o out/ --top 10 -q
    cat out/part-*
    python jobs/top_words.py sample_data/ --top 5       # prints the pairs
"""
import argparse
import heapq
import re

from mapreduce import Job, Step

WORD_RE = re.compile(r"[\w']+")


def _rank(pair):
    """Sort key of a (count, word) pair: the most frequent first, ties alphabetical."""
    count, word = pair
    return -count, word


def _non_negative(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0 (got {value})")
    return value


class TopWords(Job):
    def configure_args(self, parser):
        parser.add_argument("--top", type=_non_negative, default=10, metavar="N",
                            help="how many of the most frequent words to output (default 10)")

    def steps(self):
        return [
            Step(mapper=self.words, combiner=self.count, reducer=self.count),
            Step(mapper=self.to_one_key, combiner=self.keep_best, reducer=self.best),
        ]

    # step 1: word count
    def words(self, _, line):
        for word in WORD_RE.findall(line):
            yield word.lower(), 1

    def count(self, word, counts):
        yield word, sum(counts)

    # step 2: top N
    def to_one_key(self, word, count):
        yield None, (count, word)

    def _best(self, pairs):
        return heapq.nsmallest(self.options.top, pairs, key=_rank)

    def keep_best(self, _, pairs):
        for pair in self._best(pairs):
            yield None, pair

    def best(self, _, pairs):
        for count, word in self._best(pairs):
            yield word, count


if __name__ == "__main__":
    TopWords.run()
