"""The CLI sub-command contract: a class with a name, help, ``add_arguments`` and ``run``."""

from __future__ import annotations

import argparse
from typing import ClassVar


class Command:
    name: ClassVar[str]
    help: ClassVar[str] = ""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Declare this command's arguments (and, if it has any, its own sub-commands)."""

    def run(self, args: argparse.Namespace) -> int:
        raise NotImplementedError


def seed_type(text: str) -> int:
    """argparse type for seeds: an integer in [0, 2^32), as in configs."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer seed >= 0, got {text!r}") from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"seed {value} must be an integer in [0, 2^32)")
    return value
