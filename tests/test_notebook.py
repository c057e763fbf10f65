"""notebooks/quickstart.ipynb is stored without outputs and runs top to bottom without errors."""

from __future__ import annotations

import json
import os
import sys

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

from tests.conftest import optimised_env

NOTEBOOK = os.path.join(os.path.dirname(__file__), os.pardir, "notebooks", "quickstart.ipynb")
KERNEL = "s2s-jax-test"


def read_notebook() -> nbformat.NotebookNode:
    with open(NOTEBOOK, encoding="utf-8") as f:
        return nbformat.read(f, as_version=4)


def test_notebook_is_stored_without_outputs():
    nb = read_notebook()
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.outputs == [] and c.execution_count is None for c in code)


def test_notebook_uses_only_the_package_namespace():
    code = "\n".join(c.source for c in read_notebook().cells if c.cell_type == "code")
    assert "import s2s_jax as s2s" in code
    assert "from s2s_jax" not in code and "s2s_jax." not in code


def kernel_running_this_python(tmp_path) -> KernelManager:
    """A kernel started with this interpreter (the project's virtual environment), whatever
    kernels the machine has registered."""
    spec_dir = tmp_path / "kernels" / KERNEL
    spec_dir.mkdir(parents=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "s2s_jax test", "language": "python"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")
    specs = KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")], ensure_native_kernel=False)
    return KernelManager(kernel_name=KERNEL, kernel_spec_manager=specs)


def test_notebook_runs_without_errors(tmp_path):
    nb = read_notebook()
    work = tmp_path / "cwd"
    work.mkdir()
    client = NotebookClient(nb, km=kernel_running_this_python(tmp_path), timeout=300,
                            resources={"metadata": {"path": str(work)}})
    try:
        client.execute(env=optimised_env())  # raises CellExecutionError, naming the cell, on the first error
    except Exception as e:
        pytest.fail(f"the notebook failed: {e}")
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code)
    texts = "".join(o.get("text", "") for c in code for o in c.outputs if o.output_type == "stream")
    assert "parameters identical: True" in texts
    assert any("image/png" in o.get("data", {}) for c in code for o in c.outputs)  # the heatmap is displayed
    assert os.path.isdir(work / "runs" / "notebook" / "checkpoints")
