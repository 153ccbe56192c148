"""Program-of-thought answers run in a sandboxed subprocess: timeout, no network, limits, scratch directory."""

from __future__ import annotations

import os

from s2lbench.grading.sandbox import SandboxLimits, pot_to_text, program_from_output, run_program

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
