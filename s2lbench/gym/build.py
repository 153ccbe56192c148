"""Generate the gym: a seeded MathInstruct-shaped pool with documented defects, six test sets, a tokenizer."""

from __future__ import annotations

import logging
import random
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from s2lbench.common import console
from s2lbench.common.atomic import write_json, write_jsonl
from s2lbench.common.fingerprint import config_hash, file_fingerprint
from s2lbench.errors import ConfigError
from s2lbench.gym import tasks, tasks_v2, testsets, testsets_v2
from s2lbench.gym.bases import BaseRecipe
from s2lbench.gym.corpus import pretraining_corpus
from s2lbench.gym.tokenizer import save_tokenizer, train_tokenizer
from s2lbench.pool.loaders import write_pool
from s2lbench.pool.prompts import check_template, render_prompt
from s2lbench.pool.records import Pool, SFTExample

log = logging.getLogger(__name__)

DEFECT_KINDS = ("wrong_answer", "near_duplicate", "truncated", "overlong", "off_topic")


@dataclass(frozen=True)
class DefectRates:
    """Fractions of the final pool carrying each defect (each row carries at most one)."""

    wrong_answer: float = 0.08  # label noise: final answer (and the 'So ...' line) replaced by a wrong number
    near_duplicate: float = 0.06  # a surface-perturbed copy of another pool row (case, spacing, punctuation)
    truncated: float = 0.04  # the answer is cut off part-way: no final answer line
    overlong: float = 0.03  # the worked steps repeated 2-4 times before the final line
    off_topic: float = 0.03  # a non-math instruction with a non-math response

    def __post_init__(self):
        for kind in DEFECT_KINDS:
            rate = getattr(self, kind)
            if not 0.0 <= rate < 1.0:
                raise ConfigError(f"defects.{kind}: rate {rate} must be in [0, 1)")
        if sum(getattr(self, k) for k in DEFECT_KINDS) >= 0.9:
            raise ConfigError("defects: the rates sum to 0.9 or more; the pool would be mostly noise")


@dataclass(frozen=True)
class GymDesign:
    """What a gym version draws from: its sources (name -> (generator, share)) and its test sets."""

    sources: dict
    test_sets: tuple


#: a byte-level BPE holds its 256-byte alphabet and the EOS and PAD tokens before any merge
MIN_VOCAB_SIZE = 258

#: what a gym's tokenizer can be trained on (GymConfig.tokenizer)
TOKENIZER_SOURCES = ("pool", "shared")

#: the pool the "shared" tokenizer of a version is trained on (with the corpus): fixed, whatever the gym's
#: own size, seed, levels or defects; every level, so every number length and template appears
SHARED_TOKENIZER_POOL = dict(pool_size=8000, seed=0, level_weights=(1.0, 1.0, 1.0))

#: version -> design. v1 is the gym the boards under leaderboards/archive/gym-v1 came from, kept bit-for-bit;
#: v2 (docs/gym.md) is the calibrated redesign. A config names its version (default 1: old configs stay valid).
DESIGNS = {1: GymDesign(tasks.SOURCES, testsets.TEST_SETS), 2: GymDesign(tasks_v2.SOURCES, testsets_v2.TEST_SETS)}


@dataclass(frozen=True)
class GymConfig:
    #: the gym's design (DESIGNS): 1 = the original gym, 2 = the calibrated redesign
    version: int = 1
    seed: int = 0
    pool_size: int = 15000
    test_size: int = 300
    #: share of difficulty levels 1, 2, 3 (operand digits) in the pool and the in-domain test sets
    level_weights: tuple[float, float, float] = (0.15, 0.35, 0.5)
    defects: DefectRates = field(default_factory=DefectRates)
    vocab_size: int = 512
    #: rows per dev set (dev/<name>.jsonl, one per test set, disjoint from the pool and every test set);
    #: None: the version's default (v1 0, so v1 builds stay as they were; v2 100)
    dev_size: int | None = None
    #: the prompt template every stage renders this gym's rows with (s2lbench.pool.prompts.TEMPLATES); None: the
    #: version's default (v1 "alpaca", as before versions existed; v2 "qa", a third fewer tokens per row)
    template: str | None = None
    #: how ``gym-base:<model>`` bases are pre-trained on this gym's corpus (not part of the pool: the runner
    #: keys the gym stage without it, and each base stage with it)
    base: BaseRecipe = field(default_factory=BaseRecipe)
    #: what the BPE tokenizer is trained on (TOKENIZER_SOURCES): "pool" (this pool as prompted, plus the v2
    #: corpus), or "shared" (the version's reference pool and the corpus, whatever this pool's size, seed,
    #: levels or defects), so that every gym of one version and template shares one tokenizer and therefore
    #: one set of bases, which can be committed (s2lbench/gym/pretrained/). None: "pool", as before.
    tokenizer: str | None = None

    def __post_init__(self):
        if self.version not in DESIGNS:
            raise ConfigError(f"version: {self.version!r} is not a gym version (known: {', '.join(map(str, DESIGNS))})")
        if self.template is not None:
            check_template(self.template)
        if self.tokenizer is not None and self.tokenizer not in TOKENIZER_SOURCES:
            raise ConfigError(f"tokenizer: {self.tokenizer!r} is not a tokenizer source (known: "
                              f"{', '.join(TOKENIZER_SOURCES)})")
        if self.tokenizer == "shared" and self.version < 2:
            raise ConfigError("tokenizer: 'shared' needs version 2 (bases, and so shared tokenizers, are a v2 design)")
        if self.dev_size is not None and self.dev_size < 0:
            raise ConfigError(f"dev_size: {self.dev_size} must be >= 0")
        if self.pool_size < 100:
            raise ConfigError(f"pool_size: {self.pool_size} is too small (at least 100)")
        if self.test_size < 1:
            raise ConfigError(f"test_size: {self.test_size} must be positive")
        if len(self.level_weights) != 3 or min(self.level_weights) < 0 or sum(self.level_weights) <= 0:
            raise ConfigError(f"level_weights: {self.level_weights} must be three non-negative weights")
        if self.vocab_size < MIN_VOCAB_SIZE:  # below it BPE learns no merge and silently keeps the bare alphabet
            raise ConfigError(f"vocab_size: {self.vocab_size} is below the byte-level alphabet plus the two special "
                              f"tokens ({MIN_VOCAB_SIZE})")

    @property
    def design(self) -> GymDesign:
        return DESIGNS[self.version]

    @property
    def dev_rows(self) -> int:
        return self.dev_size if self.dev_size is not None else (0 if self.version == 1 else 100)

    @property
    def prompt_template(self) -> str:
        return self.template or ("alpaca" if self.version == 1 else "qa")

    def stage_spec(self) -> dict:
        """What the runner keys the gym stage on: the pool's config without the base recipe (bases are their
        own stages), and without the version fields a v1 config leaves at their defaults, so v1 runs keep
        the stage keys they had before versions existed."""
        spec = {k: v for k, v in asdict(self).items() if k != "base"}
        spec["template"] = self.prompt_template
        if self.tokenizer is None:
            spec.pop("tokenizer")  # runs from before the field existed keep their stage keys
        if self.version == 1:
            spec.pop("version")
            if self.dev_size is None:
                spec.pop("dev_size")
            if self.template is None:
                spec.pop("template")
        return spec

    @classmethod
    def small(cls, **overrides) -> GymConfig:
        """A pool that builds in about a second and trains in tens of seconds: tests and the demo."""
        return replace(cls(pool_size=2000, test_size=100), **overrides)


@dataclass(frozen=True)
class GymPaths:
    root: Path
    pool: Path
    tests: dict[str, Path]
    dev: dict[str, Path]
    tokenizer: Path
    manifest: Path
    defects: Path


def normalize_instruction(text: str) -> str:
    """Letters and digits only, lowercased: the key for near-duplicate and test/pool deduplication."""
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def _exact_counts(weights: dict[str, float], total: int) -> dict[str, int]:
    """Largest-remainder split of ``total`` by ``weights``: deterministic source sizes."""
    norm = sum(weights.values())
    raw = {k: total * w / norm for k, w in weights.items()}
    counts = {k: int(v) for k, v in raw.items()}
    for k in sorted(raw, key=lambda k: counts[k] - raw[k])[: total - sum(counts.values())]:
        counts[k] += 1
    return counts


def _level(rng: random.Random, config: GymConfig) -> int:
    return rng.choices((1, 2, 3), weights=config.level_weights)[0]


def _wrong_number(rng: random.Random, answer: str) -> str:
    value = int(answer)
    while True:
        wrong = value + rng.choice((-1, 1)) * rng.randint(1, max(2, value // 5 + 1))
        if wrong != value and wrong >= 0:
            return str(wrong)


def _with_wrong_answer(rng: random.Random, problem: tasks.Problem) -> str:
    wrong = _wrong_number(rng, problem.answer)
    steps = list(problem.steps)
    if steps and steps[-1].startswith("So ") and problem.answer in steps[-1]:
        steps[-1] = steps[-1][::-1].replace(problem.answer[::-1], wrong[::-1], 1)[::-1]
    elif steps and steps[-1].startswith("Digits "):  # v2: the read-back line agrees with the wrong answer
        steps[-1] = "Digits " + " ".join(wrong) + "."
    return "\n".join([*steps, f"The answer is {wrong}."])


def _truncated(rng: random.Random, problem: tasks.Problem) -> str:
    text = tasks.render_answer(problem)
    cut = int(len(text) * rng.uniform(0.3, 0.8))
    return text[:cut].rstrip()


def _overlong(rng: random.Random, problem: tasks.Problem) -> str:
    repeats = rng.randint(2, 4)
    return "\n".join([*(problem.steps * repeats), f"The answer is {problem.answer}."])


def _perturb(rng: random.Random, instruction: str) -> str:
    choices = [
        lambda s: s.lower(),
        lambda s: s.replace("?", " ?").replace(".", " ."),
        lambda s: s.replace(" + ", "+").replace(" - ", "-").replace(" * ", "*"),
        lambda s: "  ".join(s.split(" ")),
        lambda s: s.rstrip("?.") + "??",
    ]
    for fn in rng.sample(choices, len(choices)):
        out = fn(instruction)
        if out != instruction:
            return out
    return instruction + " "


OFF_TOPIC = (
    ("Write a short note about the {w} festival.", "The {w} festival is a happy event with music and food."),
    ("Describe the color of a ripe {w}.", "A ripe {w} has a bright and warm color."),
    ("Give a title for a story about a {w}.", "The Secret of the Little {w}."),
    ("Translate the word '{w}' into French.", "Je ne sais pas."),
)


def _off_topic(rng: random.Random) -> tuple[str, str]:
    instr, out = rng.choice(OFF_TOPIC)
    word = rng.choice(tasks.WORDS)
    return instr.format(w=word), out.format(w=word)


def generate_pool(config: GymConfig) -> tuple[Pool, dict[str, str]]:
    """The pool and {example id: defect kind} for every defective row. Deterministic in ``config``."""
    rng = random.Random(config.seed)
    rates = config.defects
    n = config.pool_size
    n_dup = round(rates.near_duplicate * n)
    n_off = round(rates.off_topic * n)
    n_base = n - n_dup - n_off
    sources = config.design.sources
    counts = _exact_counts({name: share for name, (_, share) in sources.items()}, n_base)

    base: list[tuple[str, tasks.Problem]] = []
    seen: set[str] = set()
    for source, count in counts.items():
        generator = sources[source][0]
        made, attempts = 0, 0
        while made < count:
            attempts += 1
            problem = generator(rng, _level(rng, config))
            key = normalize_instruction(problem.instruction)
            # keep the pool's clean part free of exact repeats; allow repeats only if the space runs dry
            if key in seen and attempts < 50 * count:
                continue
            seen.add(key)
            base.append((source, problem))
            made += 1

    order = list(range(len(base)))
    rng.shuffle(order)
    n_wrong, n_trunc, n_long = (round(r * n) for r in (rates.wrong_answer, rates.truncated, rates.overlong))
    kinds: dict[int, str] = {}
    cursor = 0
    for kind, k in (("wrong_answer", n_wrong), ("truncated", n_trunc), ("overlong", n_long)):
        for i in order[cursor:cursor + k]:
            kinds[i] = kind
        cursor += k

    rows: list[tuple[str, str, str, str | None]] = []  # (source, instruction, output, defect)
    for i, (source, problem) in enumerate(base):
        kind = kinds.get(i)
        if kind == "wrong_answer":
            output = _with_wrong_answer(rng, problem)
        elif kind == "truncated":
            output = _truncated(rng, problem)
        elif kind == "overlong":
            output = _overlong(rng, problem)
        else:
            output = tasks.render_answer(problem)
        rows.append((source, problem.instruction, output, kind))
    for _ in range(n_dup):
        source, instruction, output, _kind = rows[rng.randrange(len(base))]
        rows.append((source, _perturb(rng, instruction), output, "near_duplicate"))
    source_names = list(sources)
    shares = [share for _, share in sources.values()]
    for _ in range(n_off):
        instruction, output = _off_topic(rng)  # scraped noise lands in sources in proportion to their size
        rows.append((rng.choices(source_names, weights=shares)[0], instruction, output, "off_topic"))
    rng.shuffle(rows)

    examples, defects = [], {}
    for i, (source, instruction, output, kind) in enumerate(rows):
        ex_id = f"gym-{i:06d}"
        examples.append(SFTExample(id=ex_id, instruction=instruction, output=output, source=source))
        if kind:
            defects[ex_id] = kind
    return Pool(examples, name="gym"), defects


def _draw_sets(config: GymConfig, taken: set[str], size: int, salt: int, what: str) -> dict[str, list[dict[str, str]]]:
    out = {}
    for index, spec in enumerate(config.design.test_sets):
        rng = random.Random(config.seed * 1000 + salt + index)
        rows, attempts = [], 0
        while len(rows) < size:
            attempts += 1
            if attempts > 200 * size:
                raise ConfigError(f"{what} {spec.name}: cannot draw {size} problems unseen in the pool and the other "
                                  "sets; lower test_size, dev_size or pool_size")
            problem = spec.generator(rng, _level(rng, config))
            key = normalize_instruction(problem.instruction)
            if key in taken:
                continue
            taken.add(key)
            rows.append({"instruction": problem.instruction, "answer": problem.answer})
        out[spec.name] = rows
    return out


def generate_test_sets(config: GymConfig, pool: Pool) -> dict[str, list[dict[str, str]]]:
    """{name: [{"instruction", "answer"}]}: no test instruction matches a pool instruction (normalized)."""
    taken = {normalize_instruction(ex.instruction) for ex in pool}
    return _draw_sets(config, taken, config.test_size, 7919, "test set")


def generate_dev_sets(config: GymConfig, pool: Pool, size: int | None = None, seed: int = 0,
                      tests: dict[str, list[dict[str, str]]] | None = None) -> dict[str, list[dict[str, str]]]:
    """{test set name: [{"instruction", "output", "answer"}]}: a small dev split per test set for targeted
    selectors (LESS, RDS+), drawn from the test set's own generator, disjoint from the pool and from every
    test set (normalized instructions); ``output`` is the worked solution in the pool's format. ``size``
    defaults to the config's dev rows; ``tests`` (default: regenerated) are the sets to stay clear of."""
    size = config.dev_rows if size is None else size
    tests = generate_test_sets(config, pool) if tests is None else tests
    taken = {normalize_instruction(ex.instruction) for ex in pool}
    taken |= {normalize_instruction(row["instruction"]) for rows in tests.values() for row in rows}
    out = {}
    for index, spec in enumerate(config.design.test_sets):
        rng = random.Random((config.seed * 1000 + 104729 + index) * 1009 + seed)
        rows, attempts = [], 0
        while len(rows) < size:
            attempts += 1
            if attempts > 200 * max(size, 1):
                raise ConfigError(f"dev set {spec.name}: cannot draw {size} problems unseen in the pool and test "
                                  "sets; lower dev.size")
            problem = spec.generator(rng, _level(rng, config))
            key = normalize_instruction(problem.instruction)
            if key in taken:
                continue
            taken.add(key)
            rows.append({"instruction": problem.instruction, "output": tasks.render_answer(problem),
                         "answer": problem.answer})
        out[spec.name] = rows
    return out


def write_dev_sets(out_dir: str | Path, config: GymConfig, pool: Pool,
                   tests: dict[str, list[dict[str, str]]]) -> dict[str, Path]:
    """Write ``dev/<name>.jsonl`` beside ``tests/`` (nothing when the config's dev rows are 0)."""
    if config.dev_rows == 0:
        return {}
    return {name: write_jsonl(Path(out_dir) / "dev" / f"{name}.jsonl", rows)
            for name, rows in generate_dev_sets(config, pool, tests=tests).items()}


def tokenizer_corpus(pool: Pool, version: int = 1, template: str = "alpaca") -> list[str]:
    """What the tokenizer is trained on: the pool as prompted (v1), plus the pre-training corpus from v2 on, so
    the words a base model learns before SFT get tokens of their own."""
    texts = [render_prompt(template, "", "")]
    for ex in pool:
        texts.append(render_prompt(template, ex.instruction, ex.input))
        texts.append(ex.output)
    if version >= 2:
        texts.extend(pretraining_corpus())
    return texts


def shared_tokenizer_texts(config: GymConfig) -> list[str]:
    """What a "shared" tokenizer is trained on: the version's reference pool (SHARED_TOKENIZER_POOL, default
    defects) prompted with ``config``'s template, and the corpus; nothing of ``config``'s own pool."""
    reference = GymConfig(version=config.version, template=config.template, vocab_size=config.vocab_size,
                          **SHARED_TOKENIZER_POOL)
    pool, _ = generate_pool(reference)
    return tokenizer_corpus(pool, config.version, config.prompt_template)


def _recorded(config: GymConfig) -> dict:
    """The config as gym.json records it (unset template and tokenizer left out, so older manifests stay as
    they were)."""
    data = asdict(config)
    for key in ("template", "tokenizer"):
        if data[key] is None:
            data.pop(key)
    return data


def build_gym(out_dir: str | Path, config: GymConfig | None = None) -> GymPaths:
    """Write pool.jsonl, tests/<name>.jsonl, dev/<name>.jsonl, tokenizer/, defects.json and gym.json under ``out_dir``."""
    config = config or GymConfig()
    out = Path(out_dir)
    test_specs = config.design.test_sets
    steps = console.Bar(total=4, desc="build the gym", unit="step")
    pool, defects = generate_pool(config)
    pool_path = write_pool(out / "pool.jsonl", pool)
    defects_path = write_json(out / "defects.json", defects)
    steps.update()
    tests = generate_test_sets(config, pool)
    test_paths = {name: write_jsonl(out / "tests" / f"{name}.jsonl", rows) for name, rows in tests.items()}
    dev_paths = write_dev_sets(out, config, pool, tests)
    steps.update()
    texts = (shared_tokenizer_texts(config) if config.tokenizer == "shared"
             else tokenizer_corpus(pool, config.version, config.prompt_template))
    tokenizer = train_tokenizer(texts, vocab_size=config.vocab_size)
    tok_path = save_tokenizer(tokenizer, out / "tokenizer")
    steps.update()
    defect_counts = {kind: sum(1 for v in defects.values() if v == kind) for kind in DEFECT_KINDS}
    manifest = {
        "config": _recorded(config),
        "config_hash": config_hash(_recorded(config)),
        "pool": {"path": "pool.jsonl", "rows": len(pool), "fingerprint": pool.fingerprint(),
                 "sources": pool.source_counts(), "defects": defect_counts},
        "test_sets": [{"name": spec.name, "path": f"tests/{spec.name}.jsonl", "in_domain": spec.in_domain,
                       "rows": config.test_size, "description": spec.description,
                       "fingerprint": file_fingerprint(test_paths[spec.name])} for spec in test_specs],
        "dev_sets": [{"name": name, "path": f"dev/{name}.jsonl", "rows": config.dev_rows,
                      "fingerprint": file_fingerprint(path)} for name, path in dev_paths.items()],
        "tokenizer": {"path": "tokenizer", "vocab_size": len(tokenizer),
                      **({"source": "shared", "fingerprint": file_fingerprint(tok_path / "tokenizer.json")}
                         if config.tokenizer == "shared" else {})},
        "template": config.prompt_template,
    }
    manifest_path = write_json(out / "gym.json", manifest)
    steps.update()
    steps.close()
    log.info("gym: %d pool rows (%s defective), %d test sets of %d, tokenizer of %d tokens -> %s",
             len(pool), len(defects), len(test_specs), config.test_size, len(tokenizer), out)
    return GymPaths(root=out, pool=pool_path, tests=test_paths, dev=dev_paths, tokenizer=tok_path, manifest=manifest_path,
                    defects=defects_path)
