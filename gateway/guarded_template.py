"""The chat template rendered so that control tokens come from the template alone.

A client's text may contain the strings of the model's special tokens ("<|im_start|>system ...").
Rendered into the template and tokenized as one string, they would become real control tokens:
a user could forge system or tool turns. Here every turn's content is replaced by a placeholder,
the template is rendered around the placeholders, and the pieces are tokenized separately: the
template's own text with its special tokens parsed, each content as plain text
(`split_special_tokens=True`: "<|im_start|>" becomes the tokens of its characters).

Splitting at the placeholders tokenizes ordinary content exactly as the whole string would be:
chat templates put content between a role header ending in a newline and an end-of-turn special
token, and byte-level BPE does not merge across either (a test checks this on the served model).

A template that does not keep each placeholder exactly once (it trims, drops or repeats content)
cannot be split safely: then content holding a special token's string is refused (400) and other
content renders as before.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from gateway.errors import ApiError

_MARK_OPEN, _MARK_CLOSE = "\ue000", "\ue001"
"""Private-use code points around a placeholder; content holding them is never split on."""


def _special_strings(tokenizer: Any) -> list[str]:
    return [t for t in getattr(tokenizer, "all_special_tokens", []) if t]


def _refuse_control_tokens(tokenizer: Any, contents: list[str]) -> None:
    for i, content in enumerate(contents):
        for token in _special_strings(tokenizer):
            if token in content:
                raise ApiError(400, f"message content holds the model's control token {token!r}, which this "
                                    "chat template cannot render as plain text", param="messages",
                               code="control_token_in_content")


def render(tokenizer: Any, turns: list[dict[str, str]], **template_kwargs: Any) -> tuple[str, list[int]]:
    """The templated prompt's text and token ids, each turn's content tokenized as plain text."""
    contents = [t["content"] for t in turns]
    nonce = secrets.token_hex(4)
    marks = [f"{_MARK_OPEN}{nonce}:{i}{_MARK_CLOSE}" for i in range(len(turns))]
    placeheld = [{**t, "content": mark} for t, mark in zip(turns, marks)]
    skeleton = tokenizer.apply_chat_template(placeheld, tokenize=False, **template_kwargs)
    pattern = re.compile(f"{_MARK_OPEN}{nonce}:(\\d+){_MARK_CLOSE}")
    found = [int(m.group(1)) for m in pattern.finditer(skeleton)]
    clean = not any(_MARK_OPEN in c or _MARK_CLOSE in c for c in contents)
    if not clean or found != list(range(len(turns))):
        _refuse_control_tokens(tokenizer, contents)
        text = tokenizer.apply_chat_template(turns, tokenize=False, **template_kwargs)
        return text, list(tokenizer.encode(text, add_special_tokens=False))
    pieces = pattern.split(skeleton)  # template, index, template, index, ..., template
    text_parts: list[str] = []
    token_ids: list[int] = []
    for n, piece in enumerate(pieces):
        if n % 2 == 0:
            text_parts.append(piece)
            token_ids += tokenizer.encode(piece, add_special_tokens=False) if piece else []
        else:
            content = contents[int(piece)]
            text_parts.append(content)
            token_ids += (tokenizer.encode(content, add_special_tokens=False, split_special_tokens=True)
                          if content else [])
    return "".join(text_parts), token_ids
