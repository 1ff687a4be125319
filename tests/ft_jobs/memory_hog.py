"""A mapper that takes about 200 MB and then dies of SIGKILL, the way the kernel's
out-of-memory killer ends a process (a test cannot count on the real OOM killer)."""
import os
import signal

from mapreduce import Job


class MemoryHog(Job):
    def mapper_init(self):
        hog = bytearray(200 << 20)
        hog[::4096] = b"x" * len(hog[::4096])  # touch every page: resident, not just mapped
        os.kill(os.getpid(), signal.SIGKILL)

    def mapper(self, _, line):
        yield line, 1
