"""The Python ports of the question's variants run, and agree with each other.

Run by scripts/test (python3 -m unittest discover -s Tests/python). Tiny sizes: this
checks behaviour, not speed.
"""
import json
import os
import re
import subprocess
import sys
import unittest

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "Benchmarks", "python", "seed_variants.py")
VARIANTS = ["serial", "mp-queue", "threads-pipeline", "array-queue", "shared-memory",
            "pool-arrays", "pool-sums", "threads-per-sample"]


def run(*args):
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True, timeout=300)


class SeedVariantsTest(unittest.TestCase):
    def test_every_port_runs_and_the_checksums_agree(self):
        samples, rows, cols = 7, 30, 20
        done = run("--samples", str(samples), "--rows", str(rows), "--cols", str(cols),
                   "--buffer", "2", "--workers", "3", "--json", "-")
        self.assertEqual(done.returncode, 0, done.stderr)
        report = json.loads(done.stdout)
        names = [r["variant"] for r in report["rows"]]
        self.assertEqual(names, VARIANTS)
        # The checksum rule, computed here independently: sample i from default_rng([2016, i]),
        # h, g, f, per-sample sums added in sample order.
        expected = 0.0
        for i in range(samples):
            x = np.random.default_rng([2016, i]).random((rows, cols))
            expected += float(((x * x) * 3 + 1.0).sum())
        for row in report["rows"]:
            self.assertEqual(row["samples"], samples)
            self.assertGreater(row["seconds"], 0)
            self.assertEqual(row["checksum"], expected, row["variant"])

    def test_bad_arguments_are_refused_with_a_message(self):
        for args in (["--samples", "0"], ["--variants", "serial,nope"]):
            done = run(*args)
            self.assertEqual(done.returncode, 2)
            self.assertIn("error", done.stderr)

    def test_no_shared_memory_is_left_behind(self):
        # Every variant that uses processes, so every kind of entry they could leave counts.
        before = set(os.listdir("/dev/shm"))
        done = run("--samples", "3", "--rows", "4", "--cols", "5",
                   "--variants", "mp-queue,array-queue,shared-memory,pool-arrays,pool-sums", "--json", "-")
        self.assertEqual(done.returncode, 0, done.stderr)
        # Every new entry counts, whatever its name, except one that names a process still
        # running: the script and all its processes have ended by now, so such an entry is
        # another program's, made while this test ran (libomp registers each process as
        # __KMP_REGISTERED_LIB_<pid>_<uid>), and not left behind by anyone yet.
        left = sorted(n for n in set(os.listdir("/dev/shm")) - before if not owner_is_running(n))
        self.assertEqual(left, [])


def owner_is_running(name):
    """Whether `name` is one of the per-process /dev/shm names (libomp's registration, the
    Swift tests' rings) of a process that is still running."""
    match = re.match(r"(?:__KMP_REGISTERED_LIB_|conveyor-test-)(\d+)", name)
    if match is None:
        return False
    try:
        os.kill(int(match.group(1)), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


if __name__ == "__main__":
    unittest.main()
