"""The Python ports of the question's variants run, and agree with each other.

Run by scripts/test (python3 -m unittest discover -s Tests/python). Tiny sizes: this
checks behaviour, not speed.
"""
import json
import os
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
        before = set(os.listdir("/dev/shm"))
        done = run("--samples", "3", "--rows", "4", "--cols", "5",
                   "--variants", "shared-memory,array-queue", "--json", "-")
        self.assertEqual(done.returncode, 0, done.stderr)
        left = [n for n in set(os.listdir("/dev/shm")) - before if not n.startswith("__KMP")]
        self.assertEqual(left, [])


if __name__ == "__main__":
    unittest.main()
