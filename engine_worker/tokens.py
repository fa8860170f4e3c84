"""Text <-> token ids for what the worker appends to a context (tool results, turn markers)."""

from __future__ import annotations

from functools import cached_property


class TokenCodec:
    def __init__(self, model_path: str):
        self._model_path = model_path
        self._containing: dict[str, frozenset[int]] = {}

    @cached_property
    def _tokenizer(self):
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(self._model_path)

    def encode(self, text: str) -> list[int]:
        """Text the server wrote: the model's special-token strings in it are its control tokens."""
        return list(self._tokenizer.encode(text, add_special_tokens=False))

    def encode_plain(self, text: str) -> list[int]:
        """Text from outside (an API's result): special-token strings in it are plain text, so a
        result cannot end the tool turn or forge another (gateway/guarded_template.py)."""
        return list(self._tokenizer.encode(text, add_special_tokens=False, split_special_tokens=True))

    def encode_tool_turn(self, before: str, content: str, after: str) -> list[int]:
        """A tool turn: the server's markers around an API's result, the result as plain text."""
        return self.encode(before) + self.encode_plain(content) + self.encode(after)

    def decode(self, token_ids: list[int]) -> str:
        return self._tokenizer.decode(token_ids, skip_special_tokens=False)

    def decode_text(self, token_ids: list[int]) -> str:
        """As vLLM's output text shows the tokens (special tokens skipped), less a trailing partial
        character, which vLLM holds back until the next token completes it."""
        return self._tokenizer.decode(token_ids, skip_special_tokens=True).rstrip("\ufffd")

    def ids_containing(self, chars: str) -> frozenset[int]:
        """Every vocabulary token whose text contains one of `chars` (stop sets for forced calls)."""
        if chars not in self._containing:
            pieces = self._tokenizer.batch_decode([[i] for i in range(len(self._tokenizer))])
            self._containing[chars] = frozenset(i for i, p in enumerate(pieces) if any(c in p for c in chars))
        return self._containing[chars]

    def exact_length(self, text: str, length: int | None) -> list[int]:
        """The text's tokens cut or padded (by repeating them) to exactly `length` tokens.

        Scripted requests promise how many tokens a call returns; real APIs do not return text
        of an exact token length, so the worker makes it so.
        """
        ids = self.encode_plain(text)
        if length is None:
            return ids
        if not ids:
            ids = self.encode(" .")
        while len(ids) < length:
            ids = ids + ids
        return ids[:length]
