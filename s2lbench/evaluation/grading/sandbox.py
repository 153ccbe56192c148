"""Run program-of-thought answers the way MAmmoTH v1 does, but never in-process.

MAmmoTH v1 (``utils.CodeExecutor``) indents the program under ``def run_it():``, appends ``run_it()``, and
``exec``s it in its ``utils`` module's namespace, where ``json``, ``re``, ``math``, ``sqrt``,
``multiprocessing``, ``threading`` and ``os`` are imported and ``__name__`` is ``"utils"``; stdout is
captured and kept only when the program finishes without an exception within 5 s.

We reproduce that environment (``MAMMOTH_NAMESPACE``) in a fresh ``python -I`` subprocess inside a scratch
directory, with a wall-clock timeout, CPU/memory/file-size limits (``resource``), a minimal environment and
no network: the child enters a new network namespace where the kernel allows it, and in any case an audit
hook refuses sockets, subprocesses, ``ctypes`` and any write outside the scratch directory.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import re
import resource
import subprocess
import sys
import tempfile
from dataclasses import dataclass

log = logging.getLogger(__name__)

_CLONE_NEWNET = 0x40000000
#: what v1's utils module has imported when it execs a program (torch is left out: importing it per program
#: costs seconds, and no MathInstruct program uses it)
MAMMOTH_NAMESPACE = ("json", "re", "math", "multiprocessing", "threading", "os")

# Runs in the child before the program: an audit hook (cannot be removed once added) that keeps the program
# inside its scratch directory and off the network, then v1's wrapper around the program.
_CHILD = r'''
import os, sys
_SCRATCH = os.path.realpath(os.getcwd())
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_BLOCKED = ("socket.", "subprocess.", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
            "os.forkpty", "ctypes.", "os.kill", "os.killpg", "pty.", "webbrowser.", "urllib.")
_PATH_EVENTS = {"os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.link",
                "os.symlink", "os.truncate", "os.utime", "shutil.rmtree", "shutil.copyfile", "shutil.move",
                "os.chflags", "os.lchflags", "os.setxattr", "os.removexattr", "os.mkfifo", "os.mknod"}

def _inside(path):
    if isinstance(path, int):
        return True
    try:
        real = os.path.realpath(os.fsdecode(path))
    except Exception:
        return False
    return real == _SCRATCH or real.startswith(_SCRATCH + os.sep)

def _guard(event, args):
    if event.startswith(_BLOCKED):
        raise PermissionError(f"{event} is not allowed in the s2lbench sandbox")
    if event == "open":
        path, mode, flags = args
        writing = (mode is not None and any(c in str(mode) for c in "wax+")) or (
            mode is None and isinstance(flags, int) and flags & _WRITE_FLAGS)
        if writing and not _inside(path):
            raise PermissionError(f"writing {path!r} outside the sandbox's scratch directory")
    elif event in _PATH_EVENTS:
        for arg in args[:2]:
            if isinstance(arg, (str, bytes, os.PathLike)) and not _inside(arg):
                raise PermissionError(f"{event} on {arg!r} outside the sandbox's scratch directory")

sys.addaudithook(_guard)

import io, json, contextlib
with open("program.py", encoding="utf-8") as _f:
    _code = _f.read()
_settings = json.loads(sys.argv[1])
_namespace = {"__name__": _settings["module_name"], "__builtins__": __builtins__}
for _name in _settings["modules"]:
    _namespace[_name] = __import__(_name)
import math as _math
_namespace["sqrt"] = _math.sqrt
_wrapped = "def run_it():\n" + "".join("  " + line + "\n" for line in _code.split("\n")) + "run_it()"
_buffer = io.StringIO()
_ok, _error = True, ""
try:
    with contextlib.redirect_stdout(_buffer):
        exec(compile(_wrapped, "<program>", "exec"), _namespace, {})
except BaseException as e:  # v1 keeps nothing from a program that raises (SystemExit included)
    _ok, _error = False, f"{type(e).__name__}: {e}"[:300]
sys.__stdout__.write(json.dumps({"ok": _ok, "stdout": _buffer.getvalue()[:_settings["max_chars"]],
                                 "error": _error}))
'''


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


_FENCE = re.compile(r"```[ \t]*[A-Za-z0-9_+-]*[ \t]*\n(.*?)(?:\n[ \t]*```|\Z)", re.DOTALL)


def strip_code_fences(text: str) -> str:
    """The code inside Markdown fences (```python ... ```), blocks joined; text without fences unchanged."""
    if "```" not in text:
        return text
    blocks = _FENCE.findall(text)
    return "\n".join(blocks) if blocks else text.replace("```", "")


def program_from_output(output: str, strip_fences: bool = True) -> str | None:
    """MAmmoTH's rule: an output containing ``print(`` is a program; cut it at any "### Instruction"."""
    if "print(" not in output:
        return None
    code = output.split("### Instruction")[0]
    return strip_code_fences(code) if strip_fences else code


def run_program(code: str, limits: SandboxLimits = SandboxLimits(), *, module_name: str = "utils") -> ProgramResult:
    """Execute ``code`` as v1 does (inside ``run_it()``, v1's namespace) in a sandboxed subprocess.

    ``stdout`` is what the program printed, with surrounding newlines removed (v1's ``strip('\\n')``);
    ``ok`` is False when it raised, timed out or was killed."""
    with tempfile.TemporaryDirectory(prefix="s2lbench-pot-") as scratch:
        with open(os.path.join(scratch, "program.py"), "w", encoding="utf-8", errors="surrogatepass") as f:
            f.write(code)
        env = {"PATH": "/usr/bin:/bin", "HOME": scratch, "TMPDIR": scratch, "PYTHONHASHSEED": "0",
               "OMP_NUM_THREADS": "1", "PYTHONIOENCODING": "utf-8"}
        settings = json.dumps({"module_name": module_name, "modules": list(MAMMOTH_NAMESPACE),
                               "max_chars": limits.max_output_chars})
        try:
            proc = subprocess.run([sys.executable, "-I", "-B", "-c", _CHILD, settings], cwd=scratch, env=env,
                                  capture_output=True, timeout=limits.timeout_s, stdin=subprocess.DEVNULL,
                                  preexec_fn=_limit_child(limits))
        except subprocess.TimeoutExpired:
            return ProgramResult("", False, f"timed out after {limits.timeout_s:g} s")
        try:
            report = json.loads(proc.stdout.decode("utf-8", errors="replace"))
        except (json.JSONDecodeError, ValueError):
            last = proc.stderr.decode("utf-8", errors="replace").strip().splitlines()[-1:]
            return ProgramResult("", False, (last or [f"exit status {proc.returncode}"])[0][:300])
        return ProgramResult(str(report.get("stdout", "")).strip("\n"), bool(report.get("ok")),
                             str(report.get("error", "")))


def pot_to_text(output: str, limits: SandboxLimits = SandboxLimits(), *, strip_fences: bool = True,
                module_name: str = "utils") -> str:
    """A program-of-thought output as v1 grades it: "The answer is <stdout>" (stdout kept only when the
    program finished cleanly; "The answer is " otherwise); other outputs pass through unchanged."""
    code = program_from_output(output, strip_fences)
    if code is None:
        return output
    result = run_program(code, limits, module_name=module_name)
    if not result.ok:
        log.debug("program failed: %s", result.error)
    return "The answer is " + (result.stdout if result.ok else "")
