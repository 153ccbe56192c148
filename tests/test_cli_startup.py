"""``s2lbench --help`` and ``s2lbench plugins`` stay fast: they import every command module and every plugin
to build the parser, so none of those may import torch, transformers or datasets (seconds, against ~0.3 s for
the whole start). More broadly no module of s2lbench imports a heavy third-party library at import time: they
are imported inside the functions that use them.

Each check runs in a fresh interpreter (this one may have loaded torch for other tests) and reads ``sys.modules``
at exit; nothing is timed here.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from test_import_graph import modules

#: what the command line must start without
NOT_AT_STARTUP = ("torch", "transformers", "datasets")
#: what no module of s2lbench may import at import time
HEAVY = (*NOT_AT_STARTUP, "vllm", "faiss", "matplotlib", "scipy", "sklearn", "sacrebleu", "rouge_score",
         "bert_score", "ray", "submitit", "tokenizers", "accelerate", "peft")


def loaded_after(code: str) -> set[str]:
    """The top-level packages in ``sys.modules`` after a fresh interpreter runs ``code`` (which prints nothing)."""
    report = "import json, sys\nprint(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    done = subprocess.run([sys.executable, "-c", code + report], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.splitlines()[-1]))


@pytest.mark.parametrize("argv", [["--help"], ["plugins"]])
def test_the_command_line_starts_without_torch(argv):
    loaded = loaded_after(
        "import contextlib, io\n"
        "from s2lbench.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        f"        code = main({argv!r})\n"
        "    except SystemExit as e:\n"
        "        code = e.code\n"
        "assert code in (0, None), code\n")
    assert "s2lbench" in loaded and "pluggy" in loaded  # it did build the parser
    heavy = sorted(loaded & set(NOT_AT_STARTUP))
    assert not heavy, f"s2lbench {' '.join(argv)} imported {heavy}"


def test_no_module_of_s2lbench_imports_a_heavy_library_at_import_time():
    names = sorted(modules())
    loaded = loaded_after("import importlib\n" + "".join(f"importlib.import_module({n!r})\n" for n in names))
    heavy = sorted(loaded & set(HEAVY))
    assert not heavy, f"importing s2lbench's modules loaded {heavy}"
