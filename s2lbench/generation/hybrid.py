"""Two-pass decoding for evaluators that ask for a second attempt (MAmmoTH's hybrid PoT -> CoT backup).

The first pass generates every item's ``evaluator.prompt``; items whose output the evaluator cannot use
(``evaluator.backup_prompt(item, output)`` returns a prompt) are generated again with that prompt. Each pass
has its own cache variant, so PoT, CoT and backup generations never share a cache file.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

log = logging.getLogger(__name__)


def prompting_variant(evaluator: Any) -> str:
    """The evaluator's prompting mode as a cache variant ("" for chain of thought, the historical key)."""
    mode = getattr(getattr(evaluator, "options", None), "prompting", "cot")
    return "" if mode == "cot" else str(mode)


def generate_with_backup(evaluator: Any, items: Sequence[Any],
                         generate: Callable[[list[str], str], list[str]]) -> tuple[list[str], dict[int, str]]:
    """(first-pass outputs, {position: backup output}); ``generate(prompts, variant)`` does the decoding."""
    variant = prompting_variant(evaluator)
    outputs = generate([evaluator.prompt(item) for item in items], variant)
    second = {i: p for i, (item, out) in enumerate(zip(items, outputs, strict=True))
              if (p := evaluator.backup_prompt(item, out)) is not None}
    backups: dict[int, str] = {}
    if second:
        log.info("%s: %d of %d items re-asked (%s backup)", getattr(evaluator, "name", "?"), len(second),
                 len(items), variant or "cot")
        fresh = generate(list(second.values()), f"{variant}-backup")
        backups = dict(zip(second, fresh, strict=True))
    return outputs, backups
