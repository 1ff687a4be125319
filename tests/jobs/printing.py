"""Word count whose mapper and reducer ``print`` chatter: user prints must never end up in
the output pairs printed on stdout when the job file is run directly."""
import re

from mapreduce import Job

WORD_RE = re.compile(r"[\w']+")


class NoisyWordCount(Job):
    REDUCERS = 2

    def mapper(self, _, line):
        print("noise from mapper:", line)
        for word in WORD_RE.findall(line):
            yield word.lower(), 1

    def reducer(self, word, counts):
        print("noise from reducer:", word)
        yield word, sum(counts)


if __name__ == "__main__":
    NoisyWordCount.run()
