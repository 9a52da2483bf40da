"""Options: parsing, fallbacks with messages, engine settings, schema."""

from __future__ import annotations

import dataclasses
import json

import pytest

from fillpoint.completion.types import EngineSettings
from fillpoint.lsp.options import (
    MODEL_ENV,
    Options,
    format_problems,
    parse_options,
    settings_schema,
)


def test_none_gives_defaults() -> None:
    assert parse_options(None) == (Options(), [])
    assert parse_options({}) == (Options(), [])


def test_valid_values_are_taken() -> None:
    raw = {
        "modelPath": "/models/x",
        "maxItems": 7,
        "inline": False,
        "midToken": "bytelevel",
        "lineBeam": 1,
        "debounceMs": 40,
        "logLevel": "debug",
    }
    options, problems = parse_options(raw)
    assert problems == []
    assert options == Options(**raw)


def test_section_wrapper_is_accepted() -> None:
    options, problems = parse_options({"fillpoint": {"maxItems": 3}})
    assert (options.maxItems, problems) == (3, [])


@pytest.mark.parametrize(
    ("key", "value", "mention"),
    [
        ("maxItems", "ten", "whole number"),
        ("maxItems", 0, "between 1 and"),
        ("maxItems", True, "whole number"),
        ("inline", "yes", "true or false"),
        ("midToken", "bytes", "'bytelevel'"),
        ("debounceMs", -5, "between 0 and"),
        ("lineBeam", 0, "between 1 and"),
        ("logLevel", "loud", "'debug'"),
        ("modelPath", 42, "folder path"),
    ],
)
def test_invalid_value_falls_back_to_its_default(key: str, value: object, mention: str) -> None:
    options, problems = parse_options({key: value})
    assert getattr(options, key) == getattr(Options(), key)
    assert len(problems) == 1
    assert key in problems[0] and mention in problems[0] and "default" in problems[0]


def test_other_values_survive_one_bad_value() -> None:
    options, problems = parse_options({"maxItems": "x", "midToken": "naive"})
    assert options.midToken == "naive" and options.maxItems == Options().maxItems
    assert len(problems) == 1


def test_unknown_keys_and_non_objects_are_reported() -> None:
    options, problems = parse_options({"maxitems": 3})
    assert options == Options() and "unknown option 'maxitems'" in problems[0]
    options, problems = parse_options(["not", "an", "object"])
    assert options == Options() and "must be an object" in problems[0]


def test_empty_model_path_means_bundled() -> None:
    options, problems = parse_options({"modelPath": ""})
    assert options.modelPath is None and problems == []


def test_whole_floats_are_integers() -> None:
    assert parse_options({"debounceMs": 50.0})[0].debounceMs == 50
    assert parse_options({"debounceMs": 50.5})[1]


def test_format_problems_is_one_line() -> None:
    message = format_problems(["a", "b"])
    assert message.startswith("fillpoint:") and "\n" not in message


def test_to_engine_settings() -> None:
    options = Options(modelPath="/m", maxItems=5, inline=False, midToken="naive", lineBeam=1)
    settings = options.to_engine_settings()
    assert settings == dataclasses.replace(
        EngineSettings(),
        model_path="/m",
        max_items=5,
        inline=False,
        mid_token="naive",
        line_beam=1,
    )
    assert dataclasses.replace(Options().to_engine_settings(), model_path=None) == EngineSettings()


def test_model_path_falls_back_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MODEL_ENV, "/from/env")
    assert Options().to_engine_settings().model_path == "/from/env"
    assert Options(modelPath="/chosen").to_engine_settings().model_path == "/chosen"
    monkeypatch.delenv(MODEL_ENV)
    assert Options().to_engine_settings().model_path is None


def test_schema_describes_every_option() -> None:
    schema = settings_schema()
    json.dumps(schema)  # plain JSON, so editor clients can embed or check against it
    names = {f.name for f in dataclasses.fields(Options)}
    assert set(schema["properties"]) == names
    for name, prop in schema["properties"].items():
        assert prop["default"] == getattr(Options(), name)
        assert prop["description"] and prop["type"]
    assert schema["properties"]["midToken"]["enum"] == ["auto", "bytelevel", "healing", "naive"]
    assert schema["properties"]["inline"]["type"] == "boolean"
    assert schema["properties"]["maxItems"]["minimum"] == 1


def test_schema_defaults_parse_cleanly() -> None:
    defaults = {k: p["default"] for k, p in settings_schema()["properties"].items()}
    assert parse_options(defaults) == (Options(), [])
