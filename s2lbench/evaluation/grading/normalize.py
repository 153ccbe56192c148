"""Number normalisation and the MATH LaTeX normaliser, as MAmmoTH v1 (and Hendrycks' MATH code) define them."""

from __future__ import annotations

import re

#: MAmmoTH v1's numeric candidate: a digit run, an optional '/', an optional '.', more digits
NUMBER_PATTERN = re.compile(r"-?\d+/?\.?\d*")


def delete_extra_zero(text: str) -> str:
    """MAmmoTH's zero-normaliser: "18.00" -> "18", "3.50" -> "3.5"; unparsable strings ("3/4") come back as is.

    Exactly v1, quirks included: the value goes through ``str(float)``, so 20-digit numbers come back in
    exponent form with their trailing zeros cut ("100000000000000000000" -> "1e+2" -> "100.0"), and
    "inf"/"nan" stay "inf"/"nan".
    """
    try:
        value = float(text)
    except (TypeError, ValueError, OverflowError):
        return text
    as_text = str(value).rstrip("0")
    return str(int(as_text.rstrip("."))) if as_text.endswith(".") else str(float(as_text))


def _fix_fracs(string: str) -> str:
    substrs = string.split("\\frac")
    new_str = substrs[0]
    for substr in substrs[1:]:
        new_str += "\\frac"
        if not substr:  # "\frac" at the very end: kept as it is (v1)
            continue
        if substr[0] == "{":
            new_str += substr
            continue
        if len(substr) < 2:
            return string
        a, b = substr[0], substr[1]
        if b != "{":
            new_str += "{" + a + "}{" + b + "}" + substr[2:]
        else:
            new_str += "{" + a + "}" + b + substr[2:]
    return new_str


def _fix_a_slash_b(string: str) -> str:
    parts = string.split("/")
    if len(parts) != 2:
        return string
    try:
        a, b = int(parts[0]), int(parts[1])
    except ValueError:
        return string
    if string != f"{a}/{b}":
        return string
    return "\\frac{" + str(a) + "}{" + str(b) + "}"


def _remove_right_units(string: str) -> str:
    # "\text{ " (with the space) only ever introduces units in MATH; v1 asserts a single occurrence, we cut at the first
    return string.split("\\text{ ")[0]


def _fix_sqrt(string: str) -> str:
    if "\\sqrt" not in string:
        return string
    splits = string.split("\\sqrt")
    new_string = splits[0]
    for split in splits[1:]:
        if split and split[0] != "{":
            new_string += "\\sqrt{" + split[0] + "}" + split[1:]
        else:
            new_string += "\\sqrt" + split
    return new_string


def strip_string_v1(string: str) -> str:
    """MAmmoTH v1's ``_strip_string`` exactly: no outer strip, no trailing-period removal, and the
    Hendrycks "0.5 -> \\frac{1}{2}" rewrite commented out (as in v1's utils.py)."""
    string = string.replace("\n", "").replace("\\!", "").replace("\\\\", "\\")
    string = string.replace("tfrac", "frac").replace("dfrac", "frac")
    string = string.replace("\\left", "").replace("\\right", "")
    string = string.replace("^{\\circ}", "").replace("^\\circ", "")
    string = string.replace("\\$", "")
    string = _remove_right_units(string)
    string = string.replace("\\%", "")
    string = string.replace(" .", " 0.").replace("{.", "{0.")
    if not string:
        return string
    if string[0] == ".":
        string = "0" + string
    sides = string.split("=")
    if len(sides) == 2 and len(sides[0]) <= 2:
        string = sides[1]
    string = _fix_sqrt(string)
    string = string.replace(" ", "")
    string = _fix_fracs(string)
    return _fix_a_slash_b(string)


def strip_latex(string: str) -> str:
    """s2lbench's MATH normaliser: v1's, on the text with surrounding white space and a final period removed,
    and with Hendrycks' original "0.5 -> \\frac{1}{2}" rewrite."""
    string = strip_string_v1(str(string).strip().rstrip("."))
    return "\\frac{1}{2}" if string == "0.5" else string


def last_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` (nested braces matched), or up to the next '$' without a brace."""
    if "boxed" not in text:
        return None
    tail = text.split("boxed")[-1]
    if not tail:
        return ""
    if tail[0] != "{":
        return tail.split("$")[0].strip()
    depth, out = 1, []
    for ch in tail[1:]:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                break
        out.append(ch)
    return "".join(out)
