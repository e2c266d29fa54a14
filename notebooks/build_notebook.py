"""Writes notebooks/orca_analysis.ipynb from the cells below (keeps the notebook diff-able).

    python notebooks/build_notebook.py
"""

import os

import nbformat

CELLS = [
    ("markdown", """# orca-jax run analysis

Training curves per stage, tokens/s and MFU, zero-shot scores after each stage beside the
Orca paper's table, per-task bars and example predictions, for one or more run directories
(local paths or `gs://`). Runs in Colab and locally.

Set `RUN_DIRS` below (or the environment variable `ORCA_RUN_DIRS`, comma-separated)."""),
    ("code", """# Parameters (papermill/nbconvert may override them).
import os
RUN_DIRS = [d for d in os.environ.get("ORCA_RUN_DIRS", "").split(",") if d]
OUTPUT_DIR = os.environ.get("ORCA_ANALYSIS_OUT", "")  # where figures are saved; "" = don't save"""),
    ("code", """# In Colab: install orca-jax from your copy (git URL or a Drive path) and authenticate for gs://.
import importlib.util, sys
ORCA_JAX_SOURCE = os.environ.get("ORCA_JAX_SOURCE", "")  # e.g. "git+https://github.com/<org>/orca-jax"
if "google.colab" in sys.modules:
    if importlib.util.find_spec("orca_jax") is None:
        if not ORCA_JAX_SOURCE:
            raise SystemExit("set ORCA_JAX_SOURCE to a pip-installable location of orca-jax")
        !pip install -q "$ORCA_JAX_SOURCE"
    from google.colab import auth
    auth.authenticate_user()"""),
    ("code", """import matplotlib
from IPython.display import Markdown, display
from orca_jax import analysis

if not RUN_DIRS:
    raise SystemExit("set RUN_DIRS (or ORCA_RUN_DIRS) to one or more run directories")
runs = [analysis.load_run(d) for d in RUN_DIRS]
for run in runs:
    print(run.name, "->", [f"{s.name}: {len(s.metrics)} metric records, evaluated={s.results is not None}"
                           for s in run.stages])
save = (lambda name: os.path.join(OUTPUT_DIR, name)) if OUTPUT_DIR else (lambda name: None)
if OUTPUT_DIR:
    os.makedirs(OUTPUT_DIR, exist_ok=True)"""),
    ("markdown", "## Training curves (loss, learning rate, tokens/s, MFU), stages in sequence"),
    ("code", """fig = analysis.plot_training_curves(runs, path=save("curves.png"))"""),
    ("markdown", "## Zero-shot scores after each stage (accuracy, %)"),
    ("code", """display(Markdown(analysis.score_table(runs)))"""),
    ("markdown", "## Beside the paper's table (last evaluated stage of each run)"),
    ("code", """for run in runs:
    evaluated = [s for s in run.stages if s.results]
    if evaluated:
        display(Markdown(f"### {run.name}/{evaluated[-1].name}\\n\\n" + analysis.paper_comparison(evaluated[-1])))"""),
    ("markdown", "## Per-task accuracy"),
    ("code", """benchmarks = sorted({b for r in runs for s in r.stages if s.results for b in s.results["benchmarks"]})
for bench in benchmarks:
    analysis.plot_task_bars(runs, bench, path=save(f"tasks_{bench}.png"))"""),
    ("markdown", "## Example predictions"),
    ("code", """for run in runs:
    for stage in run.stages:
        if stage.predictions:
            rows = analysis.example_predictions(stage, per_task=2)
            lines = ["| task | target | extracted | ok | output |", "|---|---|---|---|---|"]
            lines += [f"| {r['task']} | {r['target']} | {r['extracted']} | {'✓' if r['correct'] else '✗'} | "
                      + str(r['output']).replace('|', '/').replace(chr(10), ' ')[:160] + " |" for r in rows]
            display(Markdown(f"### {run.name}/{stage.name}\\n\\n" + "\\n".join(lines)))"""),
]


def build() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["colab"] = {"provenance": []}
    make = {"markdown": nbformat.v4.new_markdown_cell, "code": nbformat.v4.new_code_cell}
    nb.cells = [make[kind](source) for kind, source in CELLS]
    return nb


if __name__ == "__main__":
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "orca_analysis.ipynb")
    nbformat.write(build(), path)
    print("wrote", path)
