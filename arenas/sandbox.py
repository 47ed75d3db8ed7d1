"""Run untrusted Python (a language model's code) in a separate, limited process and call one of its functions.

Nothing an agent writes is ever executed in the arena's own process: :func:`run_calls` starts
``python -I -S`` (isolated: no user site, no ``PYTHON*`` variables, no site-packages, stdlib only) in a fresh
temporary folder, with an empty environment and in its own session, and under ``resource`` limits set before
any of the code is loaded (the interpreter waits for its job on stdin): CPU seconds, address space, file size,
open files, no core dumps, no new processes.
Inside, before the code is loaded, an audit hook (which code cannot remove) refuses sockets and name
lookups, new processes, signals to other processes, ``ctypes``, any file writes or deletions outside the
temporary folder, and reads or listings outside it except of the standard library (so ``import`` still works).
``Limits.forbidden_imports`` names modules the code may not import (checked on its own ``import`` statements,
even of modules already loaded, and on every first import of a module). Each call has its own time limit; the
whole run has a wall-clock limit after which the process group is killed. :func:`run_twice` runs the code a
second time, in a fresh process, and reports whether both runs returned the same values (a task's answer must
not depend on hash seeds, time or memory addresses).

The sandbox is given the arguments only, never the expected outputs: it sends back each call's return value
as JSON (plain data only: an object that fakes ``__eq__`` cannot pass), and the caller compares. Writing fake
results to the result file would need the right answers. Limits: a determined attacker with native code
execution could escape an audit hook; here ``ctypes`` and new processes are refused, and the process boundary
and resource limits stay in any case.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RESULT_FILE = "results.jsonl"
# What generated task programs may not import: processes, the network, native code, the file system beyond
# plain ``open``, the interpreter's internals, and time or randomness (a task's answer must be reproducible).
FORBIDDEN_IMPORTS = ("os", "sys", "subprocess", "socket", "ssl", "ctypes", "cffi", "multiprocessing", "threading",
                     "_thread", "concurrent", "asyncio", "signal", "resource", "pty", "tty", "fcntl", "mmap", "select",
                     "selectors", "shutil", "pathlib", "glob", "tempfile", "io", "importlib", "builtins", "gc", "inspect",
                     "code", "codeop", "pickle", "marshal", "shelve", "urllib", "http", "ftplib", "smtplib", "webbrowser",
                     "time", "random", "secrets", "uuid", "datetime", "platform", "sysconfig", "site", "posix")
MAX_RESULT_BYTES = 1 << 20

# The program the sandboxed interpreter runs. It reads its job from stdin, opens the result file, installs
# the audit hook, then loads the untrusted code and calls the entry point once per argument list.
RUNNER = r'''
import json, os, signal, sys
job = json.loads(sys.stdin.read())
out = open(job["result_file"], "w", buffering=1)
null = open(os.devnull, "w")
os.dup2(null.fileno(), 1); os.dup2(null.fileno(), 2)
sys.stdout = sys.stderr = null
root = os.path.realpath(os.getcwd())
readable = tuple(os.path.realpath(p) for p in sys.path if p)  # -I -S: the standard library only
forbidden = frozenset(job["forbidden"])
BLOCKED = ("socket.", "ctypes.", "subprocess.", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
           "os.forkpty", "os.kill", "os.killpg", "signal.pthread_kill", "pty.", "urllib.", "http.", "ftplib.",
           "smtplib.", "webbrowser.", "os.setuid", "os.chroot")
PATHS = ("os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.symlink", "os.link",
         "os.truncate", "os.utime", "shutil.rmtree", "os.replace")
def under(path, roots):
    try:
        p = os.path.realpath(os.fsdecode(path) if not isinstance(path, int) else root)
    except Exception:
        return False
    return any(p == r or p.startswith(r + os.sep) for r in roots)
def inside(path):
    return under(path, (root,))
def readable_path(path):
    return under(path, (root, *readable))
def hook(event, args):
    if event.startswith(BLOCKED):
        raise PermissionError(f"sandbox: {event} is not allowed")
    if event == "import" and args and str(args[0]).partition(".")[0] in forbidden:
        raise PermissionError(f"sandbox: importing {args[0]} is not allowed")
    if event == "open" and args and args[0] is not None:
        mode, flags = args[1] or "r", args[2] or 0
        writing = any(c in str(mode) for c in "wax+") or flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC)
        if writing and not inside(args[0]):
            raise PermissionError("sandbox: writing outside the sandbox folder is not allowed")
        if not writing and not isinstance(args[0], int) and not readable_path(args[0]):
            raise PermissionError("sandbox: reading outside the sandbox folder is not allowed")
    if event in ("os.listdir", "os.scandir", "os.chdir") and args and args[0] is not None and not isinstance(args[0], int) \
            and not readable_path(args[0]):
        raise PermissionError(f"sandbox: {event} outside the sandbox folder is not allowed")
    if event in PATHS and args and not all(inside(a) for a in args[:2] if isinstance(a, (str, bytes, os.PathLike))):
        raise PermissionError(f"sandbox: {event} outside the sandbox folder is not allowed")
sys.addaudithook(hook)
class CallTimeout(BaseException):
    pass
def on_alarm(signum, frame):
    raise CallTimeout()
signal.signal(signal.SIGALRM, on_alarm)
def plain(value, depth=0):
    if depth > 50:
        raise ValueError("nested too deeply")
    if value is None or type(value) in (bool, int, float, str):
        return value
    if type(value) in (list, tuple):
        return [plain(v, depth + 1) for v in value]
    if type(value) in (set, frozenset):
        return sorted((plain(v, depth + 1) for v in value), key=repr)
    if type(value) is dict:
        return {str(k): plain(v, depth + 1) for k, v in value.items()}
    raise TypeError(f"returned a {type(value).__name__}, not plain data")
import builtins
real_import = builtins.__import__
def guarded_import(name, globals=None, locals=None, fromlist=(), level=0):
    if level == 0 and name.partition(".")[0] in forbidden:
        raise PermissionError(f"sandbox: importing {name} is not allowed")
    return real_import(name, globals, locals, fromlist, level)
own = dict(vars(builtins), __import__=guarded_import)  # the code's own builtins: its import statements are checked
namespace = {"__name__": "solution", "__builtins__": own}
def detail(e):
    return str(e)[:300]
try:
    signal.setitimer(signal.ITIMER_REAL, job["load_timeout"])
    exec(compile(job["code"], "solution.py", "exec"), namespace)
    signal.setitimer(signal.ITIMER_REAL, 0)
    entry = namespace[job["entry"]]
    out.write(json.dumps({"loaded": True}) + "\n")
except BaseException as e:
    signal.setitimer(signal.ITIMER_REAL, 0)
    error = "Timeout" if isinstance(e, CallTimeout) else type(e).__name__
    out.write(json.dumps({"loaded": False, "error": error, "detail": detail(e)}) + "\n")
    sys.exit(0)
for i, args in enumerate(job["calls"]):
    try:
        signal.setitimer(signal.ITIMER_REAL, job["call_timeout"])
        value = entry(*args)
        signal.setitimer(signal.ITIMER_REAL, 0)
        line = json.dumps({"i": i, "value": plain(value)})
        if len(line) > 100000:
            raise ValueError("result too large")
    except BaseException as e:
        signal.setitimer(signal.ITIMER_REAL, 0)
        line = json.dumps({"i": i, "error": "Timeout" if isinstance(e, CallTimeout) else type(e).__name__, "detail": detail(e)})
    out.write(line + "\n")
'''


@dataclass
class CallResult:
    value: Any = None
    error: str | None = None  # exception type name, "Timeout", or "NoResult" (the process died first)
    detail: str = ""  # the exception's message (e.g. "sandbox: reading outside the sandbox folder is not allowed")


@dataclass
class RunResult:
    loaded: bool  # the code ran to the end of its module and defined the entry point
    load_error: str | None
    calls: list[CallResult] = field(default_factory=list)
    seconds: float = 0.0
    killed: bool = False  # the wall-clock limit ran out
    load_detail: str = ""  # the load error's message
    deterministic: bool | None = None  # run_twice: both runs gave the same results; None: run once


@dataclass(frozen=True)
class Limits:
    call_timeout_s: float = 2.0
    load_timeout_s: float = 2.0
    wall_timeout_s: float = 10.0
    memory_mb: int = 512
    file_size_kb: int = 1024
    open_files: int = 64
    forbidden_imports: tuple[str, ...] = ()  # top-level module names the code may not import (see FORBIDDEN_IMPORTS)


def _rlimits(limits: Limits) -> list[tuple[int, int]]:
    cpu = int(limits.wall_timeout_s) + 1
    return [
        (resource.RLIMIT_CPU, cpu),
        (resource.RLIMIT_AS, limits.memory_mb << 20),
        (resource.RLIMIT_FSIZE, limits.file_size_kb << 10),
        (resource.RLIMIT_NOFILE, limits.open_files),
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_NPROC, 0),  # no new processes (root is exempt: the audit hook refuses them too)
    ]


def _in_child(limits: Limits):
    def apply() -> None:
        for kind, value in _rlimits(limits):
            try:
                resource.setrlimit(kind, (value, value))
            except (ValueError, OSError):  # e.g. RLIMIT_AS on macOS
                pass

    return apply


def run_calls(code: str, entry: str, calls: list[list[Any]], limits: Limits = Limits()) -> RunResult:
    """Load ``code`` in a sandboxed interpreter and return ``entry(*args)`` for each argument list in ``calls``."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="agora-sandbox-") as folder:
        results = Path(folder) / RESULT_FILE
        job = json.dumps({"code": code, "entry": entry, "calls": calls, "result_file": str(results),
                          "call_timeout": limits.call_timeout_s, "load_timeout": limits.load_timeout_s,
                          "forbidden": list(limits.forbidden_imports)})
        later = hasattr(resource, "prlimit")  # Linux: set the limits from here; elsewhere in the child before exec
        proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", RUNNER], cwd=folder, env={}, stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                                close_fds=True, preexec_fn=None if later else _in_child(limits))
        killed = False
        try:
            # The runner waits for its job on stdin, so the limits are in place before any of the code runs.
            for kind, value in _rlimits(limits) if later else []:
                resource.prlimit(proc.pid, kind, (value, value))
            proc.communicate(job.encode(), timeout=limits.wall_timeout_s)
        except subprocess.TimeoutExpired:
            killed = True
        finally:
            if proc.poll() is None:
                killed = True
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the whole session, whatever it left behind
            except (ProcessLookupError, PermissionError):
                pass
            proc.wait()
        lines = results.read_bytes()[:MAX_RESULT_BYTES].decode("utf-8", "replace").splitlines() if results.exists() else []
    return _read(lines, len(calls), time.perf_counter() - start, killed)


def run_twice(code: str, entry: str, calls: list[list[Any]], limits: Limits = Limits()) -> RunResult:
    """:func:`run_calls` twice, in two fresh processes (string hashing differs between them); the first result,
    with ``deterministic`` set to whether both gave the same values and errors."""
    first = run_calls(code, entry, calls, limits)
    if not first.loaded:
        return first
    second = run_calls(code, entry, calls, limits)
    same = second.loaded and [(c.value, c.error) for c in first.calls] == [(c.value, c.error) for c in second.calls]
    first.deterministic = bool(same)
    return first


def _read(lines: list[str], n: int, seconds: float, killed: bool) -> RunResult:
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    head = next((r for r in records if isinstance(r, dict) and "loaded" in r), None)
    if head is None or not head.get("loaded"):
        error = "Timeout" if killed else (head or {}).get("error", "NoResult")
        return RunResult(False, str(error), [CallResult(error="NoResult") for _ in range(n)], seconds, killed,
                         load_detail=str((head or {}).get("detail", "")))
    calls: dict[int, CallResult] = {}
    for r in records:  # the first record for each call counts
        if isinstance(r, dict) and isinstance(r.get("i"), int) and 0 <= r["i"] < n and r["i"] not in calls:
            calls[r["i"]] = CallResult(value=r.get("value"), error=r.get("error"), detail=str(r.get("detail", "")))
    return RunResult(True, None, [calls.get(i, CallResult(error="NoResult")) for i in range(n)], seconds, killed)
