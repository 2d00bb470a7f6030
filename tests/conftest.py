"""Make `import tame` work from a plain checkout: the repository root is the package."""
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

if "tame" not in sys.modules:
    spec = importlib.util.spec_from_file_location(
        "tame", ROOT / "__init__.py", submodule_search_locations=[str(ROOT)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["tame"] = module
    spec.loader.exec_module(module)
