"""Word count whose tasks print and log, and whose first map attempt fails once.

* ``print`` and ``logging`` in mapper and reducer: must land in the attempt logs
  (``OUT/_logs``), never in the output, the progress display or the summary.
* With ``FLAKY_MARKER`` set to a path, the first map attempt to run creates that file and
  raises; every later attempt succeeds (a retry the progress display must report).
"""
import logging
import os
import re

from mapreduce import Job

WORD_RE = re.compile(r"[\w']+")
log = logging.getLogger("chatty")


class ChattyFlaky(Job):
    REDUCERS = 2

    def mapper_init(self):
        marker = os.environ.get("FLAKY_MARKER")
        if marker:
            try:
                fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pass
            else:
                os.close(fd)
                raise RuntimeError("flaky: the first map attempt fails on purpose")

    def mapper(self, _, line):
        print("CHATTER-PRINT from mapper")
        log.warning("CHATTER-LOG from mapper")
        for word in WORD_RE.findall(line):
            yield word.lower(), 1

    def reducer(self, word, counts):
        print("CHATTER-PRINT from reducer")
        yield word, sum(counts)


if __name__ == "__main__":
    ChattyFlaky.run()
