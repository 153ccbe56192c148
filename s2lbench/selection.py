"""The selector contract, and the one function that runs any selector safely.

A selector is a class with a ``name``, the per-example ``requires`` signals it reads, an ``Options``
dataclass (typed, with defaults), and ``select(ctx) -> Selection``. It returns positions into the pool.
``run_selector`` resolves the budget, parses options, checks signals, and validates what comes back,
so every selector -- built-in or third-party -- obeys the same contract.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from s2lbench.errors import BudgetError, S2LBenchError
from s2lbench.records import Pool
from s2lbench.signalset import SignalSet
from s2lbench.typed import from_dict


@dataclass(frozen=True)
class SelectionContext:
    pool: Pool
    signals: SignalSet
    budget: int
    seed: int

    def rng(self) -> np.random.Generator:
        return np.random.default_rng(self.seed)

    @property
    def sources(self) -> np.ndarray:
        return np.asarray(self.pool.sources)


@dataclass
class Selection:
    positions: np.ndarray
    diagnostics: dict[str, Any] = field(default_factory=dict)


class Selector:
    """Base class for selectors. Subclass, set the class attributes, implement ``select``."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    requires: ClassVar[tuple[str, ...]] = ()

    @dataclass(frozen=True)
    class Options:
        pass

    def __init__(self, options: Any = None):
        self.options = options if options is not None else self.Options()

    def select(self, ctx: SelectionContext) -> Selection | np.ndarray:
        raise NotImplementedError

    @classmethod
    def required_signals(cls, options: Any) -> tuple[str, ...]:
        """The signals ``select`` reads under ``options``; override when an option picks the signal."""
        return tuple(cls.requires)

    @classmethod
    def option_fields(cls) -> list[dict[str, Any]]:
        """Option name, type and default, for `s2lbench plugins` and docs."""
        out = []
        for f in dataclasses.fields(cls.Options):
            default = f.default if f.default is not dataclasses.MISSING else (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
            tp = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
            out.append({"name": f.name, "type": tp, "default": default, "help": f.metadata.get("help", "")})
        return out


def resolve_budget(budget: int | float | str, n: int) -> int:
    """A count (``1000``) or a fraction of the pool (``0.1``, ``"10%"``) -> a count in [1, n]."""
    raw = budget
    if isinstance(budget, str):
        text = budget.strip()
        try:
            budget = float(text[:-1]) / 100 if text.endswith("%") else (int(text) if text.isdigit() else float(text))
        except ValueError:
            raise BudgetError(f"budget {raw!r} is neither a count nor a fraction") from None
    if isinstance(budget, float) and not budget.is_integer() or (isinstance(budget, float) and budget <= 1.0):
        if not 0 < budget <= 1:
            raise BudgetError(f"budget fraction {raw!r} must be in (0, 1]")
        count = max(1, int(round(budget * n)))
    else:
        count = int(budget)
    if count <= 0:
        raise BudgetError(f"budget {raw!r} must be positive")
    if count > n:
        raise BudgetError(f"budget {count} is larger than the pool ({n} examples)")
    return count


def parse_options(selector_cls: type[Selector], options: Mapping[str, Any] | None) -> Any:
    return from_dict(selector_cls.Options, dict(options or {}), where=f"selector {selector_cls.name!r} option")


def run_selector(selector_cls: type[Selector], pool: Pool, budget: int | float | str, seed: int,
                 signals: SignalSet | None = None, options: Mapping[str, Any] | None = None) -> Selection:
    """Run one selector under the contract: exactly ``budget`` unique valid positions, deterministic per seed."""
    if len(pool) == 0:
        raise BudgetError("cannot select from an empty pool")
    count = resolve_budget(budget, len(pool))
    signals = (signals or SignalSet()).for_pool(len(pool))
    parsed = parse_options(selector_cls, options)
    for name in selector_cls.required_signals(parsed):
        signals.get(name)  # raises MissingSignalError naming the signal and how to compute it
    selector = selector_cls(parsed)
    ctx = SelectionContext(pool=pool, signals=signals, budget=count, seed=int(seed))
    start = time.perf_counter()
    result = selector.select(ctx)
    elapsed = time.perf_counter() - start
    if not isinstance(result, Selection):
        result = Selection(np.asarray(result))
    positions = np.asarray(result.positions, dtype=np.int64).ravel()
    problems = []
    if positions.size != count:
        problems.append(f"returned {positions.size} positions for a budget of {count}")
    if np.unique(positions).size != positions.size:
        problems.append("returned duplicate positions")
    if positions.size and (positions.min() < 0 or positions.max() >= len(pool)):
        problems.append(f"returned positions outside [0, {len(pool)})")
    if problems:
        raise S2LBenchError(f"selector {selector_cls.name!r} broke the contract: " + "; ".join(problems))
    result.positions = np.sort(positions)
    result.diagnostics.setdefault("selector", selector_cls.name)
    result.diagnostics.setdefault("options", dataclasses.asdict(selector.options))
    result.diagnostics["budget"] = count
    result.diagnostics["seed"] = int(seed)
    result.diagnostics["selection_seconds"] = round(elapsed, 6)
    return result
