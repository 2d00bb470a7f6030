"""Make `import tame` work from a plain checkout (the repository root is the package); shared fixtures."""
import importlib.util
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

if "tame" not in sys.modules:
    spec = importlib.util.spec_from_file_location(
        "tame", ROOT / "__init__.py", submodule_search_locations=[str(ROOT)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["tame"] = module
    spec.loader.exec_module(module)


@pytest.fixture
def cpu_without_model_files(tmp_path, monkeypatch):
    """An empty model folder (no weights unless a test puts some there), the CPU, one thread."""
    monkeypatch.setenv("TAME_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("TAME_DEVICE", "cpu")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
