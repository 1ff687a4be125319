"""HTTP status codes per hour of an access log (the job of docs/tutorial.md).

Input: access-log lines in the Common Log Format (make some with make_access_log.py)::

    198.51.100.35 - - [12/Mar/2024:14:02:11 +0000] "GET /index.html HTTP/1.1" 200 2267

Output: one line per (hour, status) with the number of requests::

    ["2024-03-12 14:00", 200]	7350

    python -m mapreduce run docs/tutorial/status_by_hour.py access.log -o by-hour
    python docs/tutorial/status_by_hour.py access.log          # prints the pairs
"""
import logging

from mapreduce import Job

MONTHS = {name: number for number, name in enumerate(
    "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), start=1)}

log = logging.getLogger("status_by_hour")


def parse(line):
    """('2024-03-12 14:00', 200) from one access-log line."""
    when = line.split("[", 1)[1]                 # 12/Mar/2024:14:02:11 +0000] "GET / ...
    day, month, rest = when.split("/", 2)        # '12', 'Mar', '2024:14:02:11 +0000] ...'
    hour = f"{rest[:4]}-{MONTHS[month]:02d}-{day} {rest[5:7]}:00"
    status = int(line.rsplit('"', 1)[1].split()[0])  # the field after the request
    return hour, status


class StatusByHour(Job):
    REDUCERS = 2

    def mapper_init(self):
        # force: replace any handler the worker inherited from the process that started it
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s",
                            force=True)
        self.lines = 0

    def mapper(self, _, line):
        hour, status = parse(line)
        self.lines += 1
        self.increment_counter("status", f"{status // 100}xx")
        if status == 503:
            log.warning("503 at %s: %s", hour, line)
        yield (hour, status), 1

    def mapper_final(self):
        print(f"read {self.lines} lines of {self.input_path} "
              f"(bytes {self.input_start}..{self.input_end})")

    def combiner(self, key, counts):
        yield key, sum(counts)

    def reducer(self, key, counts):
        yield key, sum(counts)


if __name__ == "__main__":
    StatusByHour.run()
