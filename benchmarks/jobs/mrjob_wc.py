"""The word-count baseline for mrjob (run by benchmarks/run.py only when mrjob is importable).

Same tokenization as ``wc_split.py`` (``line.split()``), combiner and reducer sum; mrjob
writes ``json(word) TAB count`` lines, the format of our part files.

    python benchmarks/jobs/mrjob_wc.py -r local --num-cores 2 --no-conf INPUT --output-dir OUT
"""
from mrjob.job import MRJob


class MRWordCountSplit(MRJob):
    def mapper(self, _, line):
        for word in line.split():
            yield word, 1

    def combiner(self, word, counts):
        yield word, sum(counts)

    def reducer(self, word, counts):
        yield word, sum(counts)


if __name__ == "__main__":
    MRWordCountSplit.run()
