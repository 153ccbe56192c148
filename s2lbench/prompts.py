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
#: findings -> impression; the instruction that every radiology example carries
RADIOLOGY_INSTRUCTION = "Summarize the findings of this radiology report into an impression."

TEMPLATES = {"alpaca": (ALPACA_NO_INPUT, ALPACA_WITH_INPUT)}


def render_prompt(template: str, instruction: str, input: str = "") -> str:
    """The prompt for an example; the response follows it directly (as in S2L's and MAmmoTH's training code)."""
    try:
        no_input, with_input = TEMPLATES[template]
    except KeyError:
        raise ConfigError(f"unknown prompt template {template!r}; known: {', '.join(TEMPLATES)}") from None
    if input:
        return with_input.format(instruction=instruction, input=input)
    return no_input.format(instruction=instruction)
