"""Interpreters of other platforms present on this machine, for the tests
that check the formula's code against them."""
import pathlib

# Python 3.9, the python3 of Enterprise Linux 9 (pyenv's build here).
PYTHON39 = pathlib.Path("/root/.pyenv/versions/3.9.18/bin/python3.9")
