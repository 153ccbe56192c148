"""Run program-of-thought answers the way MAmmoTH does, but never in-process.

Each program runs in a fresh ``python -I`` subprocess inside a scratch directory, with a wall-clock timeout,
CPU/memory/file-size/process limits (``resource``), a minimal environment, and no network: on Linux the child
first enters a new network namespace when the kernel allows it, and in any case its ``socket`` module is
disabled before the program runs.
"""

from __future__ import annotations

import ctypes
import logging
import os
import resource
import subprocess
import sys
import tempfile
from dataclasses import dataclass

log = logging.getLogger(__name__)

_CLONE_NEWNET = 0x40000000
_PRELUDE = (
    "import socket as _s\n"
    "def _no_network(*a, **k):\n"
    "    raise OSError('network access is disabled in the s2lbench sandbox')\n"
    "_s.socket = _no_network\n_s.create_connection = _no_network\n_s.getaddrinfo = _no_network\n"
    "del _s, _no_network\n"
)


@dataclass(frozen=True)
class SandboxLimits:
    timeout_s: float = 5.0
    memory_bytes: int = 1 << 30
    cpu_seconds: int = 10
    file_bytes: int = 1 << 20
    max_output_chars: int = 10_000


@dataclass(frozen=True)
class ProgramResult:
    stdout: str
    ok: bool
    error: str = ""


def _limit_child(limits: SandboxLimits):
    def apply() -> None:
        os.setsid()
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        try:  # a private network namespace has no interfaces; allowed for root or with user namespaces
            ctypes.CDLL(None, use_errno=True).unshare(_CLONE_NEWNET)
        except Exception:
            pass

    return apply


def program_from_output(output: str) -> str | None:
    """MAmmoTH's rule: an output containing ``print(`` is a program; cut it at any "### Instruction"."""
    if "print(" not in output:
        return None
    return output.split("### Instruction")[0]


def run_program(code: str, limits: SandboxLimits = SandboxLimits()) -> ProgramResult:
    """Execute ``code`` in a sandboxed subprocess and return its stdout (stripped)."""
    with tempfile.TemporaryDirectory(prefix="s2lbench-pot-") as scratch:
        script = os.path.join(scratch, "program.py")
        with open(script, "w", encoding="utf-8") as f:
            f.write(_PRELUDE + code)
        env = {"PATH": "/usr/bin:/bin", "HOME": scratch, "TMPDIR": scratch, "PYTHONHASHSEED": "0",
               "OMP_NUM_THREADS": "1"}
        try:
            proc = subprocess.run([sys.executable, "-I", script], cwd=scratch, env=env, capture_output=True,
                                  text=True, timeout=limits.timeout_s, stdin=subprocess.DEVNULL,
                                  preexec_fn=_limit_child(limits))
        except subprocess.TimeoutExpired:
            return ProgramResult("", False, f"timed out after {limits.timeout_s:g} s")
        stdout = proc.stdout[: limits.max_output_chars].strip()
        if proc.returncode != 0:
            last = proc.stderr.strip().splitlines()[-1:] or [f"exit status {proc.returncode}"]
            return ProgramResult(stdout, False, last[0][:300])
        return ProgramResult(stdout, True)


def pot_to_text(output: str, limits: SandboxLimits = SandboxLimits()) -> str:
    """Turn a program-of-thought output into "The answer is <stdout>" (as MAmmoTH does); other outputs pass through."""
    code = program_from_output(output)
    if code is None:
        return output
    result = run_program(code, limits)
    if not result.ok:
        log.debug("program failed: %s", result.error)
    return f"The answer is {result.stdout}" if result.stdout else ""
