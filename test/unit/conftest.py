"""Unit suite hooks.

Salt's deferred stderr log handler would print every WARNING a module logs
(the CA minion's refusals) as a "Logging error" at interpreter exit when
this suite runs alone: drop it (test/support/saltlog.py).
"""
from test.support import saltlog


def pytest_unconfigure(config):
    saltlog.drop_salt_temp_handler()
