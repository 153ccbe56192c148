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
