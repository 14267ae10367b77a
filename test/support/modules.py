"""Import the formula's custom Salt modules (_modules/, _states/) by path.

The folders are not Python packages (Salt syncs the files one by one), so
tests load them under a unique name to keep `_modules/x.py` and
`_states/x.py` apart.

Every module loaded here gets the real `_utils/` code as `__utils__`
(`"mosquitto_files.atomic_write"` -> the function), the way Salt's loader
packs it: tests run the same file writer and name rules as a minion.
"""
import importlib.util
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]

_UTILS = {}


def _import(kind, name, utils=None):
    modname = f"mosquitto_formula{kind}.{name}"
    if modname in sys.modules:
        return sys.modules[modname]
    spec = importlib.util.spec_from_file_location(modname, ROOT / kind / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    if utils is not None:
        module.__utils__ = utils
    sys.modules[modname] = module
    spec.loader.exec_module(module)
    return module


def utils():
    """`__utils__` as Salt builds it from `_utils/`: "<virtualname>.<function>"
    for every public function each file defines (not what it imports)."""
    if not _UTILS:
        for path in sorted((ROOT / "_utils").glob("*.py")):
            module = _import("_utils", path.stem)
            virtual = module.__virtual__()
            assert virtual == getattr(module, "__virtualname__", path.stem), (path, virtual)
            for attr, value in vars(module).items():
                if (callable(value) and not attr.startswith("_")
                        and getattr(value, "__module__", None) == module.__name__):
                    _UTILS[f"{virtual}.{attr}"] = value
    return _UTILS


def load_util(name):
    """One file of `_utils/` as a module, for code that is no Salt module
    (the tests' and benchmarks' raw MQTT clients)."""
    return _import("_utils", name)


def load(kind, name):
    """kind is "_modules" or "_states"; returns the imported module, with
    the real `__utils__` (see utils())."""
    return _import(kind, name, utils())
