"""The notebooks run top to bottom, headless, on the simulated provider: any cell error fails.

Each runs in a fresh kernel started from this interpreter (a kernelspec written to a temporary
JUPYTER_PATH), so the notebook sees the same installed package the tests do, whatever kernels
the machine has registered.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="pip install 'llm-routing[notebook]'")
nbclient = pytest.importorskip("nbclient", reason="pip install 'llm-routing[notebook]'")
pytest.importorskip("ipykernel", reason="pip install 'llm-routing[notebook]'")
pytest.importorskip("matplotlib", reason="pip install 'llm-routing[notebook]'")
pytest.importorskip("pandas", reason="pip install 'llm-routing[notebook]'")

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
KERNEL = "llm-routing-tests"


@pytest.fixture(scope="module")
def kernel_name(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A kernelspec for the current interpreter, found ahead of any registered elsewhere."""
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "llm_routing tests",
                "language": "python",
            }
        )
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_PATH", str(root))
        # The kernel's inline matplotlib backend is headless; a MPLBACKEND would override it.
        patch.delenv("MPLBACKEND", raising=False)
        yield KERNEL


def execute(name: str, kernel_name: str):
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        kernel_name=kernel_name,
        timeout=120,
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    return notebook


def outputs(notebook) -> str:
    """All text the notebook printed or displayed, for checking what a reader sees."""
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts.append(output.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


@pytest.mark.slow
def test_quickstart_notebook_runs_and_shows_fallbacks_stats_cost_and_a_plot(kernel_name):
    notebook = execute("quickstart.ipynb", kernel_name)
    text = outputs(notebook)
    assert "OpenAIRateLimitError" in text  # the plain client's burst
    assert "rate_limit_fallbacks" in text
    assert "context_fallbacks" in text
    assert "openai:gpt-4.1-mini" in text  # the report went to the large-context model
    assert "429s the simulator sent: 0" in text
    displayed = [
        output.get("data", {}) for cell in notebook.cells for output in cell.get("outputs", [])
    ]
    assert any("image/png" in data for data in displayed)
    assert any("<strong>CostTracker</strong>" in data.get("text/html", "") for data in displayed)


@pytest.mark.slow
def test_langgraph_notebook_runs_and_falls_back_between_agent_steps(kernel_name):
    notebook = execute("langgraph_agent.ipynb", kernel_name)
    text = outputs(notebook)
    assert "served by openai:gpt-4o-mini" in text
    assert "skipped: openai:gpt-4o-mini (quota)" in text
    assert "'quota_fallbacks': 1" in text


@pytest.mark.parametrize("name", ["quickstart.ipynb", "langgraph_agent.ipynb"])
def test_notebook_is_committed_without_outputs(name):
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code
    assert all(not cell.outputs and cell.execution_count is None for cell in code)
