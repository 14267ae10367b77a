"""Import the formula's custom Salt modules (_modules/, _states/) by path.

The folders are not Python packages (Salt syncs the files one by one), so
tests load them under a unique name to keep `_modules/x.py` and
`_states/x.py` apart.
"""
import importlib.util
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def load(kind, name):
    """kind is "_modules" or "_states"; returns the imported module."""
    modname = f"mosquitto_formula{kind}.{name}"
    if modname in sys.modules:
        return sys.modules[modname]
    spec = importlib.util.spec_from_file_location(modname, ROOT / kind / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[modname] = module
    spec.loader.exec_module(module)
    return module
