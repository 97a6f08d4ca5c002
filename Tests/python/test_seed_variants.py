"""The Python ports of the question's variants run, and agree with each other.

Run by scripts/test (python3 -m unittest discover -s Tests/python). Tiny sizes: this
checks behaviour, not speed.
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import unittest

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "Benchmarks", "python", "seed_variants.py")
VARIANTS = ["serial", "mp-queue", "threads-pipeline", "array-queue", "shared-memory", "conveyor-ring",
            "conveyor-dropin", "conveyor-pipeline", "conveyor-kernels", "iceoryx2",
            "pool-arrays", "pool-sums", "threads-per-sample"]
# The conveyor-* ports run only where the conveyor package is importable (the virtualenv
# of scripts/test-python), the iceoryx2 peer only where iceoryx2 is; elsewhere each is
# skipped with a note.
HAVE_CONVEYOR = subprocess.run([sys.executable, "-c", "import conveyor"], capture_output=True).returncode == 0
HAVE_ICEORYX2 = subprocess.run([sys.executable, "-c", "import iceoryx2"], capture_output=True).returncode == 0


def available(variant):
    if variant.startswith("conveyor-"):
        return HAVE_CONVEYOR
    return HAVE_ICEORYX2 if variant == "iceoryx2" else True


EXPECTED = [v for v in VARIANTS if available(v)]


def run(*args, env=None):
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True, timeout=300, env=env)


class SeedVariantsTest(unittest.TestCase):
    def test_every_port_runs_and_the_checksums_agree(self):
        samples, rows, cols = 7, 30, 20
        done = run("--samples", str(samples), "--rows", str(rows), "--cols", str(cols),
                   "--buffer", "2", "--workers", "3", "--json", "-")
        self.assertEqual(done.returncode, 0, done.stderr)
        report = json.loads(done.stdout)
        names = [r["variant"] for r in report["rows"]]
        self.assertEqual(names, EXPECTED)
        self.assertEqual([s["variant"] for s in report["skipped"]], [v for v in VARIANTS if not available(v)])
        # The checksum rule, computed here independently: sample i from default_rng([2016, i]),
        # h, g, f, per-sample sums added in sample order.
        expected = 0.0
        for i in range(samples):
            x = np.random.default_rng([2016, i]).random((rows, cols))
            expected += float(((x * x) * 3 + 1.0).sum())
        # conveyor-kernels computes on Conveyor's own generator and sum (the Swift rows' data).
        kernels = None
        if HAVE_CONVEYOR:
            import conveyor
            kernels = 0.0
            for i in range(samples):
                x = np.empty((rows, cols))
                conveyor.fill_uniform(x, 2016, i)
                kernels += conveyor.sum(conveyor.apply(x, [("square",), ("mul", 3.0), ("add", 1.0)]))
        for row in report["rows"]:
            self.assertEqual(row["samples"], samples)
            self.assertGreater(row["seconds"], 0)
            want = kernels if row["variant"] == "conveyor-kernels" else expected
            self.assertEqual(row["checksum"], want, row["variant"])

    def test_bad_arguments_are_refused_with_a_message(self):
        for args in (["--samples", "0"], ["--variants", "serial,nope"]):
            done = run(*args)
            self.assertEqual(done.returncode, 2)
            self.assertIn("error", done.stderr)

    def test_no_shared_memory_is_left_behind(self):
        # Every variant that uses processes, so every kind of entry they could leave counts.
        before = set(os.listdir("/dev/shm"))
        done = run("--samples", "3", "--rows", "4", "--cols", "5",
                   "--variants", ",".join(v for v in ["mp-queue", "array-queue", "shared-memory", "conveyor-ring",
                                                      "conveyor-dropin", "conveyor-pipeline", "conveyor-kernels",
                                                      "pool-arrays", "pool-sums"] if available(v)),
                   "--json", "-")
        self.assertEqual(done.returncode, 0, done.stderr)
        # Every new entry counts, whatever its name, except one that names a process still
        # running: the script and all its processes have ended by now, so such an entry is
        # another program's, made while this test ran (libomp registers each process as
        # __KMP_REGISTERED_LIB_<pid>_<uid>), and not left behind by anyone yet.
        left = sorted(n for n in set(os.listdir("/dev/shm")) - before if not owner_is_running(n))
        self.assertEqual(left, [])

    def test_conveyor_ring_is_skipped_with_a_note_when_conveyor_cannot_be_imported(self):
        with tempfile.TemporaryDirectory() as shadow:
            os.mkdir(os.path.join(shadow, "conveyor"))
            with open(os.path.join(shadow, "conveyor", "__init__.py"), "w") as f:
                f.write("raise ImportError('shadowed by the test')\n")
            env = dict(os.environ, PYTHONPATH=shadow)
            done = run("--samples", "2", "--rows", "3", "--cols", "4", "--variants", "serial,conveyor-ring",
                       "--json", "-", env=env)
        self.assertEqual(done.returncode, 0, done.stderr)
        report = json.loads(done.stdout)
        self.assertEqual([r["variant"] for r in report["rows"]], ["serial"])
        self.assertEqual([s["variant"] for s in report["skipped"]], ["conveyor-ring"])
        self.assertIn("shadowed by the test", report["skipped"][0]["reason"])
        self.assertIn("conveyor-ring", done.stderr)
        self.assertIn("skipped", done.stderr)

    @unittest.skipUnless(HAVE_CONVEYOR, "the conveyor package is not importable here")
    def test_conveyor_ring_agrees_with_serial_with_one_slot_per_edge(self):
        done = run("--samples", "5", "--rows", "6", "--cols", "7", "--buffer", "1",
                   "--variants", "serial,conveyor-ring", "--json", "-")
        self.assertEqual(done.returncode, 0, done.stderr)
        serial, ring = json.loads(done.stdout)["rows"]
        self.assertEqual(ring["variant"], "conveyor-ring")
        self.assertEqual(ring["checksum"], serial["checksum"])


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
