"""Custom tool host: imports a custom tool's file and describes or calls its functions.

Runs in the gateway's sandbox (``custom_tools.py`` starts it), never in the gateway:
the imported file is the run config's code. Standard library only. Reads one JSON
request on stdin and writes one JSON reply on the standard output it started with;
whatever the tool itself prints goes to stderr, so it cannot forge the reply.

Requests:

- ``{"mode": "describe", "path", "functions": [{"function", "name", "description",
  "hidden"}]}`` -> ``{"tools": [{"name", "description", "parameters"}], "errors": [...]}``
- ``{"mode": "call", "path", "function", "arguments", "preset", "agent_cwd", "limit"}``
  -> ``{"ok": true, "text": ...}`` or ``{"ok": false, "error": ...}``

A parameter's JSON schema comes from its annotation, its description from the
function's docstring (Google ``Args:``, NumPy ``Parameters``, or ``:param x:``). A
parameter named ``agent_cwd`` receives the agent's workspace and is not shown.
"""

from __future__ import annotations

import asyncio
import enum
import importlib.util
import inspect
import json
import os
import re
import sys
import traceback
import types
import typing
from collections.abc import Callable, Iterable
from typing import Any

AGENT_CWD = "agent_cwd"
_SECTION = re.compile(r"^\s*([A-Z][A-Za-z ]*):\s*$")
_ARGS_HEADERS = {"args", "arguments", "parameters", "params", "keyword args", "kwargs"}
_GOOGLE_PARAM = re.compile(r"^(\*{0,2}\w+)\s*(?:\(([^)]*)\))?\s*:\s*(.*)$")
_REST_PARAM = re.compile(r"^\s*:param\s+(?:[^:]*\s)?(\w+)\s*:\s*(.*)$")


# -- MassGen's result types, for tools written against them ---------------------------


def _install_massgen_shim() -> None:
    """``from massgen.tool._result import ExecutionResult, TextContent`` keeps working."""
    try:
        import massgen.tool._result  # noqa: F401

        return
    except ImportError:
        pass

    class TextContent:
        def __init__(self, data: object = "", **extra: object) -> None:
            self.data = data
            self.__dict__.update(extra)

    class ImageContent(TextContent):
        pass

    class ExecutionResult:
        def __init__(self, output_blocks: Iterable[object] | None = None, **extra: object) -> None:
            self.output_blocks = list(output_blocks or [])
            self.__dict__.update(extra)

    classes: dict[str, type] = {
        "ExecutionResult": ExecutionResult, "TextContent": TextContent,
        "ImageContent": ImageContent,
    }  # fmt: skip
    result = types.ModuleType("massgen.tool._result")
    tool = types.ModuleType("massgen.tool")
    for module in (result, tool):
        for attr, cls in classes.items():
            setattr(module, attr, cls)
    package = types.ModuleType("massgen")
    setattr(tool, "_result", result)  # noqa: B010 - a module built by hand
    setattr(package, "tool", tool)  # noqa: B010
    package.__path__ = tool.__path__ = []
    sys.modules.update({"massgen": package, "massgen.tool": tool, "massgen.tool._result": result})


# -- docstrings ------------------------------------------------------------------------


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """(description: the text before the first section, {parameter: description})."""
    if not doc:
        return "", {}
    lines = inspect.cleandoc(doc).splitlines()
    params: dict[str, str] = {}
    intro: list[str] = []
    section: str | None = None
    current: str | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        rest = _REST_PARAM.match(line)
        if rest:
            current = rest.group(1)
            params[current] = rest.group(2).strip()
            section = "rest"
            i += 1
            continue
        header = _SECTION.match(line)
        numpy = i + 1 < len(lines) and re.match(r"^\s*-{3,}\s*$", lines[i + 1])
        if header or (numpy and line.strip()):
            name = (header.group(1) if header else line.strip()).lower()
            section = ("numpy" if numpy else "args") if name in _ARGS_HEADERS else "other"
            current = None
            i += 2 if numpy else 1
            continue
        if section is None:
            intro.append(line)
        elif section in ("args", "numpy") and line.strip():
            indent = len(line) - len(line.lstrip())
            google = _GOOGLE_PARAM.match(line.strip())
            if indent <= _args_indent(lines, i) and google:
                current = google.group(1).lstrip("*")
                # NumPy style puts the type after the colon and the description below.
                params[current] = "" if section == "numpy" else google.group(3).strip()
            elif current is not None:
                params[current] = (params[current] + " " + line.strip()).strip()
        elif section == "rest" and current is not None and line.startswith((" ", "\t")):
            params[current] += " " + line.strip()
        i += 1
    description = "\n".join(intro).strip()
    return re.sub(r"\n{3,}", "\n\n", description), params


def _args_indent(lines: list[str], index: int) -> int:
    """Indentation of the parameter names in the Args section around ``index``."""
    j = index
    while j > 0 and not _SECTION.match(lines[j - 1]) and not re.match(r"^\s*-{3,}", lines[j - 1]):
        j -= 1
    for line in lines[j : index + 1]:
        if line.strip():
            return len(line) - len(line.lstrip())
    return 0


# -- annotations -> JSON schema -------------------------------------------------------

_SIMPLE = {
    str: {"type": "string"}, int: {"type": "integer"}, float: {"type": "number"},
    bool: {"type": "boolean"}, bytes: {"type": "string"}, type(None): {"type": "null"},
    dict: {"type": "object"}, list: {"type": "array"}, tuple: {"type": "array"},
    set: {"type": "array"}, frozenset: {"type": "array"},
}  # fmt: skip


def schema_of(annotation: object) -> dict[str, object]:
    """JSON schema of a type annotation ({} when it says nothing usable)."""
    if annotation is inspect.Parameter.empty or annotation is Any or isinstance(annotation, str):
        return {}
    if annotation in _SIMPLE:
        return dict(_SIMPLE[annotation])
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return schema_of(args[0])
    if origin is typing.Union or origin is types.UnionType:
        members = [a for a in args if a is not type(None)]
        schemas = [schema_of(a) for a in members]
        if len(schemas) == 1:
            return schemas[0]
        return {"anyOf": schemas} if all(schemas) else {}
    if origin is typing.Literal:
        values = list(args)
        out: dict[str, object] = {"enum": values}
        kinds = {type(v) for v in values}
        if len(kinds) == 1 and kinds.pop() in _SIMPLE:
            out["type"] = _SIMPLE[type(values[0])]["type"]
        return out
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return {"enum": [member.value for member in annotation]}
    if origin in (list, set, frozenset, tuple) or (
        origin is not None and getattr(origin, "__name__", "") in ("Sequence", "Iterable")
    ):
        out = {"type": "array"}
        if args and args[-1] is not Ellipsis:
            items = schema_of(args[0])
            if items:
                out["items"] = items
        return out
    if origin is dict or (origin is not None and getattr(origin, "__name__", "") == "Mapping"):
        out = {"type": "object"}
        if len(args) == 2 and schema_of(args[1]):
            out["additionalProperties"] = schema_of(args[1])
        return out
    model_schema = getattr(annotation, "model_json_schema", None)  # a pydantic model
    if callable(model_schema):
        try:
            return model_schema()
        except Exception:  # noqa: BLE001 - an odd model: no schema rather than no tool
            return {"type": "object"}
    if isinstance(annotation, type) and hasattr(annotation, "__annotations__"):
        return {"type": "object"}  # TypedDict, dataclass
    return {}


def describe(
    func: Callable[..., object], name: str, description: str | None, hidden: set[str]
) -> dict[str, object]:
    """The OpenAI function schema of ``func`` as the tool ``name``."""
    summary, docs = parse_docstring(inspect.getdoc(func))
    try:
        hints = typing.get_type_hints(func, include_extras=True)
    except Exception:  # noqa: BLE001 - unresolvable annotations: fall back to the raw ones
        hints = {}
    properties: dict[str, object] = {}
    required: list[str] = []
    for param in inspect.signature(func).parameters.values():
        if param.name in ("self", "cls") or param.name in hidden or param.name == AGENT_CWD:
            continue
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        schema = schema_of(hints.get(param.name, param.annotation))
        if docs.get(param.name):
            schema["description"] = docs[param.name]
        if param.default is param.empty:
            required.append(param.name)
        else:
            try:
                json.dumps(param.default)
                schema["default"] = param.default
            except (TypeError, ValueError):
                pass
        properties[param.name] = schema
    parameters: dict[str, object] = {"type": "object", "properties": properties}
    if required:
        parameters["required"] = required
    return {"name": name, "description": description or summary, "parameters": parameters}


# -- calls ------------------------------------------------------------------------------


def _load(path: str) -> types.ModuleType:
    folder = os.path.dirname(os.path.abspath(path))
    if folder not in sys.path:
        sys.path.insert(0, folder)
    stem = re.sub(r"\W", "_", os.path.splitext(os.path.basename(path))[0])
    spec = importlib.util.spec_from_file_location(f"custom_tool_{stem}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _function(module: types.ModuleType, name: str) -> Callable[..., object]:
    func = getattr(module, name, None)
    if func is None or not callable(func):
        raise LookupError(f"{module.__file__} defines no function {name!r}")
    return func


async def _collect(result: object) -> object:
    if inspect.isawaitable(result):
        result = await result
    if inspect.isasyncgen(result):
        return [item async for item in result]
    if inspect.isgenerator(result):
        return list(result)
    return result


def as_text(result: object) -> str:
    """What the model reads: text as is, MassGen result blocks joined, the rest as JSON."""
    if isinstance(result, list) and result and all(hasattr(r, "output_blocks") for r in result):
        result = result[-1]  # streamed MassGen results accumulate: the last is complete
    if hasattr(result, "output_blocks"):
        parts = []
        for block in result.output_blocks or []:
            data = getattr(block, "data", None)
            if data is not None and not getattr(result, "is_log", False):
                parts.append(data if isinstance(data, str) else json.dumps(data, default=str))
        return "\n".join(parts)
    if isinstance(result, str):
        return result
    if isinstance(result, bytes):
        return result.decode("utf-8", errors="replace")
    try:
        return json.dumps(result, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(result)


def handle(request: dict[str, Any]) -> dict[str, Any]:
    _install_massgen_shim()
    if request["mode"] == "describe":
        try:
            module = _load(request["path"])
        except BaseException as error:  # noqa: BLE001 - the tool's import is its own business
            return {"tools": [], "errors": [f"cannot import {request['path']}: {_short(error)}"]}
        tools, errors = [], []
        for entry in request["functions"]:
            try:
                func = _function(module, entry["function"])
                tools.append(
                    describe(func, entry["name"], entry.get("description"), set(entry["hidden"]))
                )
            except BaseException as error:  # noqa: BLE001
                errors.append(f"{entry['name']}: {_short(error)}")
        return {"tools": tools, "errors": errors}
    try:
        func = _function(_load(request["path"]), request["function"])
        kwargs = {**request.get("preset", {}), **request.get("arguments", {})}
        params = inspect.signature(func).parameters
        takes_any = any(p.kind == p.VAR_KEYWORD for p in params.values())
        if AGENT_CWD in params or takes_any:
            kwargs.setdefault(AGENT_CWD, request.get("agent_cwd"))
        unknown = [k for k in kwargs if k not in params and not takes_any]
        if unknown:
            return {"ok": False, "error": f"unexpected argument(s): {', '.join(unknown)}"}
        result = asyncio.run(_collect(func(**kwargs)))
    except BaseException as error:  # noqa: BLE001 - becomes the tool's error text
        return {"ok": False, "error": _short(error)}
    text = as_text(result)
    limit = int(request.get("limit") or 0)
    if limit and len(text) > limit:
        text = text[:limit] + f"\n[truncated: {len(text) - limit} more characters]"
    return {"ok": True, "text": text}


def _short(error: BaseException) -> str:
    lines = traceback.format_exception_only(type(error), error)
    return "".join(lines).strip()[-2000:]


def main() -> None:
    reply_fd = os.dup(1)
    os.dup2(2, 1)  # the tool's own prints go to stderr, never into the reply
    sys.stdout = sys.stderr
    request = json.loads(sys.stdin.read())
    reply = handle(request)
    with os.fdopen(reply_fd, "w", encoding="utf-8") as out:
        out.write(json.dumps(reply, ensure_ascii=False))


if __name__ == "__main__":
    main()
