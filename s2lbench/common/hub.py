"""Load tokenizers and models from a local folder or the Hugging Face hub, with one-line errors.

A local path that does not exist, a folder whose tokenizer files are not valid JSON, a hub id that is not
on the hub, or a hub that cannot be reached: each is a ``ConfigError`` naming the path or id (and, for an
unreachable hub, saying how to work offline), never a traceback.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from s2lbench.errors import ConfigError, hub_hint, is_hub_unreachable


def looks_local(spec: str) -> bool:
    """A path rather than a hub id: it exists, or is absolute, starts with ./ ~ or .., or has a file suffix."""
    text = str(spec)
    return (Path(text).exists() or text.startswith(("/", "./", "../", "~", ".\\")) or text.count("/") > 1
            or Path(text).suffix in (".json", ".gguf", ".model"))


def load_pretrained(loader: Callable[..., Any], spec: str | os.PathLike, what: str, **kwargs: Any) -> Any:
    """``loader(spec, **kwargs)`` (e.g. ``AutoTokenizer.from_pretrained``) with errors that name ``spec``."""
    text = str(spec)
    if looks_local(text) and not Path(text).expanduser().exists():
        raise ConfigError(f"{what} {text!r}: no such file or folder")
    try:
        return loader(text, **kwargs)
    except ConfigError:
        raise
    except Exception as e:  # transformers and tokenizers raise OSError, ValueError or plain Exception
        message = " ".join(str(e).split())[:300]
        if is_hub_unreachable(e) or "offline" in message.lower() and not looks_local(text):
            raise ConfigError(f"{what} {text!r}: {hub_hint()}") from None
        if isinstance(e, (OSError, ValueError, KeyError, TypeError)) or type(e) is Exception or \
                "json" in message.lower() or isinstance(e, UnicodeDecodeError):
            raise ConfigError(f"{what} {text!r}: cannot load it ({type(e).__name__}: {message})") from None
        raise


def load_tokenizer(spec: str | os.PathLike, **kwargs: Any) -> Any:
    from transformers import AutoTokenizer

    return load_pretrained(AutoTokenizer.from_pretrained, spec, "tokenizer", **kwargs)
