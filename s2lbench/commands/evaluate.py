"""`s2lbench evaluate --task NAME --predictions FILE.jsonl`: grade any model's raw outputs with a registered task.

Prediction rows are ``{"index": <0-based row in the test file>, "output": "<raw generated text>"}``. Prints
the metrics, writes one record per graded example (extracted answer, gold, correct/scores), and with
``--json`` prints a JSON object with ``task``, ``n``, ``accuracy`` (when the task has it) and every metric
as the last line.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from s2lbench.commands.base import Command
from s2lbench.common import settings
from s2lbench.common.atomic import check_output_path, write_jsonl
from s2lbench.common.files import iter_jsonl
from s2lbench.common.typed import from_dict
from s2lbench.errors import ConfigError, DataError
from s2lbench.plugin_manager import get_hooks


def read_predictions(path: Path) -> dict[int, str]:
    """index -> output; errors name the file and line (bad JSON, missing keys, duplicate index)."""
    if path.is_dir():
        raise DataError("is a folder, expected a predictions file (JSONL)", path=path)
    if not path.is_file():
        raise DataError("predictions file not found", path=path)

    predictions: dict[int, str] = {}
    for lineno, row in iter_jsonl(path):
        for key in ("index", "output"):
            if key not in row:
                raise DataError(f"missing {key!r}", path=path, line=lineno, field=key)
        index = row["index"]
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise DataError(f"index must be a non-negative integer, got {index!r}", path=path, line=lineno,
                            field="index")
        if not isinstance(row["output"], str):
            raise DataError("output must be a string", path=path, line=lineno, field="output")
        if index in predictions:
            raise DataError(f"duplicate index {index}", path=path, line=lineno, field="index")
        predictions[index] = row["output"]
    if not predictions:
        raise DataError("no predictions", path=path)
    return predictions


def parse_options(pairs: list[str]) -> dict[str, Any]:
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"--option {pair!r} is not of the form key=value")
        key, value = pair.split("=", 1)
        out[key.strip()] = value
    return out


def _plain(value: Any) -> Any:
    if hasattr(value, "__dataclass_fields__"):
        import dataclasses

        return dataclasses.asdict(value)
    return value


def evaluate_predictions(task: str, predictions_path: Path, data_dir: Path, options: dict[str, Any],
                         out_path: Path | str | None = None) -> dict[str, Any]:
    out_path = check_output_path(out_path if out_path is not None else predictions_path.with_name(
        f"{predictions_path.stem}.{task}.graded.jsonl"), inputs=(predictions_path,))
    cls = get_hooks().evaluator(task)
    evaluator = cls(from_dict(cls.Options, options, where=f"{task} options"))
    items = evaluator.load(data_dir)
    predictions = read_predictions(predictions_path)
    beyond = sorted(i for i in predictions if i >= len(items))
    if beyond:
        raise DataError(f"index {beyond[0]} is beyond the {len(items)} rows of {task}'s test set",
                        path=predictions_path, field="index")
    chosen = [items[i] for i in sorted(predictions)]
    metrics, samples = evaluator.evaluate(chosen, [predictions[item.index] for item in chosen])
    records = []
    for sample in samples:
        record = {"index": sample.index, "extracted": _plain(sample.extracted), "gold": _plain(sample.reference),
                  "scores": sample.scores, "output": sample.output}
        if "accuracy" in sample.scores:
            record["correct"] = bool(sample.scores["accuracy"])
        records.append(record)
    write_jsonl(out_path, records)
    summary = {"task": task, "n": len(samples), "of": len(items),
               **{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in metrics.items()},
               "options": _plain(evaluator.options), "records": str(out_path)}
    return summary


class EvaluateCommand(Command):
    name = "evaluate"
    help = "grade a predictions file (rows {index, output}) with a registered evaluation task"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--task", required=True, help="evaluator name (s2lbench plugins lists them)")
        parser.add_argument("--predictions", required=True, type=Path,
                            help='JSONL with rows {"index": <0-based test row>, "output": "<raw text>"}')
        parser.add_argument("--data-dir", default=None,
                            help="folder with the test files (default $S2LBENCH_DATA_DIR, else ./data); "
                                 "for gym tasks the gym build folder; hf:// loads from the hub where supported")
        parser.add_argument("--grading", default=None, choices=["mammoth-v1", "s2lbench"],
                            help="math grading: mammoth-v1 (default, MAmmoTH v1 exactly) or s2lbench (corrected)")
        parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                            help="evaluator option, e.g. set=add_in for gym, prompting=pot, bertscore_model=minilm")
        parser.add_argument("--out", default=None,
                            help="per-example records (default: <predictions>.<task>.graded.jsonl beside it)")
        parser.add_argument("--json", action="store_true", help="print the summary as JSON (the last line)")

    def run(self, args: argparse.Namespace) -> int:
        options = parse_options(args.option)
        if args.grading:
            options["grading"] = args.grading
        where = args.data_dir if args.data_dir and args.data_dir.startswith("hf://") else settings.data_dir(args.data_dir)
        summary = evaluate_predictions(args.task, args.predictions, where, options, args.out)
        metric_names = [k for k in summary if k not in ("task", "n", "of", "options", "records")]
        print(f"{summary['task']}: {summary['n']} of {summary['of']} examples graded")
        for name in metric_names:
            value = summary[name]
            print(f"  {name}: {'n/a' if value is None else f'{value:.4f}'}")
        print(f"records: {summary['records']}")
        if args.json:
            print(json.dumps(summary, sort_keys=True))
        return 0
