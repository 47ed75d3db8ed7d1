"""Cooperative coding: two agents write one Python solution together (after MAGRPO's code collaboration task).

| Import             | ``arenas.make("coop_code_v0", show_helper=True, problems=None)``              |
|--------------------|-------------------------------------------------------------------------------|
| Agents             | ``helper`` (writes ``aux``), then ``main`` (writes the entry point, which must call ``aux``) |
| Actions            | free text: Python code, inside ``<answer>...</answer>`` (a fenced block inside is fine) |
| Observations       | ``Dict(text)``: the problem, the two signatures, your part; ``main`` also sees the helper's code |
| Rewards            | shared: the MAGRPO reward levels below, at most 4.0, once both have written    |
| Parallel           | no (turn-based: the helper writes first)                                      |

Each episode draws one problem from a small set written for this project (``coop_code_problems.json``,
package data; none is copied from a benchmark). The helper agent writes ``aux``; the main agent writes the
problem's function, which must use ``aux``. With ``show_helper=False`` the main agent sees only ``aux``'s
signature and description, as in MAGRPO where both write at once.

Grading follows the reward levels of MAGRPO (Liu et al., 2025, "LLM Collaboration with Multi-Agent
Reinforcement Learning") and of its authors' code:

1. structure: +0.4 if the helper's text defines ``aux`` with a ``return``, +0.6 if the main agent's defines the
   entry point with a ``return`` (without it grading stops);
2. syntax: +0.5 if ``aux``, the entry point and their imports together compile (else grading stops);
3. tests: +1.0 times the fraction of unit tests passed, run in :mod:`arenas.sandbox` (a separate,
   resource-limited ``python -I`` process: the agents' code never runs in the arena's process);
4. cooperation: +0.5 if at least one test passed and the entry point calls ``aux`` (and does not define its
   own), then +1.0 if it is not a bare wrapper (its body is more than ``return aux(...)``), and -0.5 if some
   call of ``aux`` throws its value away.

The program is built from the definitions in both texts (imports, constants, classes, functions); the helper's
text may not define the entry point and the main agent's may not define ``aux`` (such definitions are dropped),
so neither can write the other's part, and statements that would run at load time are dropped too. ``infos[agent]["grade"]``
holds every level and the test results. The heuristic policy writes the reference solution of the problem
(``oracle``): with it every problem scores the full 4.0.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from arenas.core import TextArenaEnv
from arenas.sandbox import Limits, run_calls

NAME = "coop_code_v0"
HELPER = "aux"
AGENTS = ("helper", "main")
MAX_REWARD = 4.0
PROBLEMS_FILE = Path(__file__).with_name("coop_code_problems.json")
_TAG = re.compile(r"<answer>(.*?)</answer>", re.S | re.I)
_FENCE = re.compile(r"```[ \t]*(?:python|py)?[ \t]*\n(.*?)```", re.S | re.I)
_PROBLEM_LINE = re.compile(r"^Problem ([a-z0-9_]+):", re.M)


@lru_cache(maxsize=1)
def problem_set() -> dict[str, dict[str, Any]]:
    """The problem set, by id."""
    data = json.loads(PROBLEMS_FILE.read_text())
    return {p["id"]: p for p in data["problems"]}


def extract_code(text: str) -> str:
    """The code in an agent's text: the last ``<answer>`` tag (fences inside removed), else the last fenced block,
    else the whole text."""
    tags = _TAG.findall(text)
    if tags:
        text = tags[-1]
    fences = _FENCE.findall(text)
    return (fences[-1] if fences else text).strip("\n")


# ---------------------------------------------------------------------------- static checks (no code runs)
def _function(tree: ast.Module | None, name: str) -> ast.FunctionDef | None:
    if tree is None:
        return None
    found = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name]
    return found[-1] if found else None


def _parse(code: str) -> ast.Module | None:
    try:
        return ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def defines_with_return(code: str, name: str) -> bool:
    """Level 1: ``code`` defines ``name`` and the definition returns a value. Broken code is read line by line."""
    tree = _parse(code)
    if tree is not None:
        fn = _function(tree, name)
        return fn is not None and any(isinstance(n, ast.Return) and n.value is not None for n in ast.walk(fn))
    lines = code.splitlines()
    start = next((i for i, line in enumerate(lines) if re.match(rf"\s*(async\s+)?def\s+{re.escape(name)}\s*\(", line)), None)
    if start is None:
        return False
    indent = len(lines[start]) - len(lines[start].lstrip())
    for line in lines[start + 1:]:
        if line.strip() and len(line) - len(line.lstrip()) <= indent:
            break
        if re.match(r"\s*return\s+\S", line):
            return True
    return False


def _source(code: str, node: ast.AST) -> str:
    lines = code.splitlines()
    first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    return "\n".join(lines[first - 1:node.end_lineno])


def combine(helper_code: str, main_code: str, entry: str) -> str:
    """One program from the definitions of both: imports, constants, classes and functions, except that the
    helper's text may not define the entry point and the main agent's may not define ``aux`` (each writes only its
    own part); statements that do something at load time are dropped. Unparseable text is kept whole so that the
    syntax check fails on it."""
    kinds = (ast.Import, ast.ImportFrom, ast.Assign, ast.AnnAssign, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    parts = []
    for code, forbidden in ((helper_code, entry), (main_code, HELPER)):
        tree = _parse(code)
        if tree is None:
            parts.append(code)
            continue
        parts += [_source(code, n) for n in tree.body if isinstance(n, kinds) and getattr(n, "name", None) != forbidden]
    return "\n\n\n".join(parts) + "\n"


def _calls(node: ast.AST, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(node) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == name]


def uses_helper(main_code: str, entry: str) -> bool:
    """The entry point calls ``aux`` and neither it nor the main agent's code defines an ``aux`` of its own."""
    tree = _parse(main_code)
    fn = _function(tree, entry)
    if fn is None:
        return False
    own = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) and
           getattr(n, "name", None) == HELPER] + [n for n in ast.walk(tree) if isinstance(n, ast.Assign) and
                                                  any(isinstance(t, ast.Name) and t.id == HELPER for t in n.targets)]
    return bool(_calls(fn, HELPER)) and not own


def is_bare_wrapper(main_code: str, entry: str) -> bool:
    """The entry point's body (docstring aside) is ``return aux(...)``, or ``x = aux(...)`` then ``return x``."""
    fn = _function(_parse(main_code), entry)
    if fn is None:
        return False
    body = [s for s in fn.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant) and isinstance(s.value.value, str))]
    is_aux = lambda n: isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == HELPER  # noqa: E731
    if len(body) == 1 and isinstance(body[0], ast.Return) and is_aux(body[0].value):
        return True
    return (len(body) == 2 and isinstance(body[0], ast.Assign) and is_aux(body[0].value) and len(body[0].targets) == 1
            and isinstance(body[0].targets[0], ast.Name) and isinstance(body[1], ast.Return)
            and isinstance(body[1].value, ast.Name) and body[1].value.id == body[0].targets[0].id)


def ignores_helper_result(main_code: str, entry: str) -> bool:
    """Some call of ``aux`` in the entry point is a statement of its own: its value is thrown away."""
    fn = _function(_parse(main_code), entry)
    if fn is None:
        return False
    return any(isinstance(s, ast.Expr) and isinstance(s.value, ast.Call) and isinstance(s.value.func, ast.Name)
               and s.value.func.id == HELPER for s in ast.walk(fn))


# ---------------------------------------------------------------------------- grading
@dataclass
class Grade:
    helper_defined: float = 0.0  # +0.4
    main_defined: float = 0.0  # +0.6
    syntax: float = 0.0  # +0.5
    tests: float = 0.0  # +1.0 x fraction passed
    uses_helper: float = 0.0  # +0.5
    not_wrapper: float = 0.0  # +1.0
    ignored_result: float = 0.0  # -0.5
    passed: int = 0
    total: int = 0
    results: list[dict[str, Any]] = field(default_factory=list)  # per test: passed, error
    stopped_at: str | None = None  # the level where grading stopped, if it did

    @property
    def reward(self) -> float:
        return round(self.helper_defined + self.main_defined + self.syntax + self.tests + self.uses_helper
                     + self.not_wrapper + self.ignored_result, 10)


def same(value: Any, expected: Any) -> bool:
    """Plain-data equality (JSON values), floats to a relative 1e-9."""
    if isinstance(expected, float) and isinstance(value, (int, float)) and not isinstance(value, bool):
        return abs(value - expected) <= 1e-9 * max(1.0, abs(expected))
    if isinstance(expected, list) and isinstance(value, list):
        return len(value) == len(expected) and all(same(v, e) for v, e in zip(value, expected))
    if isinstance(expected, dict) and isinstance(value, dict):
        return value.keys() == expected.keys() and all(same(value[k], expected[k]) for k in expected)
    return type(value) is type(expected) and value == expected or (
        isinstance(value, (int, float)) and isinstance(expected, (int, float)) and not isinstance(value, bool)
        and not isinstance(expected, bool) and value == expected)


def grade(problem: dict[str, Any], helper_text: str, main_text: str, limits: Limits = Limits()) -> Grade:
    """MAGRPO's reward levels for one joint solution (see the module docstring)."""
    entry = problem["entry_point"]
    helper_code, main_code = extract_code(helper_text), extract_code(main_text)
    g = Grade(total=len(problem["tests"]))
    g.helper_defined = 0.4 if defines_with_return(helper_code, HELPER) else 0.0
    if not defines_with_return(main_code, entry):
        g.stopped_at = "structure"
        return g
    g.main_defined = 0.6
    program = combine(helper_code, main_code, entry)
    if _parse(program) is None:
        g.stopped_at = "syntax"
        return g
    g.syntax = 0.5
    run = run_calls(program, entry, [args for args, _ in problem["tests"]], limits)
    for (args, expected), call in zip(problem["tests"], run.calls):
        ok = call.error is None and same(call.value, expected)
        g.results.append({"args": args, "passed": ok, "error": call.error or run.load_error})
    g.passed = sum(r["passed"] for r in g.results)
    g.tests = g.passed / g.total if g.total else 0.0
    if g.passed and g.helper_defined and uses_helper(main_code, entry):
        g.uses_helper = 0.5
        g.not_wrapper = 0.0 if is_bare_wrapper(main_code, entry) else 1.0
        g.ignored_result = -0.5 if ignores_helper_result(main_code, entry) else 0.0
    return g


# ---------------------------------------------------------------------------- the arena
def _problem_text(p: dict[str, Any]) -> str:
    return (f"Problem {p['id']}: {p['title']}\n{p['description']}\n"
            f"Main function: def {p['signature']}\n"
            f"Helper function: def {p['helper']['signature']}  -- {p['helper']['doc']}")


class raw_env(TextArenaEnv):
    metadata = {"render_modes": ["human", "ansi"], "name": NAME, "is_parallelizable": False}
    free_text = True

    def __init__(self, *, show_helper: bool = True, problems: list[str] | None = None, call_timeout_s: float = 2.0,
                 invalid_action: str = "penalize", render_mode: str | None = None):
        known = problem_set()
        unknown = sorted(set(problems or []) - set(known))
        if unknown:
            raise ValueError(f"unknown coop_code problem(s) {unknown}; known: {sorted(known)}")
        self.problem_ids = sorted(problems) if problems else sorted(known)
        self.show_helper = show_helper
        self.limits = Limits(call_timeout_s=call_timeout_s)
        # any text is a move (code that fails earns less), so the invalid-action rule never applies
        super().__init__({a: [] for a in AGENTS}, invalid_action, render_mode)

    def _new_game(self, options: dict) -> None:
        pid = options.get("problem") or self.problem_ids[int(self.np_random.integers(len(self.problem_ids)))]
        self.problem = problem_set()[pid]
        self.written: dict[str, str] = {}
        self.result: Grade | None = None
        self.agent_selection = "helper"

    def _legal(self, agent: str) -> list[str]:
        return []

    def _prompt(self, agent: str) -> str:
        p = self.problem
        head = (f"Cooperative coding ({NAME}). Two agents write one Python solution together: the helper agent writes "
                f"the function {HELPER}, the main agent writes {p['entry_point']}, which must call {HELPER} and do real "
                f"work of its own (more than return {HELPER}(...)). Standard library only; no input or output.\n\n"
                f"{_problem_text(p)}\n\n")
        if agent == "helper":
            task = (f"You are the helper agent: write only the function def {p['helper']['signature']}.")
        else:
            shown = self.written.get("helper")
            partner = (f"Your partner wrote:\n{extract_code(shown)}\n" if self.show_helper and shown is not None else
                       f"Your partner writes {HELPER} as described above; you do not see its code.\n")
            task = f"You are the main agent: write only the function def {p['signature']}, calling {HELPER}.\n{partner}"
        if self.result is not None:
            return head + task + f"\nDone: reward {self.result.reward:g} of {MAX_REWARD:g}, {self.result.passed}/{self.result.total} tests passed."
        if agent != self.agent_selection:
            return head + task + f"\nIt is the {self.agent_selection} agent's turn."
        return head + task + "\nThink if you like, then give your code on the last lines as: <answer>YOUR CODE</answer>"

    def _play(self, agent: str, action: str) -> None:
        self.written[agent] = action
        if agent == "helper":
            self.agent_selection = "main"
            return
        self.result = grade(self.problem, self.written["helper"], action, self.limits)
        for a in AGENTS:
            self.infos[a]["grade"] = {**asdict(self.result), "reward": self.result.reward}
        self._end({a: self.result.reward for a in AGENTS})

    def _summary(self) -> str:
        status = f"reward {self.result.reward:g}" if self.result else f"{self.agent_selection} to write"
        return f"{NAME}: problem {self.problem['id']}, {status}"


def heuristic(text: str, info: dict, rng: Any) -> str:
    """The oracle: the problem's reference part for this agent (read from the observation)."""
    p = problem_set()[_PROBLEM_LINE.search(text).group(1)]
    part = "helper" if "You are the helper agent" in text else "main"
    return f"<answer>\n{p['solution'][part]}</answer>"
