"""Helpers of the pipeline tests (test_pipeline*.py, test_dropin.py): what a run may
leave behind, a guard that turns a hang into a failure, and scripts run in subprocesses."""
