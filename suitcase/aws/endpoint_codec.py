"""moto's model objects as plain JSON and back, without running code on the way in.

The embedded endpoint keeps what moto holds (buckets, objects, snapshots, AMIs, tags) in a
store (`suitcase.aws.endpoint_store`). Pickle would be shorter and is refused on purpose: a
pickle names any callable and calls it on load, so whoever can write the state file runs code as
the endpoint's user. This format only names classes, and decoding an object is `__new__` of an
allowed class (moto's models, Suitcase's fixes to them) plus filling its `__dict__`: no
`__init__`, no `__setstate__`, no import, no user-defined `__hash__` (dict keys are plain values).

>>> decode(encode({"a": (1, 2)}, {}), {})
{'a': (1, 2)}
"""

from __future__ import annotations

import base64
import datetime
import enum
import sys
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Callable
from typing import Any

#: Modules whose classes may be named in the state: moto's models and Suitcase's fixes to them
#: (the fixes publish their classes into moto's modules), plus one mapping moto keeps metadata in.
ALLOWED_PREFIXES = ("moto.", "suitcase.aws.")
ALLOWED_CLASSES = frozenset({"requests.structures:CaseInsensitiveDict"})
#: defaultdict factories the state may name (moto uses these).
FACTORIES: dict[str, Callable[[], Any]] = {"dict": dict, "list": list, "set": set, "int": int}
_KEY_TYPES = (str, int, float, bool, type(None))

BackendRef = tuple[str, str, str]  # service, account, region


class CodecError(ValueError):
    """The state holds (or would hold) something this format does not carry."""


def class_name(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _allowed(name: str) -> bool:
    return name in ALLOWED_CLASSES or name.startswith(ALLOWED_PREFIXES)


class Encoder:
    """One pass over a graph of moto objects; shared objects are written once and referenced.

    `backends` names each backend object ({id: (service, account, region)}): an object that
    points at its backend keeps pointing at the restored one. `external` lists attributes kept
    elsewhere ({class name: attribute}; EBS blocks live in a table of their own). `body` turns a
    body object (an S3 object's data, an EBS block's) into JSON, or None if it is not one.
    """

    def __init__(
        self,
        backends: dict[int, BackendRef],
        external: dict[str, str] | None = None,
        body: Callable[[Any], Any] | None = None,
    ) -> None:
        self.backends = backends
        self.external = external or {}
        self.body = body or (lambda value: None)
        self.memo: dict[int, int] = {}
        self.keep: list[Any] = []  # memo keys are ids: keep their objects alive for the pass

    def __call__(self, value: Any) -> Any:
        return self.value(value)

    def value(self, value: Any) -> Any:
        if value is None or isinstance(value, bool | int | str):
            return value
        if isinstance(value, float):
            if value != value or value in (float("inf"), float("-inf")):
                raise CodecError(f"a non-finite float ({value}) has no JSON form")
            return value
        kind = type(value)
        if kind is list:
            return [self.value(v) for v in value]
        if kind is tuple:
            return {"$t": [self.value(v) for v in value]}
        if kind in (set, frozenset):
            return {"$s" if kind is set else "$fs": [self.value(v) for v in value]}
        if kind is bytes:
            return {"$b": base64.b64encode(value).decode()}
        if kind is datetime.datetime:
            return {"$dt": value.isoformat()}
        if kind is datetime.date:
            return {"$date": value.isoformat()}
        if kind is dict:
            return {"$d": self.pairs(value)}
        if kind is OrderedDict:
            return {"$od": self.pairs(value)}
        if kind is defaultdict:
            factory = value.default_factory
            name = getattr(factory, "__name__", None) if factory is not None else None
            if factory is not None and FACTORIES.get(str(name)) is not factory:
                raise CodecError(f"a defaultdict whose factory is {factory!r}")
            return {"$dd": name, "d": self.pairs(value)}
        if id(value) in self.backends:
            return {"$be": list(self.backends[id(value)])}
        if kind in (type(threading.Lock()), type(threading.RLock())):
            return {"$lock": "rlock" if kind is type(threading.RLock()) else "lock"}
        body = self.body(value)
        if body is not None:
            return body
        if isinstance(value, enum.Enum):
            return {"$enum": class_name(kind), "v": value.name}
        return self.object(value)

    def pairs(self, mapping: dict[Any, Any]) -> list[list[Any]]:
        out = []
        for key, item in dict.items(mapping):  # dict's own items: no overridden __getitem__
            if not isinstance(key, _KEY_TYPES) and not _plain_tuple(key):
                raise CodecError(f"a mapping key of type {type(key).__name__}")
            out.append([self.value(key), self.value(item)])
        return out

    def object(self, value: Any) -> Any:
        kind = type(value)
        name = class_name(kind)
        if not _allowed(name):
            raise CodecError(f"an object of class {name}, which the state does not carry")
        if id(value) in self.memo:
            return {"$r": self.memo[id(value)]}
        number = len(self.memo)
        self.memo[id(value)] = number
        self.keep.append(value)
        try:
            attributes = vars(value)
        except TypeError:
            raise CodecError(f"an object of class {name} without a __dict__") from None
        skip = self.external.get(name)
        encoded: dict[str, Any] = {"$o": name, "id": number}
        encoded["a"] = {k: self.value(v) for k, v in attributes.items() if k != skip}
        if isinstance(value, dict):
            encoded["d"] = self.pairs(value)
        return encoded


def _plain_tuple(key: Any) -> bool:
    return type(key) is tuple and all(isinstance(k, _KEY_TYPES) for k in key)


def encode(
    value: Any,
    backends: dict[int, BackendRef],
    external: dict[str, str] | None = None,
    body: Callable[[Any], Any] | None = None,
) -> Any:
    """`value` as JSON-ready data (see Encoder)."""
    return Encoder(backends, external, body)(value)


class Decoder:
    """The inverse of Encoder: `backend(ref)` gives the live backend an object pointed at,
    `body(json)` the body object for a `$body` entry."""

    def __init__(
        self,
        backend: Callable[[BackendRef], Any],
        body: Callable[[Any], Any] | None = None,
    ) -> None:
        self.backend = backend
        self.body = body
        self.memo: dict[int, Any] = {}

    def __call__(self, data: Any) -> Any:
        return self.value(data)

    def value(self, data: Any) -> Any:
        if data is None or isinstance(data, bool | int | float | str):
            return data
        if isinstance(data, list):
            return [self.value(v) for v in data]
        if not isinstance(data, dict) or len(data) == 0:
            raise CodecError(f"unexpected {type(data).__name__} in the state")
        tag = next(iter(data))
        item = data[tag]
        if tag == "$t":
            return tuple(self.value(v) for v in _list(item))
        if tag == "$s":
            return {self.key(v) for v in _list(item)}
        if tag == "$fs":
            return frozenset(self.key(v) for v in _list(item))
        if tag == "$b":
            return base64.b64decode(_str(item), validate=True)
        if tag == "$dt":
            return datetime.datetime.fromisoformat(_str(item))
        if tag == "$date":
            return datetime.date.fromisoformat(_str(item))
        if tag == "$d":
            return self.mapping({}, item)
        if tag == "$od":
            return self.mapping(OrderedDict(), item)
        if tag == "$dd":
            factory = None if item is None else FACTORIES.get(_str(item))
            if item is not None and factory is None:
                raise CodecError(f"a defaultdict factory {item!r} the state may not name")
            return self.mapping(defaultdict(factory), data.get("d", []))
        if tag == "$be":
            ref = _list(item)
            if len(ref) != 3 or not all(isinstance(x, str) for x in ref):
                raise CodecError(f"a malformed backend reference {ref!r}")
            return self.backend((ref[0], ref[1], ref[2]))
        if tag == "$lock":
            return threading.RLock() if item == "rlock" else threading.Lock()
        if tag == "$r":
            if not isinstance(item, int) or item not in self.memo:
                raise CodecError(f"a reference to an object not yet seen ({item!r})")
            return self.memo[item]
        if tag == "$enum":
            cls = resolve(_str(item))
            if not issubclass(cls, enum.Enum):
                raise CodecError(f"{item} is not an enumeration")
            return cls[_str(data.get("v"))]
        if tag == "$body" and self.body is not None:
            return self.body(item)
        if tag == "$o":
            return self.object(data)
        raise CodecError(f"an entry tagged {tag!r}, which the state format does not have")

    def key(self, data: Any) -> Any:
        value = self.value(data)
        if not isinstance(value, _KEY_TYPES) and not _plain_tuple(value):
            raise CodecError(f"a mapping key or set member of type {type(value).__name__}")
        return value

    def mapping(self, into: dict[Any, Any], pairs: Any) -> dict[Any, Any]:
        for pair in _list(pairs):
            if not isinstance(pair, list) or len(pair) != 2:
                raise CodecError("a malformed mapping entry")
            _store(into, self.key(pair[0]), self.value(pair[1]))
        return into

    def object(self, data: dict[str, Any]) -> Any:
        cls: Any = resolve(_str(data["$o"]))
        number = data.get("id")
        if not isinstance(number, int) or number in self.memo:
            raise CodecError(f"a malformed object id {number!r}")
        if issubclass(cls, dict):
            if cls.__new__ is not dict.__new__:
                raise CodecError(f"{data['$o']} makes its own instances")
            obj = dict.__new__(cls)
        else:
            if cls.__new__ is not object.__new__ and cls.__new__ not in _tracking_new():
                raise CodecError(f"{data['$o']} makes its own instances")
            obj = object.__new__(cls)  # moto's tracking __new__ only lists instances: skipped
        self.memo[number] = obj  # before its attributes: they may point back at it
        attributes = data.get("a", {})
        if not isinstance(attributes, dict):
            raise CodecError(f"malformed attributes of {data['$o']}")
        try:
            state = vars(obj)
        except TypeError:
            raise CodecError(f"{data['$o']} has no __dict__") from None
        for name, value in attributes.items():
            state[name] = self.value(value)
        if isinstance(obj, dict):
            self.mapping(obj, data.get("d", []))
        return obj


def _store(into: dict[Any, Any], key: Any, value: Any) -> None:
    """Set an entry below any subclass's own __setitem__ (moto's key store wraps values in
    lists), but through OrderedDict's, which keeps its order beside the dict (C code, no hook)."""
    if isinstance(into, OrderedDict):
        OrderedDict.__setitem__(into, key, value)
    else:
        dict.__setitem__(into, key, value)


def _tracking_new() -> tuple[Any, ...]:
    """moto's BaseModel.__new__, which only appends the instance to a class list."""
    models = sys.modules.get("moto.core.common_models")
    return (models.BaseModel.__new__,) if models is not None else ()


def resolve(name: str) -> type:
    """The class `module:qualname`, from a module already imported; never imports one."""
    if not _allowed(name) or ":" not in name:
        raise CodecError(f"class {name} is not one the state may name")
    module_name, qualname = name.split(":", 1)
    found: Any = sys.modules.get(module_name)
    if found is None:
        raise CodecError(f"class {name}: module {module_name} is not loaded")
    for part in qualname.split("."):
        if part.startswith("__"):
            raise CodecError(f"class {name} is not one the state may name")
        found = getattr(found, part, None)
    if not isinstance(found, type):
        raise CodecError(f"{name} is not a class this moto has")
    return found


def decode(
    data: Any, backends: dict[BackendRef, Any], body: Callable[[Any], Any] | None = None
) -> Any:
    """JSON-ready data back into objects; `backends` maps references to live backends."""

    def backend(ref: BackendRef) -> Any:
        if ref not in backends:
            raise CodecError(f"a reference to backend {ref}, which is not restored")
        return backends[ref]

    return Decoder(backend, body)(data)


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise CodecError(f"expected a list, found {type(value).__name__}")
    return value


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise CodecError(f"expected a string, found {type(value).__name__}")
    return value
