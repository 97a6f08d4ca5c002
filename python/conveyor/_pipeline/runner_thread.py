"""A stage worker run as a thread of the parent (the run's own process) instead of a
process of its own: what a segment's link source needs, since only the parent may call
MPI (a forked child must never). Like Swift's ``inRunnerProcess`` workers.

RunnerThread looks to Results (run.py) like the multiprocessing.Process it uses for the
others: ``exitcode`` (None while running, then the worker's status: 0, FAILED, STOPPED),
``sentinel`` (a pipe's read end that becomes readable when the thread ends, for
multiprocessing.connection.wait), ``kill()`` (asks the worker to stop: it looks every
slice), ``join()``, ``close()``, ``pid`` (None: there is nothing to signal). Its counters
and failure report go to the control block as a process's do; the parent reads them after
join(), which orders them.
"""

import os
import threading

__all__ = ["RunnerThread"]


class RunnerThread:
    """Worker (n, k) of `transport` in a thread; start() runs it."""

    pid = None

    def __init__(self, transport, n, k, worker, name):
        self.name = name
        self.stop = threading.Event()   # kill() sets it; the worker polls it
        self.exitcode = None
        self.error = None               # the exception that ended it, if any (for the driver)
        self._read, self._write = os.pipe()
        self._args = (transport, n, k, worker)
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)

    @property
    def sentinel(self):
        return self._read

    def start(self):
        self._thread.start()

    def _main(self):
        from .worker import FAILED, Worker
        transport, n, k, worker = self._args
        try:
            w = Worker(transport, n, k, worker)
            w.runner = self
            code = w.run()
        except BaseException as error:  # noqa: B902 - a worker that could not even start
            self.error = error
            code = FAILED
        self.exitcode = code
        os.close(self._write)
        self._write = None

    def kill(self):
        self.stop.set()

    def join(self, timeout=None):
        if self._thread.ident is None:  # never started: nothing to wait for
            if self.exitcode is None:
                self.exitcode = -9
            return
        self._thread.join(timeout)

    def close(self):
        for fd in (self._read, self._write):
            if fd is not None:
                os.close(fd)
        self._read = self._write = None
