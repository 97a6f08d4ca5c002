"""The control block of a run: per-worker counters and failure reports, in one slot of a
memfd pool that every stage process maps.

Layout: ``WORDS`` int64 words per worker (worker w at w * WORDS), then ``MESSAGE`` bytes
per worker for its failure report. Each worker writes only its own words and message;
the parent reads a worker's part only after it has reaped that worker's process (the
kernel's exit and wait order everything the child wrote before), or for the sink, its
own. So there is no concurrent access and nothing to order: no atomics here.

Words: 0 items done, 1 busy ns, 2 input-wait ns, 3 output-wait ns, 4 current item + 1
(0: none yet), 5 failure time (CLOCK_MONOTONIC ns, system-wide; 0: no failure),
6 length of the report in the message area, 7 nonzero once a generator stage ended
before its input did (its upstream then stops as STOPPED; the parent reads this word
after reaping those upstream processes, which could only see the stage's ends go after
it was written), 8 (the sink's only) nonzero once the run is stopping: the one word
written while stage processes run, by the parent, and polled by external stages'
workers between their 20 ms wait slices (an aligned 8-byte store and load: never torn),
so that each kills and reaps its program before it leaves. The report is JSON: the
exception's type, message and formatted traceback, and the item; an external stage's
worker adds what its program did ("program": "failed" or "died", its exit status).
"""

import json
import time

import numpy as np

from .. import _core

__all__ = ["ControlBlock"]

WORDS = 9
MESSAGE = 16384
ITEMS, BUSY, IN_WAIT, OUT_WAIT, CURRENT, FAILED_AT, REPORT_LEN, ENDED_EARLY, STOPPING = range(9)


class ControlBlock:
    """Counters and failure reports of `workers` workers (the sink is the last one)."""

    def __init__(self, workers):
        self.workers = workers
        self._pool = _core.Pool(1, workers * (WORDS * 8 + MESSAGE))
        self._map()

    def _map(self):
        raw = self._pool.array(0, _core.DTYPE_BYTES, (self._pool.slot_bytes,), True)
        self.words = raw[:self.workers * WORDS * 8].view(np.int64)
        self._messages = raw[self.workers * WORDS * 8:]

    def __getstate__(self):
        return {"workers": self.workers, "pool": self._pool}

    def __setstate__(self, state):
        self.workers = state["workers"]
        self._pool = state["pool"]
        self._map()

    @property
    def nbytes(self):
        return self._pool.mapped_bytes

    def base(self, worker):
        """Index of worker's first word in self.words."""
        return worker * WORDS

    def report_failure(self, worker, item, exception_type, message, traceback_text, **extra):
        """Records worker's failure (the first one it has; later ones are ignored); `extra`
        (JSON values) goes into the report too."""
        b = worker * WORDS
        if self.words[b + FAILED_AT]:
            return
        report = {"type": exception_type, "message": message, "traceback": traceback_text,
                  "item": item, **extra}
        data = json.dumps(report).encode()
        if len(data) > MESSAGE:
            # Keep the end of the traceback: the frame that raised is last.
            report["traceback"] = "...\n" + traceback_text[-(MESSAGE // 2):]
            report["message"] = message[:MESSAGE // 8]
            data = json.dumps(report).encode()[:MESSAGE]
        start = worker * MESSAGE
        self._messages[start:start + len(data)] = np.frombuffer(data, np.uint8)
        self.words[b + REPORT_LEN] = len(data)
        self.words[b + FAILED_AT] = time.monotonic_ns()

    def failure(self, worker):
        """(time ns, report dict) of worker's failure, or None. Read after reaping it."""
        b = worker * WORDS
        at = int(self.words[b + FAILED_AT])
        if not at:
            return None
        length = min(max(int(self.words[b + REPORT_LEN]), 0), MESSAGE)
        start = worker * MESSAGE
        try:
            report = json.loads(bytes(self._messages[start:start + length]).decode())
            if not isinstance(report, dict):
                raise ValueError("not an object")
        except ValueError:
            report = {"type": "ProtocolError", "message": "an unreadable failure report",
                      "traceback": "", "item": None}
        return at, report

    def stop(self):
        """Marks the run as stopping (the parent, before it ends the stage processes)."""
        self.words[(self.workers - 1) * WORDS + STOPPING] = 1

    def stopping(self):
        """Whether the parent is stopping the run (polled by external stages' workers)."""
        return bool(self.words[(self.workers - 1) * WORDS + STOPPING])

    def ended_early(self, worker):
        """Whether worker is a generator stage that ended before its input did."""
        return bool(self.words[worker * WORDS + ENDED_EARLY])

    def current_item(self, worker):
        """The item worker was on last (None before its first)."""
        value = int(self.words[worker * WORDS + CURRENT])
        return value - 1 if value > 0 else None

    def counters(self, worker):
        """(items, busy s, input-wait s, output-wait s) of worker."""
        b = worker * WORDS
        w = self.words
        return (int(w[b + ITEMS]), w[b + BUSY] / 1e9, w[b + IN_WAIT] / 1e9, w[b + OUT_WAIT] / 1e9)

    def close(self):
        self.words = self._messages = None
        self._pool.close()
