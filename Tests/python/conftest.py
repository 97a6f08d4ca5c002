"""Fixtures of the conveyor pytest suite: every test is checked for what it leaves behind.

- /dev/shm: a snapshot before each test, and after it every new entry this run could have
  made must be gone: names with this run's prefix (support.SHM_PREFIX: the tests' rings and
  garbage files, also those a C or Swift peer created) and libomp's registration files
  __KMP_REGISTERED_LIB_<pid>_* of processes the tests started. Other processes on the
  machine create and remove entries meanwhile; those are not counted. What is found is
  removed (so one failure does not cascade) and fails the test, unless the test failed
  already (its traceback keeps its rings alive).
- children: processes the test started and did not reap are killed, reaped, and fail it.
"""
import os

import pytest

import conveyor  # noqa: F401  (fail loudly, before any test, if the package is missing)

import support


def _ours(name, pids):
    if name.startswith(support.SHM_PREFIX):
        return True
    match = support.KMP_NAME.match(name)
    return match is not None and int(match.group(1)) in pids


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.conveyor_call_failed = report.failed


@pytest.fixture(autouse=True)
def nothing_left_in_dev_shm(request):
    before = set(os.listdir("/dev/shm"))
    yield
    left = sorted(n for n in set(os.listdir("/dev/shm")) - before if _ours(n, support.STARTED_PIDS))
    for name in left:
        try:
            os.unlink("/dev/shm/" + name)
        except FileNotFoundError:
            pass
    # A test that failed keeps its rings alive in its traceback: its failure says enough.
    if left and not getattr(request.node, "conveyor_call_failed", False):
        pytest.fail(f"left in /dev/shm: {left}", pytrace=False)


@pytest.fixture
def children():
    """A support.Children for the test; whatever it did not reap fails it."""
    registry = support.Children()
    yield registry
    stray = registry.cleanup()
    if stray:
        pytest.fail(f"children still running at the end of the test (killed): {stray}", pytrace=False)


@pytest.fixture
def threads_restored():
    """Restores conveyor's process-wide thread count after a test that changes it."""
    saved = conveyor.get_threads()
    yield
    conveyor.set_threads(saved)


def pytest_sessionfinish(session, exitstatus):
    left = sorted(n for n in os.listdir("/dev/shm") if n.startswith(support.SHM_PREFIX))
    if left:
        print(f"\nconveyor tests: left in /dev/shm at the end of the session: {left}")
        session.exitstatus = 1
