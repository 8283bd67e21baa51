"""Helpers shared by the test modules: traced runs, reference workloads, long runs, the tiny model.

Imported as ``from helpers.trace import ...``; pytest puts ``tests/`` on the
import path (``pythonpath`` in pyproject.toml).
"""
