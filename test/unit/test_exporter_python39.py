"""The exporter runs on the host's python3: 3.9 on Rocky/RHEL 9 (3.11 on
Debian 12, 3.13 on Debian 13). Every Python file the exporter host runs
must parse as Python 3.9. The exporter is one file (its libraries come from
the distribution or PyPI); the list below is every *.py the formula ships
to a host, so a second one added later is checked too.

ast's feature_version catches 3.10+ grammar (match, parenthesized context
managers, except*, ...). It does not catch a runtime `X | Y` annotation or a
newer stdlib API: those are checked by the test below and, for real, by
test/render/test_exporter_venv_pip.py, which runs the exporter under
Python 3.9."""
import ast
import pathlib
import re

import pytest

from test.support.pythons import PYTHON39

ROOT = pathlib.Path(__file__).resolve().parents[2]
HOST_FILES = sorted((ROOT / "mosquitto" / "files").rglob("*.py"))


def test_the_exporter_is_among_the_host_files():
    assert ROOT / "mosquitto" / "files" / "default" / "mosquitto_exporter.py" in HOST_FILES


@pytest.mark.parametrize("path", HOST_FILES, ids=lambda p: p.name)
def test_parses_as_python_3_9(path):
    ast.parse(path.read_text(), filename=str(path), feature_version=(3, 9))


# Names that exist only from 3.10 on (stdlib functions, methods, modules).
NEWER_THAN_39 = re.compile(
    r"\b(?:zip\([^)]*strict=|tomllib|datetime\.UTC|ExceptionGroup|TaskGroup|"
    r"typing\.(?:Self|TypeAlias|ParamSpec|Concatenate|TypeGuard)|"
    r"itertools\.pairwise|bisect\.\w+\([^)]*key=|aiter\(|anext\(|\.bit_count\(|"
    r"inspect\.get_annotations|dataclass\([^)]*(?:slots|kw_only)=)")


@pytest.mark.parametrize("path", HOST_FILES, ids=lambda p: p.name)
def test_no_3_10_runtime_annotations_or_apis(path):
    tree = ast.parse(path.read_text(), feature_version=(3, 9))
    # `from __future__ import annotations` makes annotations strings; without
    # it an `int | None` annotation is evaluated at import and fails on 3.9.
    lazy = any(isinstance(node, ast.ImportFrom) and node.module == "__future__"
               and any(a.name == "annotations" for a in node.names) for node in tree.body)
    unions = [node.lineno for node in ast.walk(tree)
              for annotation in _annotations(node)
              if any(isinstance(n, ast.BinOp) and isinstance(n.op, ast.BitOr) for n in ast.walk(annotation))]
    assert lazy or not unions, f"{path.name}: X | Y annotations evaluated on 3.9 at lines {unions}"
    newer = [m.group() for m in NEWER_THAN_39.finditer(path.read_text())]
    assert not newer, f"{path.name}: newer than Python 3.9: {newer}"


def _annotations(node):
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        arguments = node.args
        every = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs,
                 arguments.vararg, arguments.kwarg]
        yield from (a.annotation for a in every if a is not None and a.annotation is not None)
        if node.returns is not None:
            yield node.returns
    elif isinstance(node, ast.AnnAssign):
        yield node.annotation



@pytest.mark.skipif(not PYTHON39.exists(), reason="no Python 3.9 interpreter (pyenv 3.9.18) on this machine")
@pytest.mark.parametrize("path", HOST_FILES, ids=lambda p: p.name)
def test_compiles_with_a_real_python_3_9(path):
    """What ast's feature_version lets through (a parenthesized multi-item
    `with`, for one) the 3.9 compiler refuses."""
    import subprocess  # pylint: disable=import-outside-toplevel

    got = subprocess.run([str(PYTHON39), "-c", "import sys; compile(open(sys.argv[1]).read(), sys.argv[1], 'exec')",
                          str(path)], capture_output=True, text=True, check=False)
    assert got.returncode == 0, got.stderr
