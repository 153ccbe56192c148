"""The one record type for an SFT example, and the pool that holds them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import overload

from s2lbench.common.fingerprint import pool_fingerprint


@dataclass(frozen=True)
class SFTExample:
    """One instruction-tuning example. ``id`` is stable across runs (given by the data or derived from content)."""

    id: str
    instruction: str
    output: str
    input: str = ""
    source: str = "default"

    def to_dict(self) -> dict[str, str]:
        return {"id": self.id, "instruction": self.instruction, "input": self.input,
                "output": self.output, "source": self.source}


class Pool(Sequence[SFTExample]):
    """An ordered, immutable collection of examples with unique ids. Positions index into it."""

    def __init__(self, examples: Sequence[SFTExample], name: str = "pool"):
        self._examples = tuple(examples)
        self.name = name
        self._position = {}
        for pos, ex in enumerate(self._examples):
            if ex.id in self._position:
                raise ValueError(f"{name}: duplicate id {ex.id!r} at positions {self._position[ex.id]} and {pos}")
            self._position[ex.id] = pos

    @overload
    def __getitem__(self, i: int) -> SFTExample: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[SFTExample]: ...
    def __getitem__(self, i):
        return self._examples[i]

    def __len__(self) -> int:
        return len(self._examples)

    def __iter__(self) -> Iterator[SFTExample]:
        return iter(self._examples)

    def position_of(self, example_id: str) -> int:
        return self._position[example_id]

    @property
    def ids(self) -> list[str]:
        return [ex.id for ex in self._examples]

    @property
    def sources(self) -> list[str]:
        return [ex.source for ex in self._examples]

    def source_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(self.sources).items()))

    def subset(self, positions: Sequence[int], name: str | None = None) -> Pool:
        return Pool([self._examples[int(p)] for p in positions], name=name or f"{self.name}[subset]")

    def fingerprint(self) -> str:
        return pool_fingerprint(self)
