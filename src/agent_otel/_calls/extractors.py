"""Extractors: where a keyword's value comes from when it is not a literal.

A keyword of a decorator (or a config entry) is either a literal or an extractor, and the two can
never be confused: an extractor is a :class:`Path` made with :func:`path` (or written ``{ path =
"..." }`` in config) or a plain callable taking the :class:`Call`. Paths are parsed here by a small
grammar, never evaluated as Python:

    path   := root step*
    root   := "args" "." NAME | "self" | "result" | "error"
    step   := "." NAME | "[" INT "]" | "[" QUOTED "]"

A ``NAME`` step reads an attribute, or a key of a mapping. A missing step yields ``None``. A ``NAME``
starting with ``__`` is refused: dunder attributes lead from any object to code, module globals and
``os.environ`` (``self.__init__.__globals__``), and a path must only read the program's data. So are the
interpreter's own attributes that lead there without a dunder (:data:`INTERNAL_NAMES`: a generator's
``gi_frame``, a frame's ``f_globals``...), and a step never reads an attribute of a module, frame, code object or
traceback it reaches (``self.helpers.os.environ``): it finds nothing there.

A path may also say *when* it is read (``at="start"`` or ``"end"``; the default is the key's own),
read a running total as the difference across the call (``delta=True``), or test the value it reads
(``equals=``, ``in_=``, ``not_in=``; it then yields a boolean, for outcome keys and conditions).
"""

from __future__ import annotations

import inspect
import re
import types
from collections.abc import Callable, Collection, Mapping
from typing import Any, Literal

import wrapt

from agent_otel._engine.self_telemetry import report_error
from agent_otel.errors import ConfigurationError

_NAME = re.compile(r"[^\W\d]\w*")  # a Python identifier, non-ASCII letters too (``def f(größe)``)
_INT = re.compile(r"-?[0-9]+")
_ROOTS = ("args", "self", "result", "error")
_MISSING = object()

When = Literal["start", "end"]


def starts_as_path(text: str) -> bool:
    """Whether ``text`` begins as an extractor path does (a root, then a step or nothing): ``"result.success"``, not
    ``"high"``."""
    root = text.split(".", 1)[0].split("[", 1)[0]
    return root in _ROOTS


def _with_keywords_gathered(signature: inspect.Signature, arguments: dict[str, Any]) -> dict[str, Any]:
    """Arguments by parameter name, and the keyword arguments a ``**kwargs`` parameter gathered by their own names
    (a parameter of that name wins): ``args.model`` of ``def completion(self, *args, **kwargs)``, the shape of many
    SDK entry points, read None, and the label was always "unknown"."""
    found = dict(arguments)
    for name, parameter in signature.parameters.items():
        if parameter.kind is parameter.VAR_KEYWORD:
            for key, value in arguments.get(name, {}).items():
                found.setdefault(key, value)
    return found


class Call:
    """What an extractor can see of one call, while the call is recorded: it lets go of the program's objects as the
    call ends (:meth:`release`). Arguments are bound lazily (binding costs µs)."""

    __slots__ = ("_args", "_bound_args", "_kwargs", "_signature", "early", "error", "instance", "left_by", "result")

    def __init__(self, signature: inspect.Signature | None, instance: Any, args: tuple[Any, ...],
                 kwargs: dict[str, Any], method: bool = False) -> None:
        if method and instance is None and args:  # ``Class.method(obj, ...)``: obj is self, as from ``obj``
            instance, args = args[0], args[1:]
        self._signature = signature
        self.instance = instance
        self._args = args
        self._kwargs = kwargs
        self._bound_args: dict[str, Any] | None = None
        self.result: Any = None
        self.error: BaseException | None = None
        self.early: dict[str, Any] | None = None  # values read when the call started (``at``, ``delta``)
        #: A framework's control-flow exception that left the call (a pause): it has no result to read
        self.left_by: BaseException | None = None

    @property
    def args(self) -> dict[str, Any]:
        """Arguments by parameter name, whether passed by position or keyword, defaults applied."""
        if self._bound_args is None:
            if self._signature is None:
                self._bound_args = dict(self._kwargs)
            else:
                try:
                    # wrapt hands methods and classmethods over with self/cls as `instance`
                    args = self._args if self.instance is None else (self.instance, *self._args)
                    bound = self._signature.bind(*args, **self._kwargs)
                    bound.apply_defaults()
                    self._bound_args = _with_keywords_gathered(self._signature, bound.arguments)
                except TypeError:
                    self._bound_args = dict(self._kwargs)
        return self._bound_args

    def release(self) -> None:
        """Let go of the program's objects (arguments, instance, result, error, values read at the start) once
        the call is recorded, as the engine does when a call ends: an invocation its own context holds (a provider
        call, an evolution run: nested calls find it there), and the error of any call (its traceback holds our
        wrapper's frame, which holds the invocation), are in a reference cycle, which would keep them alive until a
        GC cycle, where without agent-otel they are freed as the call ends (a client closed, a lock let go)."""
        self.instance = self.result = self.error = self.early = self.left_by = None
        self._args, self._kwargs, self._bound_args = (), {}, {}


#: How a path can test the value it reads: the name of the comparison, and the check.
COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "equals": lambda value, expected: bool(value == expected),
    "in": lambda value, expected: value in expected,
    "not_in": lambda value, expected: value not in expected,
}


class Path:
    """A parsed extractor path. Create with :func:`path`."""

    __slots__ = ("at", "comparison", "delta", "expected", "root", "steps", "text")

    def __init__(self, text: str, root: str, steps: tuple[tuple[str, Any], ...], *, at: When | None = None,
                 delta: bool = False, comparison: str | None = None, expected: Any = None) -> None:
        self.text = text
        self.root = root
        self.steps = steps
        self.at = at
        self.delta = delta
        self.comparison = comparison
        self.expected = expected

    def _key(self) -> tuple[Any, ...]:
        expected = tuple(self.expected) if isinstance(self.expected, list) else self.expected
        return self.text, self.at, self.delta, self.comparison, expected

    def __repr__(self) -> str:
        keyword = _KEYWORDS.get(self.comparison or "", "")
        given = (("at", self.at), ("delta", self.delta or None), (keyword, self.expected if keyword else None))
        extra = "".join(f", {name}={value!r}" for name, value in given if value is not None)
        return f"path({self.text!r}{extra})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Path) and other._key() == self._key()

    def __hash__(self) -> int:
        return hash(self.text)

    @property
    def needs_result(self) -> bool:
        return self.root in ("result", "error")

    def __call__(self, call: Call) -> Any:
        value = self.read(call)
        if self.comparison is None:
            return value
        return COMPARISONS[self.comparison](value, self.expected)

    def read(self, call: Call) -> Any:
        """The value at the path, untested."""
        value: Any
        if self.root == "args":
            value = call.args
        elif self.root == "self":
            # no instance: a method's function called with its object first, as a property calls its
            # getter (``fget(obj)``); its ``self`` parameter is the object
            value = call.instance if call.instance is not None else call.args.get("self")
        elif self.root == "result":
            value = call.result
        else:
            value = call.error
        for kind, key in self.steps:
            if value is None:
                return None
            value = _step(value, kind, key)
            if value is _MISSING:
                return None
        return value


def field_of(obj: Any, *names: str) -> Any:
    """The first of ``names`` present on ``obj`` (a key of a mapping, else an attribute it holds: see
    :func:`_holds`), else None. A property or ``get`` of the program's that raises something other than
    AttributeError (a ``KeyError`` from a dict lookup, an ORM's detached instance) reads as missing too, counted:
    one field that cannot be read never costs the rest of the call's record. A method is no field: a result
    object's ``rollback()`` or ``success()`` is not a flag (a bound method is true)."""
    if obj is None:
        return None
    if type(obj) is dict:  # the common case, whose get() cannot fail: no ABC check (about 0.3 µs), no guard
        get = obj.get
        for name in names:
            value = get(name)
            if value is not None:
                return value
        return None
    mapping = isinstance(obj, Mapping)
    dynamic = not mapping and _answers_any_name(type(obj))
    for name in names:
        try:
            if mapping:
                value = obj.get(name)
            elif dynamic:
                value = getattr(obj, name, None) if _holds(obj, name) else None
            else:
                value = getattr(obj, name, None)
        except Exception as exc:
            report_error("result.field", exc)
            continue
        if value is not None and not isinstance(value, _METHODS):
            return value
    return None


_METHODS = (types.MethodType, types.BuiltinMethodType)


def attribute_of(obj: Any, name: str) -> Any:
    """``obj``'s attribute ``name``, None when it has none, read only where the object holds it (see :func:`_holds`).
    May raise what the program's property raises."""
    if _answers_any_name(type(obj)) and not _holds(obj, name):
        return None
    return getattr(obj, name, None)


#: The ``__getattr__`` of record types that only reads their fields, by (module, qualified name): proto-plus messages
#: (google-generativeai's and Vertex AI's responses, whose usage counts are read there).
_FIELD_READERS = frozenset({("proto.message", "Message.__getattr__")})


def _answers_any_name(kind: type) -> bool:
    """Whether a class's ``__getattr__`` may answer names its objects do not hold, running the program's code."""
    reader = getattr(kind, "__getattr__", None)
    return reader is not None and (getattr(reader, "__module__", None),
                                   getattr(reader, "__qualname__", None)) not in _FIELD_READERS


def _holds(obj: Any, name: str) -> bool:
    """Whether ``obj``, whose class has a ``__getattr__``, holds ``name`` itself: in its ``__dict__``, on its class (a
    field, a property, a slot) or as a pydantic model's extra field. A name only that ``__getattr__`` answers is not
    read: it is the program's code, run where the program does not run it, and it may do anything (camel's streamed
    response runs the whole stream there, and an error of the stream's was lost). A wrapt proxy that does not hold it
    hands the name on to the object it stands for, which is asked in turn."""
    for _ in range(_PROXIES_FOLLOWED):
        if any(name in vars(klass) for klass in type(obj).__mro__):
            return True
        for fields in (_own(obj, "__dict__"), _own(obj, "__pydantic_extra__")):  # (no __dict__: slots)
            if isinstance(fields, dict) and name in fields:
                return True
        if not isinstance(obj, _PROXY):
            return False
        obj = obj.__wrapped__
    return False


def _own(obj: Any, name: str) -> Any:
    """``obj``'s attribute ``name`` as its class defines it (a slot, ``__dict__``), without the class's
    ``__getattr__``; None when it has none."""
    try:
        return object.__getattribute__(obj, name)
    except Exception:
        return None


#: wrapt's proxies (every kind), and how many of them around one object are looked through.
_PROXY = wrapt.BaseObjectProxy
_PROXIES_FOLLOWED = 8


def pydantic_extra(obj: Any) -> Any:
    """A pydantic model's extra fields (through wrapt's proxies, the model's), read as the slot they are: None for
    any other object, whose class's ``__getattr__`` is not run for the name."""
    for _ in range(_PROXIES_FOLLOWED):
        if not isinstance(obj, _PROXY):
            break
        obj = obj.__wrapped__
    return _own(obj, "__pydantic_extra__")


#: Attributes of the interpreter's own objects that lead from a program's value to frames, code, module globals and
#: ``os.environ`` without a dunder (``args.items.gi_frame.f_globals["os"].environ``): refused in a path as ``__`` is.
INTERNAL_NAMES = frozenset({
    "gi_frame", "gi_code", "gi_yieldfrom", "cr_frame", "cr_code", "cr_await", "cr_origin", "ag_frame", "ag_code",
    "ag_await", "tb_frame", "tb_next", "f_back", "f_builtins", "f_code", "f_globals", "f_locals", "f_trace",
})
#: Objects whose attributes a path never reads (see the module's docstring).
_INTERNAL_TYPES = (types.ModuleType, types.FrameType, types.CodeType, types.TracebackType)


def _step(value: Any, kind: str, key: Any) -> Any:
    if kind == "name":
        if isinstance(value, Mapping):
            return value.get(key, _MISSING)
        if isinstance(value, _INTERNAL_TYPES):  # a module's attributes are its globals: os.environ among them
            return _MISSING
        return getattr(value, key, _MISSING)
    try:
        if isinstance(value, Mapping):  # get(), not [ ]: a defaultdict's [ ] adds the key it lacks to the host's dict
            return value.get(key, _MISSING)
        return value[key]
    except (LookupError, TypeError):
        return _MISSING


_UNSET: Any = object()
#: The Python keyword of each comparison (``in`` is a keyword of the language).
_KEYWORDS = {"equals": "equals", "in": "in_", "not_in": "not_in"}


def path(text: str, *, at: When | None = None, delta: bool = False, equals: Any = _UNSET,
         in_: Collection[Any] | None = None, not_in: Collection[Any] | None = None) -> Path:
    """Parse an extractor path; a malformed one raises ConfigurationError naming the position.

    ``at``: read it when the call starts or ends (default: when the key is read, see its option table).
    ``delta``: a running total (e.g. a client's token counter): the value read when the call ends minus
    the one read when it starts. ``equals``/``in_``/``not_in``: yield whether the value read is equal to,
    in, or not in the given value(s), e.g. ``success=path("result.state", equals="success")``.
    """
    if not isinstance(text, str):
        raise ConfigurationError(f"extractor path must be a string, got {type(text).__name__}")
    parsed = _parse(text)
    tests = [(name, value) for name, value in (("equals", equals), ("in", in_), ("not_in", not_in))
             if value is not _UNSET and value is not None]
    if at not in (None, "start", "end"):
        raise ConfigurationError(f"extractor path {text!r}: at must be 'start' or 'end', got {at!r}")
    if len(tests) > 1:
        raise ConfigurationError(f"extractor path {text!r}: give one of equals, in, not_in, not "
                                 + " and ".join(name for name, _ in tests))
    comparison, expected = tests[0] if tests else (None, None)
    if comparison in ("in", "not_in") and (isinstance(expected, str | bytes) or not isinstance(expected, Collection)):
        raise ConfigurationError(f"extractor path {text!r}: {comparison} takes a list of values, "
                                 f"got {type(expected).__name__}")
    if delta and comparison is not None:
        raise ConfigurationError(f"extractor path {text!r}: delta reads a number, it cannot also test the value")
    if parsed.needs_result:
        if at == "start":
            raise ConfigurationError(f"extractor path {text!r}: at='start' cannot read the {parsed.root}, "
                                     "which exists only when the call ends")
        if delta:
            raise ConfigurationError(f"extractor path {text!r}: delta reads the value before and after the call; "
                                     f"the {parsed.root} has no value before it")
    if at is None and not delta and comparison is None:
        return parsed
    if comparison in ("in", "not_in") and isinstance(expected, Collection):
        expected = list(expected)
    return Path(text, parsed.root, parsed.steps, at=at, delta=delta, comparison=comparison, expected=expected)


def _parse(text: str) -> Path:

    def fail(pos: int, problem: str) -> ConfigurationError:
        return ConfigurationError(f"extractor path {text!r}: {problem} at character {pos}")

    match = _NAME.match(text, 0)
    if match is None or match.group() not in _ROOTS:
        raise fail(0, "must start with one of " + ", ".join(_ROOTS))
    root = match.group()
    pos = match.end()
    steps: list[tuple[str, Any]] = []
    if root == "args":
        if not text.startswith(".", pos):
            raise fail(pos, "'args' must be followed by '.' and a parameter name")
        name = _NAME.match(text, pos + 1)
        if name is None:
            raise fail(pos + 1, "expected a parameter name")
        if name.group().startswith("__"):
            raise fail(pos + 1, f"{name.group()!r} starts with '__', which a path never reads")
        steps.append(("index", name.group()))
        pos = name.end()
    while pos < len(text):
        char = text[pos]
        if char == ".":
            name = _NAME.match(text, pos + 1)
            if name is None:
                raise fail(pos + 1, "expected a name after '.'")
            if name.group().startswith("__"):
                key = name.group()
                raise fail(pos + 1, f"{key!r} starts with '__', which a path never reads "
                                    f'(write ["{key}"] for a key of a mapping)')
            if name.group() in INTERNAL_NAMES:
                key = name.group()
                raise fail(pos + 1, f"{key!r} is the interpreter's (frames, code, module globals), which a path never "
                                    f'reads (write ["{key}"] for a key of a mapping)')
            steps.append(("name", name.group()))
            pos = name.end()
        elif char == "[":
            pos, key = _parse_index(text, pos + 1, fail)
            steps.append(("index", key))
        else:
            raise fail(pos, f"unexpected {char!r}")
    return Path(text, root, tuple(steps))


def _parse_index(text: str, pos: int, fail: Callable[[int, str], ConfigurationError]) -> tuple[int, Any]:
    if pos < len(text) and text[pos] in "'\"":
        quote = text[pos]
        end = text.find(quote, pos + 1)
        if end < 0:
            raise fail(pos, "unterminated string")
        key: Any = text[pos + 1 : end]
        pos = end + 1
    else:
        number = _INT.match(text, pos)
        if number is None:
            raise fail(pos, "expected an integer or a quoted key inside '[ ]'")
        key = int(number.group())
        pos = number.end()
    if pos >= len(text) or text[pos] != "]":
        raise fail(pos, "expected ']'")
    return pos + 1, key


Extractor = Path | Callable[[Call], Any]


def is_extractor(value: Any) -> bool:
    return isinstance(value, Path) or (callable(value) and not isinstance(value, type))


def resolve(value: Any, call: Call) -> Any:
    """A literal as is; an extractor applied to the call."""
    if isinstance(value, Path) or (callable(value) and not isinstance(value, type)):
        return value(call)
    return value


def signature_of(func: Any) -> inspect.Signature | None:
    try:
        return inspect.signature(getattr(func, "__func__", func))
    except (TypeError, ValueError):
        return None
