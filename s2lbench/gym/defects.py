"""The gym's planted defects read back: which rows carry which defect (``defects.json``, written by the build),
and what share of a set of ids carries each.

Ground truth for analysis only: selectors never read it. ``s2lbench compare-subsets --defects`` prints the
shares of selected subsets; the runner records them with every cell of a gym grid (``planted_defects`` in the
cell's regime record, :func:`planted_defects`), and the board shows the share with any defect beside each row.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from s2lbench.common.files import read_json
from s2lbench.errors import DataError

#: the key of the cell's regime record (``cells.regime``) that holds the subset's defect shares
PLANTED_DEFECTS = "planted_defects"
#: in that record: the share of the subset with any defect, and the pool's own share with any
ANY, POOL_ANY = "any", "pool_any"


def defect_shares(ids: set[str], defects: Mapping[str, str], kinds: list[str]) -> dict[str, float]:
    """Share of ``ids`` carrying each defect kind, plus ``clean`` (no defect)."""
    counts = dict.fromkeys(kinds, 0)
    for ex_id in ids:
        kind = defects.get(ex_id)
        if kind is not None:
            counts[kind] += 1
    n = max(len(ids), 1)
    shares = {kind: counts[kind] / n for kind in kinds}
    shares["clean"] = (len(ids) - sum(counts.values())) / n
    return shares


def read_defects(path: str | Path) -> tuple[dict[str, str], dict[str, Any] | None]:
    """``{example id: defect kind}`` from a gym's ``defects.json``, and the pool's row and defect counts
    from the ``gym.json`` beside it (None where there is none)."""
    path = Path(path)
    defects = read_json(path)
    if not isinstance(defects, dict) or not all(isinstance(v, str) for v in defects.values()):
        raise DataError("expected an object {example id: defect kind}", path=path)
    manifest = path.with_name("gym.json")
    pool = read_json(manifest).get("pool") if manifest.exists() else None
    return {str(k): v for k, v in defects.items()}, pool


class PlantedDefects:
    """A gym pool's defects, read once: :meth:`record` gives a subset's shares for its regime record."""

    def __init__(self, defects: Mapping[str, str], pool_ids: Iterable[str]):
        self.defects = dict(defects)
        self.kinds = sorted(set(self.defects.values()))
        pool = set(pool_ids)
        self.pool_any = round(1.0 - defect_shares(pool, self.defects, self.kinds)["clean"], 4)

    def record(self, ids: Iterable[str]) -> dict[str, float]:
        """``{kind: share, ..., "clean": share, "any": share with any defect, "pool_any": the pool's}`` of the
        subset ``ids``, rounded to 4 places as the source mix is."""
        shares = defect_shares(set(ids), self.defects, self.kinds)
        out = {kind: round(v, 4) for kind, v in shares.items()}
        out[ANY] = round(1.0 - shares["clean"], 4)
        out[POOL_ANY] = self.pool_any
        return out


def planted_defects(ids: Iterable[str], defects: Mapping[str, str], pool_ids: Iterable[str]) -> dict[str, float]:
    """The ``planted_defects`` record of the subset ``ids`` of a gym pool (see :class:`PlantedDefects`)."""
    return PlantedDefects(defects, pool_ids).record(ids)
