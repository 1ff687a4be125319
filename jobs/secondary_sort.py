"""Secondary sort: each user's events in time order (``SORT_VALUES = True``).

Computes: for every user, the user's events sorted by timestamp (ties by event name), either
as one timeline or cut into *sessions* wherever two consecutive events are more than
``--session-gap`` seconds apart.

Input: text lines ``user,timestamp,event`` in any order; ``timestamp`` is an integer (e.g.
Unix seconds), ``event`` is everything after the second comma (it may contain commas).
Blank lines and lines starting with ``#`` are skipped; any other line without three fields
or with a non-integer timestamp fails the task, naming the file and line.

Output (``json(key) TAB json(value)``, keys in order within each part file):

* default: one line per user, ``"user"<TAB>[[timestamp, "event"], ...]`` in time order;
* ``--session-gap SECONDS`` (> 0): one line per session, ``["user", n]<TAB>[[timestamp,
  "event"], ...]`` with sessions numbered from 1 in time order.

Map: ``(user, (timestamp, event))``.  With ``SORT_VALUES = True`` the engine sorts each
user's values during the shuffle (the merge compares encoded ``(timestamp, event)`` bytes,
which order like the tuples do), so the reducer streams one user's events in time order
without holding or sorting them itself: it needs memory for one session at most, however
many events a user has.  No combiner: there is nothing to shrink before the reducer, which
needs every event.

Demo data: ``jobs/data/events/events.csv``, 400 events of 12 users over one day, shuffled
(made by :func:`make_events`)::

    python -m mapreduce run jobs/secondary_sort.py jobs/data/events/ -o out/ -q
    python -m mapreduce run jobs/secondary_sort.py jobs/data/events/ -o out/ -q \\
        --session-gap 1800
    python jobs/secondary_sort.py jobs/data/events/events.csv      # prints the pairs
"""
import argparse
import random

from mapreduce import Job


def _non_negative_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def parse_event(line):
    """``"user,timestamp,event"`` -> ``(user, timestamp, event)``; None for a blank or
    ``#`` line; ValueError for anything else that is not three fields and an int time."""
    if not line.strip() or line.startswith("#"):
        return None
    fields = line.split(",", 2)
    if len(fields) != 3:
        raise ValueError(f"expected 'user,timestamp,event', got {line!r}")
    user, timestamp, event = fields
    try:
        return user, int(timestamp), event
    except ValueError:
        raise ValueError(f"timestamp is not an integer: {timestamp!r} in {line!r}") from None


class SecondarySort(Job):
    SORT_VALUES = True

    def configure_args(self, parser):
        parser.add_argument("--session-gap", type=_non_negative_int, default=0,
                            metavar="SECONDS",
                            help="cut each user's events into sessions at gaps longer than "
                                 "SECONDS (default 0: one timeline per user)")

    def mapper(self, _, line):
        record = parse_event(line)
        if record is not None:
            user, timestamp, event = record
            yield user, (timestamp, event)

    def reducer(self, user, events):
        gap = self.options.session_gap
        if not gap:
            yield user, [[t, e] for t, e in events]
            return
        session, last, number = [], None, 0
        for t, e in events:  # ascending: the engine sorted them
            if last is not None and t - last > gap:
                number += 1
                yield (user, number), session
                session = []
            session.append([t, e])
            last = t
        if session:
            yield (user, number + 1), session


EVENTS = ("login", "view", "search", "add_to_cart", "checkout", "logout")


def make_events(count=390, users=12, seed=2024, start=1_700_000_000):
    """The demo data's lines (deterministic): ``count`` (+10) events of ``users`` users over one
    day, in bursts (sessions) so that ``--session-gap`` has something to cut, shuffled.
    Some events share a user and a timestamp, to show that ties sort by event name."""
    rng = random.Random(seed)
    lines = []
    for i in range(count):
        user = f"u{rng.randrange(users) + 1:02d}"
        burst = rng.randrange(6)                       # six bursts a day, ~4 h apart
        t = start + burst * 14_400 + rng.randrange(1_200)
        lines.append(f"{user},{t},{rng.choice(EVENTS)}")
    # a few exact duplicates of (user, timestamp) with another event
    for line in lines[:10]:
        user, t, _ = line.split(",")
        lines.append(f"{user},{t},{rng.choice(EVENTS)}")
    rng.shuffle(lines)
    return lines


if __name__ == "__main__":
    SecondarySort.run()
