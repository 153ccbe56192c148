"""Program-of-thought answers run in a sandboxed subprocess: timeout, no network, limits, scratch directory."""

from __future__ import annotations

import os

from s2lbench.evaluation.grading.sandbox import SandboxLimits, pot_to_text, program_from_output, run_program

FAST = SandboxLimits(timeout_s=3.0)


def test_program_output_becomes_the_answer():
    output = "def solution():\n    eggs = 16 - 3 - 4\n    return eggs * 2\nprint(solution())\n### Instruction: next"
    assert program_from_output(output).rstrip().endswith("print(solution())")
    assert pot_to_text(output, FAST) == "The answer is 18"


def test_non_program_output_passes_through():
    assert pot_to_text("The answer is 5", FAST) == "The answer is 5"


def test_failing_program_gives_no_answer():
    assert pot_to_text("print(1/0)", FAST) == "The answer is "  # v1: nothing kept from a program that raises


def test_timeout():
    result = run_program("while True:\n    pass\n", SandboxLimits(timeout_s=1.0))
    assert not result.ok and "timed out" in result.error


def test_no_network():
    result = run_program("import socket\nsocket.create_connection(('127.0.0.1', 9))\nprint('connected')", FAST)
    assert not result.ok and "connected" not in result.stdout


def test_runs_in_a_scratch_directory_that_is_removed(tmp_path):
    result = run_program("import os\nopen('x.txt', 'w').write('hi')\nprint(os.getcwd())", FAST)
    assert result.ok and result.stdout != os.getcwd()
    assert not os.path.exists(result.stdout)


def test_memory_limit():
    result = run_program("x = bytearray(4 << 30)\nprint('allocated')", SandboxLimits(timeout_s=5, memory_bytes=512 << 20))
    assert not result.ok and "allocated" not in result.stdout


def test_not_in_process():
    result = run_program("import os\nprint(os.getpid())", FAST)
    assert result.ok and int(result.stdout) != os.getpid()


def test_programs_run_in_mammoths_environment():
    # v1 execs the program inside run_it() in a namespace where math (and sqrt, json, re, ...) are imported
    assert pot_to_text("print(math.floor(1400.2))", FAST) == "The answer is 1400"
    assert pot_to_text("print(sqrt(16) + len(json.dumps([1])))", FAST) == "The answer is 7.0"
    code = "def fact(n):\n    return 1 if n < 2 else n * fact(n - 1)\nprint(fact(5))"
    assert pot_to_text(code, FAST) == "The answer is 120"  # nested recursion works inside run_it()
    # __name__ is v1's module name, so a __main__ guard does not run there (s2lbench grading sets "__main__")
    guarded = "if __name__ == '__main__':\n    print(3)"
    assert pot_to_text(guarded, FAST) == "The answer is "
    assert pot_to_text(guarded, FAST, module_name="__main__") == "The answer is 3"


def test_fences_are_stripped_unless_asked_not_to():
    fenced = "Here is the program:\n```python\nx = 6\nprint(x * 7)\n```\nDone."
    assert pot_to_text(fenced, FAST) == "The answer is 42"
    assert pot_to_text(fenced, FAST, strip_fences=False) == "The answer is "  # a SyntaxError in v1's wrapper


def test_a_program_that_raises_after_printing_keeps_nothing():
    result = run_program("print(5)\nraise ValueError('late')", FAST)
    assert not result.ok and "ValueError" in result.error
    assert pot_to_text("print(5)\nraise ValueError('late')", FAST) == "The answer is "


def test_no_writes_outside_the_scratch_dir_no_subprocess_no_ctypes(tmp_path):
    target = tmp_path / "escaped.txt"
    for code in (f"open({str(target)!r}, 'w').write('x')\nprint(1)",
                 f"import os\nos.makedirs({str(tmp_path / 'd')!r})\nprint(1)",
                 f"import shutil\nshutil.rmtree({str(tmp_path)!r})\nprint(1)",
                 "import subprocess\nsubprocess.run(['true'])\nprint(1)",
                 "import os\nos.system('true')\nprint(1)",
                 "import ctypes\nctypes.CDLL(None)\nprint(1)"):
        result = run_program(code, FAST)
        assert not result.ok and "PermissionError" in result.error, code
    assert not target.exists() and not (tmp_path / "d").exists() and tmp_path.exists()
    assert run_program("open('inside.txt', 'w').write('ok')\nprint(open('inside.txt').read())", FAST).stdout == "ok"
