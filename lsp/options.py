"""The user's options: one typed dataclass, parsed leniently, with a settings schema.

Options arrive as `initializationOptions` and later as the `fillpoint` section of
`workspace/didChangeConfiguration`. An invalid value never stops the server: it is
reported (one message per problem) and that option keeps its default.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from fillpoint.completion.types import EngineSettings, MidTokenMode

LogLevel = Literal["error", "warning", "info", "debug"]

SECTION = "fillpoint"  # the settings section clients send, e.g. `fillpoint.maxItems`
MODEL_ENV = "FILLPOINT_MODEL"  # a model folder used when modelPath is not set

_ENGINE_DEFAULTS = EngineSettings()


def _option(default: Any, description: str, **schema: Any) -> Any:
    """A dataclass field whose metadata feeds the settings schema and the validation."""
    return field(default=default, metadata={"description": description, **schema})


@dataclass(frozen=True)
class Options:
    """Everything a user can configure; names match the editor settings (camelCase)."""

    # Field names are the JSON keys, so the schema, parsing and docs share one spelling.

    modelPath: str | None = _option(
        None,
        "Folder of a released model (model.onnx, tokenizer, model card). Empty: the "
        f"folder in the {MODEL_ENV} environment variable, else the model bundled with fillpoint.",
    )
    maxItems: int = _option(
        _ENGINE_DEFAULTS.max_items,
        "Most completion items returned per request.",
        minimum=1,
        maximum=200,
    )
    inline: bool = _option(
        _ENGINE_DEFAULTS.inline, "Offer inline (ghost text) completions of the rest of the line."
    )
    midToken: MidTokenMode = _option(
        _ENGINE_DEFAULTS.mid_token,
        "How a prompt that ends inside a token is handled: 'bytelevel' (exact byte-level "
        "probabilities for the list and the ghost text), 'auto' (exact byte-level ghost text, "
        "token healing for the list), 'healing' (token healing) or 'naive' (as typed).",
        enum=list(get_args(MidTokenMode)),
    )
    lineBeam: int = _option(
        _ENGINE_DEFAULTS.line_beam,
        "Width of the beam search that decodes ghost text: the likeliest line it finds is "
        "shown. Wider finds likelier lines at more CPU per line; 1: greedy decoding, the "
        "fastest (with drafts from the document checked in one model call).",
        minimum=1,
        maximum=8,
    )
    debounceMs: int = _option(
        0,
        "Milliseconds a request waits before inference starts; a newer request for the "
        "same document within this time replaces it without running the model. 0: off.",
        minimum=0,
        maximum=2000,
    )
    prefetch: bool = _option(
        True,
        "While the user pauses after an edit or a request, work ahead of the next request: "
        "warm the models' caches at the cursor and make the completion lists the next "
        "keystroke most likely asks for and the ghost text. Uses idle CPU; false: the "
        "models run for requests only.",
    )
    logLevel: LogLevel = _option(
        "info",
        "Least severe server log messages sent to the editor's output (window/logMessage).",
        enum=list(get_args(LogLevel)),
    )

    def to_engine_settings(self) -> EngineSettings:
        """What the engine needs; without modelPath, $FILLPOINT_MODEL or else the bundled model."""
        return dataclasses.replace(
            _ENGINE_DEFAULTS,
            model_path=self.modelPath or os.environ.get(MODEL_ENV) or None,
            max_items=self.maxItems,
            inline=self.inline,
            mid_token=self.midToken,
            line_beam=self.lineBeam,
        )

    @property
    def python_log_level(self) -> int:
        """The `logging` level that matches `logLevel`."""
        return logging.getLevelNamesMapping()[self.logLevel.upper()]


def _schema_type(f: dataclasses.Field[Any]) -> str | list[str]:
    """The JSON-schema type name(s) of one option."""
    default = f.default
    if f.name == "modelPath":
        return ["string", "null"]
    if isinstance(default, bool):
        return "boolean"
    if isinstance(default, int):
        return "integer"
    return "string"


def settings_schema() -> dict[str, Any]:
    """A JSON schema of all options (type, default, enum, bounds, description)."""
    properties: dict[str, Any] = {}
    for f in dataclasses.fields(Options):
        prop: dict[str, Any] = {"type": _schema_type(f), "default": f.default}
        prop.update(f.metadata)
        properties[f.name] = prop
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "fillpoint settings",
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }


def _check(f: dataclasses.Field[Any], value: Any) -> tuple[Any, str | None]:
    """The value to use for one option and the problem with the given one, if any."""
    schema_type = _schema_type(f)
    bad = f"'{f.name}': {value!r} is not "
    if f.name == "modelPath":
        if value is None or value == "":  # editors send "" for an unset string setting
            return None, None
        if isinstance(value, str):
            return value, None
        return f.default, bad + "a folder path (a string)"
    if schema_type == "boolean":
        if isinstance(value, bool):
            return value, None
        return f.default, bad + "true or false"
    if schema_type == "integer":
        # bool is an int subclass; `true` is not a count. Whole floats (3.0) are fine.
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            return f.default, bad + "a whole number"
        low, high = f.metadata["minimum"], f.metadata["maximum"]
        if not low <= value <= high:
            return f.default, bad + f"between {low} and {high}"
        return value, None
    allowed = f.metadata["enum"]
    if value in allowed:
        return value, None
    return f.default, bad + "one of " + ", ".join(repr(a) for a in allowed)


def parse_options(raw: Any) -> tuple[Options, list[str]]:
    """Options from a client's JSON object, and one message per ignored value.

    Accepts the options themselves or an object holding them under `fillpoint`;
    None means all defaults. Each invalid value falls back to its default.
    """
    if raw is None:
        return Options(), []
    if isinstance(raw, dict) and isinstance(raw.get(SECTION), dict):
        raw = raw[SECTION]
    if not isinstance(raw, dict):
        return Options(), [f"options must be an object, not {type(raw).__name__}"]

    fields = {f.name: f for f in dataclasses.fields(Options)}
    values: dict[str, Any] = {}
    problems: list[str] = []
    for key, value in raw.items():
        f = fields.get(key)
        if f is None:
            problems.append(f"unknown option '{key}' ignored")
            continue
        value, problem = _check(f, value)
        values[key] = value
        if problem is not None:
            problems.append(f"{problem}; using the default {f.default!r}")
    return Options(**values), problems


def format_problems(problems: list[str]) -> str:
    """One user-facing message for all problems found in the options."""
    return "fillpoint: invalid settings: " + "; ".join(problems)
