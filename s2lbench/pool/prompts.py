"""Every prompt template in one place: the S2L/Alpaca templates and the radiology summarization template."""

from __future__ import annotations

from s2lbench.errors import ConfigError

ALPACA_NO_INPUT = (
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Response:"
)
ALPACA_WITH_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:"
)
#: a two-line question/answer template for short synthetic problems (gym v2): the Alpaca header is about a
#: third of a gym row's tokens, and a stand-in domain gains nothing from it
QA_NO_INPUT = "Q: {instruction}\nA:"
QA_WITH_INPUT = "Q: {instruction}\n{input}\nA:"
#: findings -> impression; the instruction that every radiology example carries
RADIOLOGY_INSTRUCTION = "Summarize the findings of this radiology report into an impression."

TEMPLATES = {"alpaca": (ALPACA_NO_INPUT, ALPACA_WITH_INPUT), "qa": (QA_NO_INPUT, QA_WITH_INPUT)}
#: where a template's response starts (IFD's "response alone" keeps it) and what starts the next prompt
#: (a stop sequence for generation)
RESPONSE_HEADERS = {"alpaca": "### Response:", "qa": "A:"}
NEXT_PROMPT = {"alpaca": "### Instruction", "qa": "\nQ:"}


def check_template(template: str) -> str:
    if template not in TEMPLATES:
        raise ConfigError(f"unknown prompt template {template!r}; known: {', '.join(TEMPLATES)}")
    return template


def render_prompt(template: str, instruction: str, input: str = "") -> str:
    """The prompt for an example; the response follows it directly (as in S2L's and MAmmoTH's training code)."""
    no_input, with_input = TEMPLATES[check_template(template)]
    if input:
        return with_input.format(instruction=instruction, input=input)
    return no_input.format(instruction=instruction)
