"""User messages of an exact prompt length, as the gateway will count it.

The gateway renders the chat template (with its default system turn) and tokenizes; we do the
same with the served model's own tokenizer (loaded from the model folder, like any client that
counts tokens) so a plan's context stays under the cap. The filler is random common words, drawn
per request: identical prompts would share prefix-cache blocks across requests and hide the
memory pressure the benchmark is about.
"""

from __future__ import annotations

import random
from functools import cached_property
from typing import Any

WORDS = (
    "time year people way day man thing woman life child world school state family student group "
    "country problem hand part place case week company system program question work government "
    "number night point home water room mother area money story fact month lot right study book eye "
    "job word business issue side kind head house service friend father power hour game line end "
    "member law car city community name president team minute idea kid body information back parent "
    "face others level office door health person art war history party result change morning reason "
    "research girl guy moment air teacher force education"
).split()
"""Single tokens (with their leading space) for the SmolLM2 tokenizer; others just count more."""


class PromptBuilder:
    def __init__(self, model_path: str):
        self.model_path = model_path

    @cached_property
    def tokenizer(self) -> Any:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(self.model_path)

    def token_ids(self, content: str) -> list[int]:
        """A one-user-message chat, rendered and tokenized as the gateway does (what stock vLLM
        gets as its prompt, so both systems see the same tokens)."""
        text = self.tokenizer.apply_chat_template([{"role": "user", "content": content}], tokenize=False,
                                                  add_generation_prompt=True)
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def count(self, content: str) -> int:
        """Tokens of a one-user-message chat, rendered and tokenized as the gateway does."""
        return len(self.token_ids(content))

    @cached_property
    def overhead(self) -> int:
        """The chat template's own tokens (system turn, role markers)."""
        return self.count("")

    @property
    def min_tokens(self) -> int:
        return self.overhead + 4

    def build(self, tokens: int, rng: random.Random) -> str:
        """A user message whose templated prompt has `tokens` tokens (at least min_tokens)."""
        words = [rng.choice(WORDS) for _ in range(max(1, tokens - self.overhead))]
        for _ in range(8):  # converges in one step when every word is one token
            excess = self.count(" ".join(words)) - tokens
            if excess == 0 or (excess < 0 and not words):
                break
            if excess > 0:
                del words[len(words) - min(excess, len(words) - 1):]
                if len(words) == 1:
                    break
            else:
                words.extend(rng.choice(WORDS) for _ in range(-excess))
        return " ".join(words)
