"""The two processes of one code grading (standard library only; copied and run as a script).

``solution`` mode runs *inside the sandbox* (see ``sandbox.py``): it drops to an
unprivileged user, sets its own resource limits, executes ``solution.py`` and then
serves calls of the solution's functions, one JSON line in, one JSON line out. It
never sees the tests: only the arguments of each call.

``test`` mode runs the benchmark's test code (trusted) in another process. Its
``candidate`` is a proxy that calls the solution process over the pipes, and results
come back as plain values (numbers, strings, lists, tuples, dicts, sets, None, bool)
rebuilt here from JSON. So a solution cannot read the expected values (they are not in
its process or on its disk), cannot return an object that claims to equal anything, and
cannot print a verdict: the verdict is written by this process alone.

Wire format of a value: JSON ``null`` / booleans / integers / strings as themselves;
``{"f": repr}`` a float (inf and nan included), ``{"l": [...]}`` list, ``{"t": [...]}``
tuple, ``{"s": [...]}`` set, ``{"z": [...]}`` frozenset, ``{"d": [[k, v], ...]}`` dict,
``{"b": hex}`` bytes, ``{"c": [re, im]}`` complex.
"""

import json
import os
import sys

MAX_LINE = 16 << 20
"""Longest message (one call's arguments or result), in bytes."""
MAX_DEPTH = 200


# -- values ----------------------------------------------------------------------------


def encode(value, depth=0):
    if depth > MAX_DEPTH:
        raise ValueError("value nested too deeply")
    if value is None or value is True or value is False:
        return value
    if isinstance(value, bool):  # pragma: no cover - bool has two instances
        return bool(value)
    if isinstance(value, int):
        return int.__index__(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, float):
        return {"f": repr(float.__float__(value))}
    if isinstance(value, complex):
        return {"c": [repr(value.real), repr(value.imag)]}
    if isinstance(value, (bytes, bytearray)):
        return {"b": bytes(value).hex()}
    if isinstance(value, list):
        return {"l": [encode(v, depth + 1) for v in list.__iter__(value)]}
    if isinstance(value, tuple):
        return {"t": [encode(v, depth + 1) for v in tuple.__iter__(value)]}
    if isinstance(value, frozenset):
        return {"z": [encode(v, depth + 1) for v in frozenset.__iter__(value)]}
    if isinstance(value, set):
        return {"s": [encode(v, depth + 1) for v in set.__iter__(value)]}
    if isinstance(value, dict):
        return {"d": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in dict.items(value)]}
    if hasattr(type(value), "__index__"):  # numpy integers and the like
        return int(value.__index__())
    if hasattr(type(value), "__float__") and not isinstance(value, str):
        return {"f": repr(float(value))}
    raise TypeError(f"cannot pass a {type(value).__name__} value between solution and tests")


class WireError(Exception):
    pass


def decode(data, depth=0):
    """Plain values only: nothing a sender chooses can run code or fake an equality."""
    if depth > MAX_DEPTH:
        raise WireError("value nested too deeply")
    if data is None or type(data) in (bool, int, str):
        return data
    if type(data) is not dict or len(data) != 1:
        raise WireError(f"not a value: {str(data)[:80]!r}")
    ((tag, body),) = data.items()
    if tag == "f" and type(body) is str:
        return float(body)
    if tag == "c" and type(body) is list and len(body) == 2:
        return complex(float(body[0]), float(body[1]))
    if tag == "b" and type(body) is str:
        return bytes.fromhex(body)
    if type(body) is not list:
        raise WireError(f"bad {tag!r} value")
    items = [decode(item, depth + 1) for item in body] if tag != "d" else None
    if tag == "l":
        return items
    if tag == "t":
        return tuple(items)
    if tag == "s":
        return set(items)
    if tag == "z":
        return frozenset(items)
    if tag == "d":
        out = {}
        for pair in body:
            if type(pair) is not list or len(pair) != 2:
                raise WireError("bad dict item")
            out[decode(pair[0], depth + 1)] = decode(pair[1], depth + 1)
        return out
    raise WireError(f"unknown value tag {tag!r}")


def send(stream, message):
    stream.write(json.dumps(message).encode("utf-8") + b"\n")
    stream.flush()


def receive(stream):
    """One JSON message, or None at end of stream; WireError when too long or broken."""
    line = stream.readline(MAX_LINE + 1)
    if not line:
        return None
    if len(line) > MAX_LINE or not line.endswith(b"\n"):
        raise WireError("message too long")
    try:
        return json.loads(line)
    except (ValueError, RecursionError) as error:
        raise WireError(f"unreadable message ({error.__class__.__name__})") from None


# -- the solution process (inside the sandbox) -----------------------------------------


def _limit(resource, which, value, slack=0):
    try:
        resource.setrlimit(which, (value, value + slack))
    except (ValueError, OSError):
        soft, hard = resource.getrlimit(which)
        if hard == resource.RLIM_INFINITY or value <= hard:
            resource.setrlimit(which, (value, hard))


def solution_main(args):
    """args: uid gid cpu_seconds memory_bytes file_bytes."""
    import builtins
    import resource

    uid, gid, cpu, memory, file_bytes = (int(a) for a in args[:5])
    # Protocol pipes on private descriptors; the solution's own stdin is empty and its
    # prints go to the capped output file (descriptor 2).
    requests = os.fdopen(os.dup(0), "rb")
    replies = os.fdopen(os.dup(1), "wb")
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    if os.geteuid() == 0 and uid > 0:
        # Running as root: become nobody, so the process limit holds (root ignores
        # RLIMIT_NPROC) and every capability is gone.
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
    _limit(resource, resource.RLIMIT_CPU, cpu, 1)  # SIGXCPU first, then SIGKILL
    _limit(resource, resource.RLIMIT_AS, memory)
    _limit(resource, resource.RLIMIT_FSIZE, file_bytes)
    _limit(resource, resource.RLIMIT_CORE, 0)
    _limit(resource, resource.RLIMIT_NOFILE, 64)
    # No new processes or threads: the count is per user, and this user already runs
    # at least this process.
    _limit(resource, resource.RLIMIT_NPROC, 1)
    code_path = args[5] if len(args) > 5 else "solution.py"
    with open(code_path, encoding="utf-8") as handle:
        code = handle.read()
    namespace = {"__name__": "solution", "__builtins__": builtins}
    try:
        exec(compile(code, "solution.py", "exec"), namespace)  # noqa: S102 - the sandbox
    except BaseException as error:  # noqa: BLE001 - SystemExit and all: it did not load
        send(replies, {"ready": False, "error": _describe(error)})
        os._exit(0)
    names = sorted(
        k for k, v in namespace.items() if callable(v) and not k.startswith("__") and _own(v)
    )
    send(replies, {"ready": True, "names": names})
    _serve_calls(namespace, requests, replies)


def _serve_calls(namespace, requests, replies):
    """Answer calls of the solution's functions until the test process closes the pipe."""
    while True:
        try:
            request = receive(requests)
        except WireError:
            os._exit(0)
        if request is None:
            os._exit(0)
        try:
            function = namespace[request["call"]]
            arguments = decode(request["args"])
            keywords = decode(request["kwargs"])
        except Exception as error:  # noqa: BLE001
            send(replies, {"raise": "RuntimeError", "message": f"bad call: {error}"})
            continue
        try:
            result = function(*arguments, **keywords)
        except BaseException as error:  # noqa: BLE001 - reported to the tests
            reply = {"raise": type(error).__name__, "message": _text(error)}
        else:
            try:
                reply = {"ok": encode(result)}
            except (TypeError, ValueError, RecursionError) as error:
                reply = {"unsupported": _text(error)}
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except Exception:  # noqa: BLE001
            pass
        send(replies, reply)


def _own(value):
    """Functions and classes the solution defined (not ``List`` from ``typing``...)."""
    return getattr(value, "__module__", None) == "solution"


def _text(error):
    try:
        return str(error)[:2000]
    except BaseException:  # noqa: BLE001 - a hostile __str__
        return "(unprintable)"


def _describe(error):
    import traceback

    try:
        frames = [
            f for f in traceback.extract_tb(error.__traceback__) if f.filename == "solution.py"
        ]
        where = f" (solution.py line {frames[-1].lineno})" if frames else ""
    except BaseException:  # noqa: BLE001
        where = ""
    return f"{type(error).__name__}: {_text(error)}{where}"


# -- the test process -------------------------------------------------------------------


class SolutionGone(BaseException):
    """The solution process ended or broke the protocol (tests cannot catch this)."""


class UnsupportedResult(BaseException):
    """The solution returned something that is not a plain value."""


class SolutionError(Exception):
    """The solution raised an exception that is not a built-in one."""


def _exception(name, message):
    import builtins

    kind = getattr(builtins, name, None)
    if isinstance(kind, type) and issubclass(kind, Exception):
        try:
            return kind(message)
        except Exception:  # noqa: BLE001 - needs other arguments (UnicodeDecodeError)
            pass
    return SolutionError(f"{name}: {message}")


def test_main(args):
    """args: fd to the solution, fd from the solution. Payload JSON on stdin."""
    import resource

    to_solution = os.fdopen(int(args[0]), "wb")
    from_solution = os.fdopen(int(args[1]), "rb")
    payload = json.loads(sys.stdin.buffer.read())
    limits = payload.get("limits") or {}
    for which, key in ((resource.RLIMIT_CPU, "cpu"), (resource.RLIMIT_AS, "memory"),
                       (resource.RLIMIT_FSIZE, "file_bytes")):  # fmt: skip
        if limits.get(key):
            _limit(resource, which, int(limits[key]))
    verdict_fd = os.dup(1)
    os.dup2(2, 1)  # the tests' own prints go to the capped error file

    def verdict(passed, error=""):
        os.write(
            verdict_fd, (json.dumps({"passed": passed, "error": error[:4000]}) + "\n").encode()
        )
        os._exit(0)

    try:
        hello = receive(from_solution)
    except WireError as error:
        verdict(False, f"the solution process broke the protocol: {error}")
    if hello is None:
        verdict(False, "the solution process ended while loading")
    if not hello.get("ready"):
        verdict(False, f"the solution did not load: {hello.get('error')}")
    names = [str(n) for n in hello.get("names") or ()]
    _run_tests(payload, names, (to_solution, from_solution), verdict)
    verdict(True)


class Remote:
    """A function of the solution, called over the pipes (``candidate`` in the tests)."""

    def __init__(self, name, pipes):
        self.__name__ = self.name = name
        self._pipes = pipes

    def __repr__(self):
        return f"<solution function {self.name}>"

    def __call__(self, *arguments, **keywords):
        to_solution, from_solution = self._pipes
        try:
            send(to_solution, {"call": self.name, "args": encode(list(arguments)),
                               "kwargs": encode(dict(keywords))})  # fmt: skip
        except (BrokenPipeError, OSError):
            raise SolutionGone(f"the solution process ended (calling {self.name})") from None
        try:
            reply = receive(from_solution)
        except WireError as error:
            raise SolutionGone(f"the solution process broke the protocol: {error}") from None
        if reply is None:
            raise SolutionGone(f"the solution process ended during {self.name}()")
        if "ok" in reply:
            try:
                return decode(reply["ok"])
            except (WireError, TypeError, ValueError, RecursionError) as error:
                raise SolutionGone(f"unreadable result of {self.name}(): {error}") from None
        if "unsupported" in reply:
            raise UnsupportedResult(f"{self.name}() returned {reply['unsupported']}")
        raise _exception(str(reply.get("raise")), str(reply.get("message")))


def _run_tests(payload, names, pipes, verdict):
    """Run the benchmark's tests against the solution's functions; ``verdict`` (which
    ends the process) on a failure, return when they all passed."""
    import traceback

    entry = payload.get("entry_point")
    namespace = {"__name__": "__tests__"}
    try:
        if payload.get("prompt"):
            exec(compile(payload["prompt"], "<prompt>", "exec"), namespace)  # noqa: S102
        bound = names if payload.get("bind_all") else [n for n in names if n == entry]
        for name in bound:
            namespace[name] = Remote(name, pipes)
        if entry and entry not in names:
            verdict(False, f"the solution defines no function {entry}()")
        if not entry and len(names) == 1:
            entry = names[0]
        if entry:
            namespace["candidate"] = Remote(entry, pipes)
        exec(compile(payload["test"], "<test>", "exec"), namespace)  # noqa: S102
        check = namespace.get("check")
        if callable(check):
            if not entry:
                why = "the tests call check(candidate) but which function is the candidate?"
                verdict(False, f"{why} (give entry_point; the solution defines {names})")
            check(namespace["candidate"])
    except (SolutionGone, UnsupportedResult) as error:
        verdict(False, str(error))
    except BaseException as error:  # noqa: BLE001 - a failed test, whatever it raised
        frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == "<test>"]
        where = ""
        if frames:
            line = (payload["test"].splitlines() or [""])[frames[-1].lineno - 1 :][:1]
            where = f" at test line {frames[-1].lineno}" + (f": {line[0].strip()}" if line else "")
        verdict(
            False, f"{type(error).__name__}{': ' + _text(error) if _text(error) else ''}{where}"
        )


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    if mode == "solution":
        solution_main(sys.argv[2:])
    elif mode == "test":
        test_main(sys.argv[2:])
    else:
        sys.exit("usage: _sandbox_host.py solution|test ...")
