"""Structured outputs as clients ask for them: OpenAI's `response_format`, vLLM's
`structured_outputs` extra and its older `guided_*` fields, all become one
common.schemas.StructuredOutput that the worker hands to vLLM's structured-output backend.

Checked here, so a bad constraint is a 400 naming its field, not an engine failure: a JSON
schema must be a valid schema (its own metaschema), a regex must compile. A grammar is checked
by vLLM when the worker submits it (a 400 too: engine_worker/main.py).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from jsonschema import SchemaError
from jsonschema.validators import validator_for
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from common.schemas import StructuredOutput

MAX_CONSTRAINT_CHARS = 65536


def checked_schema(schema: Any) -> dict[str, Any]:
    if not isinstance(schema, dict):
        raise ValueError("a JSON schema must be an object")
    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        raise ValueError(f"not a valid JSON schema: {exc.message}") from exc
    return schema


def checked_regex(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from exc
    return pattern


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class JsonSchemaFormat(_Wire):
    name: Annotated[str, Field(min_length=1, max_length=64)] = "response"
    description: str | None = None
    schema_: Annotated[dict[str, Any], Field(alias="schema")] = Field(default_factory=lambda: {"type": "object"})
    strict: bool | None = None

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)

    _valid = field_validator("schema_")(checked_schema)


class ResponseFormat(_Wire):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None

    @model_validator(mode="after")
    def _schema_given(self) -> ResponseFormat:
        if self.type == "json_schema" and self.json_schema is None:
            raise ValueError('type "json_schema" needs a json_schema object ({"name", "schema", "strict"})')
        return self


class StructuredOutputsField(_Wire):
    """vLLM's `structured_outputs` extra body field (one constraint)."""

    json_: Annotated[dict[str, Any] | str | None, Field(alias="json")] = None
    json_object: bool | None = None
    regex: Annotated[str, Field(max_length=MAX_CONSTRAINT_CHARS)] | None = None
    choice: Annotated[list[str], Field(min_length=1, max_length=256)] | None = None
    grammar: Annotated[str, Field(min_length=1, max_length=MAX_CONSTRAINT_CHARS)] | None = None
    disable_any_whitespace: bool = False

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)

    _regex = field_validator("regex")(lambda cls, v: None if v is None else checked_regex(v))

    @field_validator("json_")
    @classmethod
    def _json(cls, value: dict[str, Any] | str | None) -> dict[str, Any] | None:
        if isinstance(value, str):
            import json

            try:
                value = json.loads(value)
            except ValueError as exc:
                raise ValueError(f"not JSON: {exc}") from exc
        return None if value is None else checked_schema(value)

    @model_validator(mode="after")
    def _exactly_one(self) -> StructuredOutputsField:
        given = [n for n in ("json_", "json_object", "regex", "choice", "grammar") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of json, json_object, regex, choice, grammar "
                             f"(got {[g.rstrip('_') for g in given] or 'none'})")
        return self

    def constraint(self) -> StructuredOutput:
        return StructuredOutput(json_schema=self.json_, json_object=self.json_object, regex=self.regex,
                                choice=self.choice, grammar=self.grammar, compact=self.disable_any_whitespace)


class StructuredFields(BaseModel):
    """The request fields that constrain the output; the base of the request models."""

    model_config = ConfigDict(extra="ignore", strict=True)

    response_format: ResponseFormat | None = None
    structured_outputs: StructuredOutputsField | None = None
    # vLLM's older names for the same (before `structured_outputs`).
    guided_json: dict[str, Any] | None = None
    guided_regex: Annotated[str, Field(max_length=MAX_CONSTRAINT_CHARS)] | None = None
    guided_choice: Annotated[list[str], Field(min_length=1, max_length=256)] | None = None
    guided_grammar: Annotated[str, Field(min_length=1, max_length=MAX_CONSTRAINT_CHARS)] | None = None

    _schema = field_validator("guided_json")(lambda cls, v: None if v is None else checked_schema(v))
    _regex = field_validator("guided_regex")(lambda cls, v: None if v is None else checked_regex(v))

    def constraints_given(self) -> list[str]:
        """The fields that constrain the output (more than one is refused: GenerationFields.conflict)."""
        given = [n for n in ("structured_outputs", "guided_json", "guided_regex", "guided_choice", "guided_grammar")
                 if getattr(self, n) is not None]
        if self.response_format is not None and self.response_format.type != "text":
            given.insert(0, "response_format")
        return given

    def output_constraint(self) -> StructuredOutput | None:
        """The one constraint on the answer, or None (free text)."""
        rf = self.response_format
        if rf is not None and rf.type == "json_object":
            return StructuredOutput(json_object=True)
        if rf is not None and rf.type == "json_schema":
            assert rf.json_schema is not None
            return StructuredOutput(json_schema=rf.json_schema.schema_)
        if self.structured_outputs is not None:
            return self.structured_outputs.constraint()
        if self.guided_json is not None:
            return StructuredOutput(json_schema=self.guided_json)
        if self.guided_regex is not None:
            return StructuredOutput(regex=self.guided_regex)
        if self.guided_choice is not None:
            return StructuredOutput(choice=self.guided_choice)
        if self.guided_grammar is not None:
            return StructuredOutput(grammar=self.guided_grammar)
        return None
