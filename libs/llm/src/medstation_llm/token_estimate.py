"""Token counts for text no provider counted: the offline model's, or a reply cut short.

English clinical prose averages about four characters per token with the common BPE
tokenizers (cl100k, Llama's), so `ceil(characters / 4)` is close enough for cost and
usage reporting; it is an estimate, never used to enforce a limit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

CHARS_PER_TOKEN = 4


def estimate_tokens(*texts: str | Iterable[str]) -> int:
    """Estimated tokens in the given texts (strings, or iterables of strings)."""
    characters = 0
    for text in texts:
        if isinstance(text, str):
            characters += len(text)
        else:
            characters += sum(len(part) for part in text)
    return math.ceil(characters / CHARS_PER_TOKEN)
