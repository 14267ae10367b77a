"""Unit suite hooks.

Salt's deferred stderr log handler would print every WARNING a module logs
(the CA minion's refusals) as a "Logging error" at interpreter exit when
this suite runs alone; the fleet suite's hook drops that handler.
"""
from test.hosts.conftest import pytest_unconfigure  # noqa: F401
