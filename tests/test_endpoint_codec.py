"""The endpoint's state format (suitcase.aws.endpoint_codec): moto's objects survive it, and a
planted document can name no code. Pure data, no process: fast."""

from __future__ import annotations

import datetime
import json
import threading
from collections import OrderedDict, defaultdict
from typing import Any

import pytest

from suitcase.aws import endpoint_codec as codec


class Model:  # stands in for a moto model class (allowed by module below)
    pass


Model.__module__ = "suitcase.aws.test_models"


@pytest.fixture(autouse=True)
def allowed_module(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    module = types.ModuleType("suitcase.aws.test_models")
    module.Model = Model  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "suitcase.aws.test_models", module)


def round_trip(value: Any, backends: dict[int, Any] | None = None) -> Any:
    text = json.dumps(codec.encode(value, backends or {}))
    return codec.decode(json.loads(text), {("ec2", "123", "us-east-1"): "BACKEND"})


def test_data_and_shared_objects_come_back_as_they_were() -> None:
    shared = Model()
    shared.name = "snap-1"  # type: ignore[attr-defined]
    when = datetime.datetime(2026, 12, 7, 10, 0, tzinfo=datetime.UTC)
    tags: defaultdict[str, dict[str, str]] = defaultdict(dict, {"ami-1": {"k": "v"}})
    value = {
        "a": shared,
        "b": [shared, (1, 2.5, None, True)],
        7: {"set": {1, 2}, "bytes": b"\x00\xff", "when": when},
        "tags": tags,
        "ordered": OrderedDict([("z", 1), ("a", 2)]),
        "lock": threading.Lock(),
    }
    back = round_trip(value)
    assert back["a"] is back["b"][0] and back["a"].name == "snap-1"
    assert back["b"][1] == (1, 2.5, None, True)
    assert back[7] == {"set": {1, 2}, "bytes": b"\x00\xff", "when": when}
    assert isinstance(back["tags"], defaultdict) and back["tags"]["new"] == {}
    assert list(back["ordered"]) == ["z", "a"]
    assert isinstance(back["lock"], type(threading.Lock()))


def test_an_object_pointing_at_its_backend_points_at_the_restored_one() -> None:
    backend = object()
    model = Model()
    model.ec2_backend = backend  # type: ignore[attr-defined]
    back = round_trip(model, {id(backend): ("ec2", "123", "us-east-1")})
    assert back.ec2_backend == "BACKEND"


@pytest.mark.parametrize(
    "planted",
    [
        {"$o": "subprocess:Popen", "id": 0, "a": {}},
        {"$o": "builtins:eval", "id": 0, "a": {}},
        {"$o": "os:system", "id": 0, "a": {}},
        {"$o": "moto.not_imported_module:Thing", "id": 0, "a": {}},
        {"$o": "suitcase.aws.test_models:Model.__init__", "id": 0, "a": {}},
        {"$dd": "eval", "d": []},
        {"$enum": "subprocess:Popen", "v": "x"},
        {"$pickle": "gASV..."},
        {"$r": 5},
        {"$d": [[{"$o": "suitcase.aws.test_models:Model", "id": 0, "a": {}}, 1]]},
    ],
)
def test_a_planted_document_is_refused(planted: dict[str, Any]) -> None:
    with pytest.raises(codec.CodecError):
        codec.decode(planted, {})


def test_a_class_with_its_own_constructor_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[str] = []

    class Sneaky:
        def __new__(cls, *args: Any) -> Sneaky:
            ran.append("__new__")
            return super().__new__(cls)

    Sneaky.__module__ = "suitcase.aws.test_models"
    import sys

    monkeypatch.setattr(sys.modules["suitcase.aws.test_models"], "Sneaky", Sneaky, raising=False)
    with pytest.raises(codec.CodecError, match="makes its own instances"):
        codec.decode({"$o": "suitcase.aws.test_models:Sneaky", "id": 0, "a": {}}, {})
    assert ran == []


def test_what_the_format_cannot_carry_is_refused_when_written() -> None:
    for value in (lambda: 1, open, object(), float("nan"), {Model(): 1}):
        with pytest.raises(codec.CodecError):
            codec.encode(value, {})
