"""SORT_VALUES job: input lines ``user,timestamp,event``.

The mapper emits ``user -> (timestamp, event)``; with ``SORT_VALUES = True`` the reducer
must see each user's values in ascending order, and yields them unchanged as a list so the
test can check the order the engine delivered.
"""
from mapreduce import Job


class UserTimeline(Job):
    SORT_VALUES = True

    def mapper(self, _, line):
        user, timestamp, event = line.split(",")
        yield user, (int(timestamp), event)

    def reducer(self, user, values):
        yield user, list(values)
