"""The `s2lbench` command line. Sub-commands come from the ``register_commands`` hook.

``main`` is the one error boundary: errors s2lbench raises on purpose (``S2LBenchError``) and the expected
failures of the outside world (I/O, decoding, parsing, databases, an unreachable hub) print one line naming
the culprit and exit 2. Anything else is a bug: one line with the path of a log file holding the traceback
(the traceback itself with ``--debug``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback

from s2lbench import __version__
from s2lbench.common import console
from s2lbench.errors import S2LBenchError, describe_expected


def build_parser() -> argparse.ArgumentParser:
    hooks = command_hooks()
    parser = argparse.ArgumentParser(
        prog="s2lbench",
        description="Compare data-selection methods for supervised fine-tuning (SmallToLarge and baselines).")
    parser.add_argument("--version", action="version", version=f"s2lbench {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="stream the full log to the terminal (-vv: other libraries' debug lines too)")
    parser.add_argument("-q", "--quiet", action="count", default=0,
                        help="only warnings, errors and the final table (the log file still has everything)")
    parser.add_argument("--debug", action="store_true", help="print the full traceback of any error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for registered in hooks.commands().values():
        command = registered.obj()
        p = sub.add_parser(command.name, help=command.help, description=command.help)
        command.add_arguments(p)
        p.set_defaults(_command=command)
    return parser


def command_hooks():
    """The process-wide hooks with s2lbench's own commands registered as the ``core`` plugin, beside any
    plugin's. The command line owns its commands: the plugin manager itself never imports them (commands ask
    it for selectors and evaluators, so registering them there would make an import circle)."""
    from s2lbench import commands
    from s2lbench.plugin_manager import get_hooks

    hooks = get_hooks()
    if hooks.pm.get_plugin("core") is None:
        hooks.pm.register(commands, name="core")
    return hooks


def _crash_log(exc: BaseException) -> str | None:
    """Write the traceback of an unexpected error to a log file; its path, or None if nothing could be written."""
    folder = console.default_log_dir()
    try:
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log")
        with open(path, "w", encoding="utf-8", errors="backslashreplace") as f:
            f.write("s2lbench " + __version__ + "\nargv: " + repr(sys.argv) + "\n\n")
            f.write("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
        return path
    except OSError:
        return None


def _one_line(text: str) -> str:
    return " ".join(str(text).split()) or "(no message)"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]  # accepted anywhere on the line, before or after the command
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        console.configure(max(-1, min(2, args.verbose)) if not args.quiet else -1)  # common/console.py
        if not getattr(args, "_command", None):
            parser.print_help()
            return 2
        return int(args._command.run(args) or 0)
    except S2LBenchError as e:
        if debug:
            traceback.print_exc()
        console.closing(f"s2lbench: error: {_one_line(e)}")
        return 2
    except KeyboardInterrupt:
        console.closing("s2lbench: interrupted")
        return 130
    except BrokenPipeError:
        # the reader of our output went away (`s2lbench plugins | head`): not an error of ours or of the hub;
        # point stdout at devnull so the interpreter's final flush does not raise again
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # what a shell reports for a process ended by SIGPIPE (128 + 13)
    except Exception as e:
        if debug:
            traceback.print_exc()
        expected = describe_expected(e)
        if expected is not None:
            console.closing(f"s2lbench: error: {_one_line(expected)}")
            return 2
        log_path = _crash_log(e)
        where = f"; traceback in {log_path}" if log_path else ""
        console.closing(f"s2lbench: internal error: {type(e).__name__}: {_one_line(e)}{where} "
                        "(rerun with --debug to print it; please report it)")
        return 1
    finally:
        console.get().reset()  # the log file closed; a second main() in one process starts afresh


if __name__ == "__main__":
    sys.exit(main())
