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

from s2lbench.common.typed import from_dict
from s2lbench.errors import BudgetError, S2LBenchError
from s2lbench.pool.records import Pool
from s2lbench.selection.regime import Regime, regime_record, source_mix
from s2lbench.signals.signalset import SignalSet


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
    """What ``select`` returns: pool positions, free-form ``diagnostics`` (JSON), and optionally the
    ``regime`` the selector ran in (``s2lbench.selection.regime.Regime``: a summary, its facts, warnings when
    it ran outside the regime it was designed for). A selector that reports no regime still gets one
    recorded: the subset's source mix against the pool's."""

    positions: np.ndarray
    diagnostics: dict[str, Any] = field(default_factory=dict)
    regime: Regime | None = None


class Selector:
    """Base class for selectors. Subclass, set the class attributes, implement ``select``."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    requires: ClassVar[tuple[str, ...]] = ()
    #: bump when the same inputs now give another subset: runs key cached selections and cells on it, so a
    #: resumed run reselects instead of reusing what the old code picked (1 is left out of keys: unchanged)
    version: ClassVar[int] = 1

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
    """A count (``1000``) or a fraction of the pool (``0.1``, ``"10%"``) -> a count in [1, n].

    Integers (``1000``, ``"1000"``, ``1000.0``) are counts, except ``1.0`` (the whole pool); other numbers are
    fractions in (0, 1]; negative, zero, NaN or infinite budgets are errors that say which they are."""
    import math

    raw = budget
    if isinstance(budget, bool):
        raise BudgetError(f"budget {raw!r} is neither a count nor a fraction")
    percent = False
    if isinstance(budget, str):
        text = budget.strip()
        percent = text.endswith("%")
        try:
            value = float(text[:-1]) if percent else (int(text) if text.lstrip("+-").isdigit() else float(text))
        except ValueError:
            raise BudgetError(f"budget {raw!r} is neither a count (1000) nor a fraction (0.1, 10%)") from None
        budget = value / 100 if percent else value
    if isinstance(budget, float) and not math.isfinite(budget):
        raise BudgetError(f"budget {raw!r} is not a finite number")
    if budget < 0:
        raise BudgetError(f"budget {raw!r} is negative; give a count (1000) or a fraction of the pool (0.1, 10%)")
    if budget == 0:
        raise BudgetError(f"budget {raw!r} is zero; give a positive count or fraction")
    is_fraction = percent or (isinstance(budget, float) and (not budget.is_integer() or budget == 1.0))
    if is_fraction:
        if budget > 1:
            raise BudgetError(f"budget {raw!r}: a fraction must be in (0, 1] (or give a whole count)")
        count = max(1, int(round(budget * n)))
    else:
        count = int(budget)
    if count > n:
        raise BudgetError(f"budget {count} is larger than the pool ({n} examples)")
    return count


def check_seed(seed: object, where: str = "seed") -> int:
    """Seeds are integers >= 0 everywhere (numpy, faiss and torch all take them)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise S2LBenchError(f"{where} must be an integer >= 0, got {seed!r}")
    if seed < 0 or seed >= 2**32:
        raise S2LBenchError(f"{where} must be an integer in [0, 2^32), got {seed}")
    return int(seed)


def parse_options(selector_cls: type[Selector], options: Mapping[str, Any] | None) -> Any:
    return from_dict(selector_cls.Options, dict(options or {}), where=f"selector {selector_cls.name!r} option")


def run_selector(selector_cls: type[Selector], pool: Pool, budget: int | float | str, seed: int,
                 signals: SignalSet | None = None, options: Mapping[str, Any] | None = None,
                 check_determinism: bool = False) -> Selection:
    """Run one selector under the contract: exactly ``budget`` unique valid positions, deterministic per seed.

    ``check_determinism`` runs the selector a second time on the same seed and compares the subsets (and
    the interpreter's global ``random`` / numpy state is left changed by neither run, so a selector that
    reads it is caught); tests and ``s2lbench select --check`` use it."""
    if len(pool) == 0:
        raise BudgetError("cannot select from an empty pool")
    seed = check_seed(seed)
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
    positions = _positions(result, selector_cls)
    if check_determinism:
        _check_deterministic(selector_cls, parsed, ctx, positions)
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
    try:
        result.diagnostics["regime"] = regime_record(result.regime, source_mix(pool.sources, result.positions))
    except TypeError as e:
        raise S2LBenchError(f"selector {selector_cls.name!r} broke the contract: {e}") from None
    return result


def _positions(result: Selection, selector_cls: type[Selector]) -> np.ndarray:
    try:
        positions = np.asarray(result.positions)
    except Exception as e:
        raise S2LBenchError(f"selector {selector_cls.name!r} broke the contract: positions are not an array "
                            f"({type(e).__name__}: {e})") from None
    if positions.dtype.kind not in "iu" and not (positions.dtype.kind == "f" and positions.size == 0) and not (
            positions.dtype.kind == "f" and np.all(np.isfinite(positions)) and np.all(positions == np.round(positions))):
        raise S2LBenchError(f"selector {selector_cls.name!r} broke the contract: positions must be integers, "
                            f"got dtype {positions.dtype}")
    return positions.astype(np.int64).ravel()


def _check_deterministic(selector_cls: type[Selector], parsed: Any, ctx: SelectionContext,
                         first: np.ndarray) -> None:
    """Run again on the same seed, after perturbing the global random states, and compare."""
    import random

    saved_py, saved_np = random.getstate(), np.random.get_state()
    try:
        random.seed(int.from_bytes(__import__("os").urandom(8), "little"))
        np.random.seed(int.from_bytes(__import__("os").urandom(4), "little"))
        again = selector_cls(parsed).select(ctx)
    finally:
        random.setstate(saved_py)
        np.random.set_state(saved_np)
    if not isinstance(again, Selection):
        again = Selection(np.asarray(again))
    second = _positions(again, selector_cls)
    if not np.array_equal(np.sort(first), np.sort(second)):
        differ = np.setdiff1d(first, second).size
        raise S2LBenchError(f"selector {selector_cls.name!r} broke the contract: two runs with seed {ctx.seed} "
                            f"chose different subsets ({differ} of {first.size} positions differ); draw "
                            "randomness only from ctx.rng() (not the global `random` or `numpy.random`)")
