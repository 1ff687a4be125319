"""PageRank by power iteration, one MapReduce step per iteration.

Computes: the PageRank of every node of a directed graph after ``--iterations`` rounds of

    rank'(v) = (1 - d) / N  +  d * ( sum over links u->v of rank(u) / outdeg(u)  +  D / N )

starting from ``rank = 1/N``, where ``d`` is ``--damping`` (0.85), ``N`` the number of nodes and
``D`` the total rank of the *dangling* nodes (nodes without out-links), which is spread evenly
over all nodes, as if a dangling node linked to every node.  The ranks always sum to 1.

Input: text lines ``SRC DST`` (a link; whitespace-separated), or ``NODE`` alone (a node that
may have no links).  A node id that is a decimal integer is read as an int, anything else as
a string.  Repeated links count once; blank lines and ``#`` lines are skipped.
Output: one line per node, ``node<TAB>rank``, in node order within each part file.

Job options: ``--iterations N`` (default 10, >= 1), ``--damping D`` (default 0.85).

Steps:

1. Build the adjacency list: map ``(node, dst)`` per link and ``(node, None)`` per mention (so
   nodes that only receive links exist too); reduce to ``node -> (1/N, [out-links])``.
   ``N`` is counted once, in ``prepare()`` (which reads the edge files, in the coordinator),
   and reaches every task as ``self.side_data["nodes"]``.
2. ... 1 + N: one step per iteration.  Map ``node -> (rank, links)`` to the node's structure,
   ``(node, links)``, and one share ``(dst, rank / outdeg)`` per link.  Reduce each node:
   ``rank' = (1-d)/N + d * (sum of shares + D/N)``; the last iteration yields ``(node, rank)``.

The dangling mass ``D`` is a global sum every reducer needs before it computes any node.  A
MapReduce step has no driver between map and reduce to read a counter (Hadoop's usual
fix), so the job *broadcasts* it: each map task adds up its dangling nodes' rank and, in
``mapper_final``, emits it once per reduce partition under the key ``(0, p)``, which the
job's ``partitioner`` sends to partition ``p``.  Node keys are ``(1, node)``, so ``(0, p)`` sorts
first and each reduce task reads its copy of every map task's mass before its first node.
(The partitioner is the only place a job learns the reducer count; the mapper reads it
from there.  Node keys are partitioned by a CRC-32 of their JSON text.)

No combiner: summing shares map-side would round partial sums, making the output depend on
how the input was split.  Instead shares are summed with ``math.fsum`` (exactly rounded),
and each map task's dangling mass travels as exact partial sums (Shewchuk's algorithm, the
one ``fsum`` uses), so the output bytes are the same for any ``--split-size``,
``--reducers``, ``--workers`` or ``--mode``.

Demo graph: ``jobs/data/graph/edges.txt``, 50 nodes (0..49) and 161 links; node 49 is
dangling (made by :func:`make_graph`)::

    python -m mapreduce run jobs/pagerank.py jobs/data/graph/ -o out/ -q
    python -m mapreduce run jobs/pagerank.py jobs/data/graph/ -o out/ -q --iterations 30
    python jobs/pagerank.py jobs/data/graph/edges.txt --damping 0.9   # prints the pairs
"""
import argparse
import bz2
import gzip
import json
import math
import random
import zlib

from mapreduce import Job, Step

MASS, NODE = 0, 1   # first element of an iteration step's keys: broadcast mass < nodes


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _probability(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return value


def parse_node(token):
    """A node id: an int if the token is a decimal integer, else the string."""
    try:
        return int(token)
    except ValueError:
        return token


def parse_edge_line(line):
    """``"SRC DST"`` -> ``[src, dst]``; ``"NODE"`` -> ``[node]``; blank or ``#`` -> ``[]``."""
    fields = line.split()
    if not fields or fields[0].startswith("#"):
        return []
    if len(fields) > 2:
        raise ValueError(f"expected 'SRC DST' or 'NODE', got {line!r}")
    return [parse_node(f) for f in fields]


def node_order(node):
    """Sort key for node ids of mixed types (ints before strings, as the shuffle does)."""
    return (isinstance(node, str), node)


def _open_text(path):
    if path.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    if path.endswith(".bz2"):
        return bz2.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def exact_add(partials, x):
    """Add ``x`` to ``partials``, non-overlapping floats whose sum is exact (Shewchuk's
    algorithm, as in ``math.fsum``): ``math.fsum(partials)`` is the correctly rounded sum of
    everything added, whatever the order or grouping of the additions."""
    i = 0
    for y in partials:
        if abs(x) < abs(y):
            x, y = y, x
        hi = x + y
        lo = y - (hi - x)
        if lo:
            partials[i] = lo
            i += 1
        x = hi
    partials[i:] = [x]


class PageRank(Job):
    def configure_args(self, parser):
        parser.add_argument("--iterations", type=_positive_int, default=10,
                            help="power iterations (default 10)")
        parser.add_argument("--damping", type=_probability, default=0.85,
                            help="damping factor d (default 0.85)")

    def prepare(self, inputs):
        nodes = set()
        for path in inputs:
            with _open_text(path) as f:
                for line in f:
                    nodes.update(parse_edge_line(line))
        if not nodes:
            raise ValueError("the input has no nodes")
        return {"nodes": len(nodes)}

    def steps(self):
        iterate = [Step(mapper=self.mapper_distribute, mapper_init=self.mapper_init_mass,
                        mapper_final=self.mapper_final_mass, reducer_init=self.reducer_init_mass,
                        reducer=self.reducer_update)
                   for _ in range(self.options.iterations)]
        iterate[-1].reducer = self.reducer_last
        return [Step(mapper=self.mapper_links, reducer=self.reducer_links)] + iterate

    def partitioner(self, key, num_partitions):
        self._partitions = num_partitions
        tag, value = key
        if tag == MASS:
            return value % num_partitions  # the copy of the dangling mass for partition p
        return zlib.crc32(json.dumps(value).encode()) % num_partitions

    # --- step 1: adjacency lists -------------------------------------------------------------
    def mapper_links(self, _, line):
        nodes = parse_edge_line(line)
        if nodes:
            yield (NODE, nodes[0]), None if len(nodes) == 1 else nodes[1]
        if len(nodes) == 2:
            yield (NODE, nodes[1]), None

    def reducer_links(self, key, targets):
        links = sorted({t for t in targets if t is not None}, key=node_order)
        yield key[1], (1.0 / self.side_data["nodes"], links)

    # --- iterations -------------------------------------------------------------------------
    def mapper_init_mass(self):
        self._mass = []     # exact partial sums of this task's dangling nodes' rank

    def mapper_distribute(self, node, value):
        rank, links = value
        yield (NODE, node), links            # the structure (a tuple, possibly empty)
        if links:
            share = rank / len(links)
            for dst in links:
                yield (NODE, dst), share     # a float
        else:
            exact_add(self._mass, rank)

    def mapper_final_mass(self):
        if self._mass:
            # Every (NODE, ...) pair emitted above went through the partitioner first, so
            # it has told us the reducer count.
            for p in range(self._partitions):
                yield (MASS, p), self._mass

    def reducer_init_mass(self):
        self._dangling = 0.0

    def _new_rank(self, key, values):
        links, shares = (), []
        for v in values:
            if type(v) is float:
                shares.append(v)
            else:
                links = v
        d, n = self.options.damping, self.side_data["nodes"]
        return links, (1.0 - d) / n + d * (math.fsum(shares) + self._dangling / n)

    def reducer_update(self, key, values):
        if key[0] == MASS:  # sorts first: the total before any node
            self._dangling = math.fsum(x for partials in values for x in partials)
            return
        links, rank = self._new_rank(key, values)
        yield key[1], (rank, links)

    def reducer_last(self, key, values):
        if key[0] == MASS:
            self._dangling = math.fsum(x for partials in values for x in partials)
            return
        _, rank = self._new_rank(key, values)
        yield key[1], rank


def make_graph(nodes=50, seed=7):
    """The demo graph's lines (deterministic, shuffled): every node but the last links to
    1..5 others (never itself); node ``nodes - 1`` is dangling but has in-links."""
    rng = random.Random(seed)
    edges = []
    for src in range(nodes - 1):
        for dst in rng.sample([n for n in range(nodes) if n != src], rng.randint(1, 5)):
            edges.append(f"{src} {dst}")
    for src in rng.sample(range(nodes - 1), 3):
        edges.append(f"{src} {nodes - 1}")
    edges = sorted(set(edges))
    rng.shuffle(edges)
    return edges


if __name__ == "__main__":
    PageRank.run()
