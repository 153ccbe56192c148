"""The `s2lbench` command line. Sub-commands come from the ``register_commands`` hook."""

from __future__ import annotations

import argparse
import logging
import sys

from s2lbench import __version__
from s2lbench.errors import S2LBenchError


def build_parser() -> argparse.ArgumentParser:
    from s2lbench.plugins import get_hooks

    parser = argparse.ArgumentParser(
        prog="s2lbench",
        description="Compare data-selection methods for supervised fine-tuning (SmallToLarge and baselines).")
    parser.add_argument("--version", action="version", version=f"s2lbench {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for registered in get_hooks().commands().values():
        command = registered.obj()
        p = sub.add_parser(command.name, help=command.help, description=command.help)
        command.add_arguments(p)
        p.set_defaults(_command=command)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        # s2lbench logs what it does at INFO; other libraries only warn unless -vv
        logging.basicConfig(level=logging.DEBUG if args.verbose >= 2 else logging.WARNING,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
        logging.getLogger("s2lbench").setLevel(logging.DEBUG if args.verbose else logging.INFO)
        if not getattr(args, "_command", None):
            parser.print_help()
            return 2
        return int(args._command.run(args) or 0)
    except S2LBenchError as e:
        print(f"s2lbench: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("s2lbench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
