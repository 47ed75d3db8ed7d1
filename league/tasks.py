"""Task families with verifiable answers and a difficulty knob, loaded by name like ``pyspiel.load_game``.

``load_family("arithmetic")`` returns a family; every family does the same five things, in one class each:

| method                         | what it does                                                              |
|--------------------------------|---------------------------------------------------------------------------|
| ``generate(difficulty, rng)``  | a random task of that difficulty (1 = easiest .. ``max_difficulty``)       |
| ``render(task)``               | the text a proposer writes for that task (``parse(render(t))`` gives t back)|
| ``parse(text)``                | a proposer's text -> a ``Task`` with its answer computed, or ``Invalid``   |
| ``check(task, response)``      | whether a solver's response is right                                      |
| ``solution(task)``             | the response a perfect solver writes (for warm starts)                    |

``propose_prompt(difficulty)`` is what the proposer is asked. Unparseable proposer output never raises: it
is an ``Invalid`` with the reason, which the curriculum loop penalises.

Families: ``arithmetic`` (integer expressions, difficulty = operators), ``string`` (chains of string
transformations), ``program_deduction`` / ``program_abduction`` (a small Python function and an input:
predict the output, or find an input for an output; programs run only in :mod:`arenas.sandbox`, twice, to
check they are deterministic), ``chain`` (running totals mod 10, where every level is the previous one plus
a step), ``mirror`` (a word backwards, level d checks d letters: the learning benchmark's family), and
``arena_signalling`` / ``arena_negotiation`` (arena configurations, so that a curriculum can drive multi-agent
training too).
"""

from __future__ import annotations

import ast
import json
import operator
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from arenas.parsing import answer_candidates
from arenas.sandbox import FORBIDDEN_IMPORTS, Limits, run_calls, run_twice

TASK_TAG = re.compile(r"<task>(.*?)</task>", re.S | re.I)
MAX_TASK_CHARS = 2000  # a proposer's text is read up to this length


@dataclass
class Task:
    """One task: what the solver sees, the reference answer, and the family's own data (JSON-able)."""

    family: str
    prompt: str
    answer: str
    difficulty: int
    spec: dict[str, Any] = field(default_factory=dict)

    def key(self) -> str:
        """A canonical form: two tasks with the same key are duplicates."""
        return self.family + ":" + json.dumps(self.spec, sort_keys=True)


@dataclass
class Invalid:
    """A proposer's text that is not a task of its family, and why."""

    reason: str


def task_text(text: str) -> str:
    """The proposer's task: the last ``<task>...</task>``, else the whole text (stripped)."""
    text = text[:MAX_TASK_CHARS]
    tags = TASK_TAG.findall(text)
    return (tags[-1] if tags else text).strip()


def final_answer(response: str) -> str:
    """A solver's answer: the last ``<answer>`` tag, else an ``Answer:`` line, else the text (stripped)."""
    return answer_candidates(response)[0].strip()


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().strip(".").strip())


# ---------------------------------------------------------------------------- arithmetic
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul}
_SYMBOL = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*"}


class Arithmetic:
    """Integer expressions with + - * and parentheses over 0..9; difficulty = number of operators."""

    name = "arithmetic"

    def __init__(self, max_difficulty: int = 8, max_abs: int = 10**6):
        self.max_difficulty, self.max_abs = max_difficulty, max_abs

    def _random(self, n_ops: int, rng: np.random.Generator) -> str:
        if n_ops == 0:
            return str(int(rng.integers(10)))
        left = int(rng.integers(n_ops))
        a, b = self._random(left, rng), self._random(n_ops - 1 - left, rng)
        op = "+-*"[int(rng.integers(3))]
        return f"({a}{op}{b})"

    def generate(self, difficulty: int, rng: np.random.Generator) -> Task:
        for _ in range(100):
            text = self._random(difficulty, rng)
            task = self.parse(text[1:-1] if difficulty else text)
            if isinstance(task, Task):
                return task
        raise RuntimeError("could not draw a valid expression")  # unreachable for sane max_abs

    def _eval(self, node: ast.AST) -> tuple[int, int]:
        """(value, operators), or ValueError naming what is not allowed."""
        if isinstance(node, ast.Constant) and type(node.value) is int and 0 <= node.value <= 99:
            return node.value, 0
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            v, n = self._eval(node.operand)
            return -v, n
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            (a, na), (b, nb) = self._eval(node.left), self._eval(node.right)
            v = _OPS[type(node.op)](a, b)
            if abs(v) > self.max_abs:
                raise ValueError(f"an intermediate value exceeds {self.max_abs}")
            return v, na + nb + 1
        raise ValueError(f"{type(node).__name__} is not allowed (integers 0..99, + - *, parentheses)")

    def parse(self, text: str) -> Task | Invalid:
        expr = task_text(text)
        if not expr or len(expr) > 200:
            return Invalid("empty or longer than 200 characters")
        try:
            value, n_ops = self._eval(ast.parse(expr, mode="eval").body)
        except SyntaxError:
            return Invalid("not an expression")
        except (ValueError, RecursionError) as e:
            return Invalid(str(e))
        if not 1 <= n_ops <= self.max_difficulty:
            return Invalid(f"{n_ops} operators, need 1..{self.max_difficulty}")
        canonical = expr.replace(" ", "")
        return Task(self.name, f"Compute {canonical}. Answer as <answer>NUMBER</answer>.", str(value), n_ops,
                    {"expression": canonical})

    def render(self, task: Task) -> str:
        return f"<task>{task.spec['expression']}</task>"

    def check(self, task: Task, response: str) -> bool:
        return _norm(final_answer(response)).replace(" ", "") == task.answer

    def solution(self, task: Task) -> str:
        return f"<answer>{task.answer}</answer>"

    def propose_prompt(self, difficulty: int) -> str:
        return (f"Write an arithmetic expression with exactly {difficulty} operators (+ - *), integers 0..99 and "
                f"parentheses, as <task>EXPRESSION</task>. Example: <task>(3+4)*2</task>")


# ---------------------------------------------------------------------------- string transformations
def _rotate(s: str) -> str:
    return s[1:] + s[:1]


STRING_OPS = {
    "reverse": lambda s: s[::-1],
    "sort": lambda s: "".join(sorted(s)),
    "upper": str.upper,
    "lower": str.lower,
    "swapcase": str.swapcase,
    "dedupe": lambda s: "".join(dict.fromkeys(s)),
    "rotate": _rotate,
    "double": lambda s: "".join(c + c for c in s),
    "evens": lambda s: s[::2],
}
FINAL_OPS = {"count": lambda s, c: str(s.count(c)), "length": lambda s, c: str(len(s))}  # end a chain with a number


class StringOps:
    """A chain of string transformations applied to a word; difficulty = chain length (words grow with it)."""

    name = "string"

    def __init__(self, max_difficulty: int = 6, max_length: int = 40):
        self.max_difficulty, self.max_length = max_difficulty, max_length

    def generate(self, difficulty: int, rng: np.random.Generator) -> Task:
        letters = "abcdefghijklmnopqrstuvwxyz"
        word = "".join(letters[i] for i in rng.integers(0, 26, size=3 + difficulty))
        names = list(STRING_OPS)
        ops = [names[i] for i in rng.integers(0, len(names), size=difficulty)]
        if rng.random() < 0.25:
            ops[-1] = f"count {word[0]}" if rng.random() < 0.5 else "length"
        task = self.parse(self.render(Task(self.name, "", "", difficulty, {"ops": ops, "input": word})))
        assert isinstance(task, Task), task
        return task

    def parse(self, text: str) -> Task | Invalid:
        body = task_text(text)
        m = re.fullmatch(r"\s*ops\s*:\s*(.+?)\s*\n\s*input\s*:\s*(\S+)\s*", body, re.I)
        if not m:
            return Invalid("expected two lines: 'ops: OP, OP, ...' and 'input: WORD'")
        ops = [o.strip().lower() for o in m.group(1).split(",") if o.strip()]
        word = m.group(2)
        if not 1 <= len(ops) <= self.max_difficulty:
            return Invalid(f"{len(ops)} operations, need 1..{self.max_difficulty}")
        if len(word) > self.max_length:
            return Invalid(f"input longer than {self.max_length} characters")
        value = word
        for k, op in enumerate(ops):
            name, _, arg = op.partition(" ")
            if name in FINAL_OPS and k == len(ops) - 1 and (name == "length" or len(arg) == 1):
                value = FINAL_OPS[name](value, arg)
            elif name in STRING_OPS and not arg:
                value = STRING_OPS[name](value)
            else:
                return Invalid(f"unknown operation {op!r} (known: {', '.join(STRING_OPS)}; last may be 'count C' or 'length')")
            if len(value) > 4 * self.max_length:
                return Invalid("the result grows too long")
        return Task(self.name, f"Apply to {word!r}, in order: {', '.join(ops)}. Answer as <answer>RESULT</answer>.",
                    value, len(ops), {"ops": ops, "input": word})

    def render(self, task: Task) -> str:
        return f"<task>ops: {', '.join(task.spec['ops'])}\ninput: {task.spec['input']}</task>"

    def check(self, task: Task, response: str) -> bool:
        return final_answer(response).strip().strip("'\"") == task.answer

    def solution(self, task: Task) -> str:
        return f"<answer>{task.answer}</answer>"

    def propose_prompt(self, difficulty: int) -> str:
        return (f"Write a string task with {difficulty} operations from: {', '.join(STRING_OPS)} (the last may be "
                f"'count C' or 'length'), as <task>ops: OP, OP\ninput: WORD</task>. Example: <task>ops: reverse, upper\ninput: hello</task>")


# ---------------------------------------------------------------------------- small Python programs
PROGRAM_LIMITS = Limits(call_timeout_s=1.0, load_timeout_s=1.0, wall_timeout_s=3.0, memory_mb=256, file_size_kb=64,
                        forbidden_imports=FORBIDDEN_IMPORTS)
_STEPS = (  # statements over an int x; programs are chains of them, difficulty = statements
    "x = x + {a}", "x = x * {b}", "x = x - {a}", "x = x % {c} + {a}", "x = x // {b} + {a}",
    "if x % 2 == 0:\n        x = x // 2\n    else:\n        x = 3 * x + 1",
    "for i in range({b}):\n        x = x + i", "x = abs(x - {c})", "x = max(x, {c}) - min(x, {a})",
    "if x > {c}:\n        x = x - {c}\n    else:\n        x = x + {a}",
)


def _program_steps(fn: ast.FunctionDef) -> int:
    return sum(isinstance(n, ast.stmt) for n in ast.walk(fn)) - 1 - sum(isinstance(n, ast.Return) for n in ast.walk(fn))


class Program:
    """``def f(x): ...`` on an integer. ``deduction``: predict f(input); ``abduction``: find an x with f(x) = output.

    Every program runs in :mod:`arenas.sandbox` (no imports from ``FORBIDDEN_IMPORTS``, CPU, memory and time
    limits) and a second time in a fresh process; a program that fails, times out, returns something other
    than a plain value or answers differently the second time is an invalid task. Difficulty = statements
    other than `return` (an if/else with one statement per branch counts 3)."""

    def __init__(self, mode: str = "deduction", max_difficulty: int = 8, limits: Limits = PROGRAM_LIMITS):
        if mode not in ("deduction", "abduction"):
            raise ValueError(f"mode must be deduction or abduction, got {mode!r}")
        self.mode, self.max_difficulty, self.limits = mode, max_difficulty, limits
        self.name = f"program_{mode}"

    def generate(self, difficulty: int, rng: np.random.Generator) -> Task:
        for _ in range(20):
            body, left = [], difficulty
            while left > 0:  # statements until the budget is spent exactly (an if/else counts 3, a loop 2)
                step = _STEPS[int(rng.integers(len(_STEPS)))]
                cost = 1 + step.count("\n") - step.count("else:")
                if cost <= left:
                    body.append(step.format(a=int(rng.integers(1, 10)), b=int(rng.integers(2, 6)), c=int(rng.integers(3, 20))))
                    left -= cost
            code = "def f(x):\n" + "".join(f"    {s}\n" for s in body) + "    return x\n"
            task = self.parse(self.render(Task(self.name, "", "", difficulty, {"code": code, "input": int(rng.integers(0, 20))})))
            if isinstance(task, Task):
                return task
        raise RuntimeError("could not draw a valid program")

    def parse(self, text: str) -> Task | Invalid:
        body = task_text(text)
        m = re.fullmatch(r"\s*(?:```(?:python)?\s*)?(.*?)(?:```\s*)?\n\s*input\s*:\s*(.+?)\s*", body, re.S | re.I)
        if not m:
            return Invalid("expected a program defining f(x), then a line 'input: VALUE'")
        code, raw_input = m.group(1).strip() + "\n", m.group(2)
        try:
            tree = ast.parse(code)
            x = ast.literal_eval(raw_input)
        except (SyntaxError, ValueError):
            return Invalid("the program or the input does not parse")
        fns = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "f"]
        if not fns or len(fns[0].args.args) != 1:
            return Invalid("no function f(x) with one argument")
        if type(x) is not int or abs(x) > 10**6:
            return Invalid("the input must be an integer (|x| <= 10**6)")
        difficulty = _program_steps(fns[0])
        if not 1 <= difficulty <= self.max_difficulty:
            return Invalid(f"{difficulty} statements, need 1..{self.max_difficulty}")
        run = run_twice(code, "f", [[x]], self.limits)
        if not run.loaded:
            return Invalid(f"the program does not load: {run.load_error} {run.load_detail}".strip())
        call = run.calls[0]
        if call.error:
            return Invalid(f"f({x}) fails: {call.error} {call.detail}".strip())
        if not run.deterministic:
            return Invalid("f gives different results in two runs")
        if type(call.value) is not int or abs(call.value) > 10**9:
            return Invalid("f must return an integer (|f(x)| <= 10**9)")
        spec = {"code": code, "input": x, "output": call.value}
        if self.mode == "deduction":
            prompt = f"{code}\nWhat is f({x})? Answer as <answer>VALUE</answer>."
            return Task(self.name, prompt, str(call.value), difficulty, spec)
        prompt = f"{code}\nFind an integer x with f(x) == {call.value}. Answer as <answer>X</answer>."
        return Task(self.name, prompt, str(x), difficulty, spec)

    def render(self, task: Task) -> str:
        return f"<task>{task.spec['code']}input: {task.spec['input']}</task>"

    def check(self, task: Task, response: str) -> bool:
        text = final_answer(response)
        if self.mode == "deduction":
            return text.replace(" ", "") == task.answer
        try:
            x = ast.literal_eval(text)
        except (SyntaxError, ValueError):
            return False
        if type(x) is not int or abs(x) > 10**6:
            return False
        if x == task.spec["input"]:
            return True
        call = run_calls(task.spec["code"], "f", [[x]], self.limits).calls[0]  # any input that works is right
        return call.error is None and call.value == task.spec["output"]

    def solution(self, task: Task) -> str:
        return f"<answer>{task.answer}</answer>"

    def propose_prompt(self, difficulty: int) -> str:
        return (f"Write a Python function f(x) on an integer with {difficulty} statements and an input, as "
                "<task>def f(x):\n    x = x + 1\n    return x\ninput: 3</task>")


# ---------------------------------------------------------------------------- chain: composing difficulty
class Chain:
    """Add digits mod 10 by rewriting: ``3+4+2+7`` -> ``7+2+7 9+7 6``. Level d has d additions.

    The answer is the whole rewrite: each step adds the first two numbers and copies the rest, so level d + 1 is
    level d plus one step of the same kind, and a solver that masters level d needs one more step, not a new
    skill, for level d + 1, while a solver that cannot take the first steps yet finds no reward at all on a hard
    level (a blind guess of level d succeeds with chance about 10**-d). This is the family where a curriculum
    should matter (``benchmarks/curriculum_learning.py --family chain``)."""

    name = "chain"

    def __init__(self, max_difficulty: int = 6):
        self.max_difficulty = max_difficulty

    def generate(self, difficulty: int, rng: np.random.Generator) -> Task:
        digits = [int(rng.integers(10))] + [int(d) for d in rng.integers(1, 10, size=difficulty)]
        task = self.parse("+".join(map(str, digits)))
        assert isinstance(task, Task), task
        return task

    @staticmethod
    def rewrite(digits: list[int], sums: list[int] | None = None) -> list[str]:
        """The lines of the rewrite; ``sums`` replaces the sums after the first (a warm start's random ones)."""
        lines = []
        while len(digits) > 1:
            total = (digits[0] + digits[1]) % 10 if not lines or sums is None else sums[len(lines) - 1]
            digits = [total] + digits[2:]
            lines.append("+".join(map(str, digits)))
        return lines

    def parse(self, text: str) -> Task | Invalid:
        expr = task_text(text).replace(" ", "")
        if not re.fullmatch(r"\d(\+\d)+", expr):
            return Invalid("expected single digits joined by +, e.g. 3+4+2")
        digits = [int(c) for c in expr.split("+")]
        if not 1 <= len(digits) - 1 <= self.max_difficulty:
            return Invalid(f"{len(digits) - 1} additions, need 1..{self.max_difficulty}")
        return Task(self.name, expr, " ".join(self.rewrite(digits)), len(digits) - 1, {"expression": expr})

    def render(self, task: Task) -> str:
        return f"<task>{task.spec['expression']}</task>"

    def check(self, task: Task, response: str) -> bool:
        return " ".join(response.split()) == task.answer

    def solution(self, task: Task) -> str:
        return task.answer

    def format_example(self, task: Task, rng: np.random.Generator) -> str:
        """A warm-start response: the first step right, then the later lines with their copies right and random
        sums. It teaches the format of every level and the first step, not the later steps."""
        digits = [int(c) for c in task.spec["expression"].split("+")]
        return " ".join(self.rewrite(digits, [int(x) for x in rng.integers(10, size=len(digits))]))

    def propose_prompt(self, difficulty: int) -> str:
        return f"chain level {difficulty}:"


class Mirror:
    """Write a word backwards; level d checks the first d letters: ``bdhaec`` at level 3 -> ``cea...``.

    Every word has ``max_difficulty`` letters from the first ``letters`` of ``a``..``j`` and the prompt is the word
    alone, so a solver always writes the whole word backwards and the level only says how much of it must be right
    (a response is right when it starts with the answer). Level d + 1 is level d plus one more letter, read from
    its own place of the word: a solver that writes the first d letters right needs one more step for level d + 1,
    while a fresh one finds almost no reward on a hard level (a blind guess of level d succeeds with chance
    ``letters ** -d``). The response's shape never depends on the level, so there is no length to forget: what a
    solver learns at level d is what level d + 1 builds on. The family where a curriculum should matter most; the
    learning benchmark uses it."""

    name = "mirror"
    LETTERS = "abcdefghij"

    def __init__(self, max_difficulty: int = 6, letters: int = 4):
        if not 2 <= letters <= len(self.LETTERS):
            raise ValueError(f"letters must be in 2..{len(self.LETTERS)}, got {letters}")
        self.max_difficulty, self.alphabet = max_difficulty, self.LETTERS[:letters]

    def generate(self, difficulty: int, rng: np.random.Generator) -> Task:
        word = "".join(self.alphabet[i] for i in rng.integers(len(self.alphabet), size=self.max_difficulty))
        task = self.parse(f"{word} {difficulty}")
        assert isinstance(task, Task), task
        return task

    def parse(self, text: str) -> Task | Invalid:
        m = re.fullmatch(r"\s*([a-z]+)\s+(\d+)\s*", task_text(text))
        if not m or set(m.group(1)) - set(self.alphabet):
            return Invalid(f"expected a word of letters {self.alphabet[0]}..{self.alphabet[-1]} and a level, e.g. "
                           f"{self.alphabet[:3]} 2")
        word, level = m.group(1), int(m.group(2))
        if len(word) != self.max_difficulty:
            return Invalid(f"the word has {len(word)} letters, need {self.max_difficulty}")
        if not 1 <= level <= self.max_difficulty:
            return Invalid(f"level {level}, need 1..{self.max_difficulty}")
        return Task(self.name, word, word[::-1][:level], level, {"word": word, "level": level})

    def render(self, task: Task) -> str:
        return f"<task>{task.spec['word']} {task.difficulty}</task>"

    def check(self, task: Task, response: str) -> bool:
        return response.strip().startswith(task.answer)

    def solution(self, task: Task) -> str:
        return task.answer

    def format_example(self, task: Task, rng: np.random.Generator) -> str:
        """A warm-start response: the first letter right, then random letters up to the word's length. It teaches
        the format (a whole word) and the first step, not the later ones."""
        rest = rng.integers(len(self.alphabet), size=self.max_difficulty - 1)
        return task.answer[0] + "".join(self.alphabet[i] for i in rest)

    def propose_prompt(self, difficulty: int) -> str:
        return f"mirror level {difficulty}:"


# ---------------------------------------------------------------------------- arena configurations
class ArenaConfig:
    """An arena configuration as a task: harder settings of a multi-agent arena (more objects to tell apart in
    signalling, more item types in negotiation). The "answer" is the arena and its parameters; a solver solves
    it by playing an episode with a positive joint return (:func:`league.curriculum.arena_solve_rate`)."""

    KNOBS = {  # family -> (arena, parameter that the difficulty sets, its value at difficulty d, fixed parameters)
        "arena_signalling": ("signalling_v0", "num_objects", lambda d: d + 1, {"num_attributes": 2, "num_values": 4}),
        "arena_negotiation": ("negotiation_v0", "num_item_types", lambda d: d, {}),
    }

    def __init__(self, name: str = "arena_signalling", max_difficulty: int | None = None):
        self.name = name
        self.arena, self.knob, self.value, self.fixed = self.KNOBS[name]
        self.max_difficulty = max_difficulty or {"arena_signalling": 15, "arena_negotiation": 4}[name]

    def generate(self, difficulty: int, rng: np.random.Generator) -> Task:
        task = self.parse(json.dumps({self.knob: self.value(difficulty)}))
        assert isinstance(task, Task), task
        return task

    def parse(self, text: str) -> Task | Invalid:
        import arenas

        try:
            params = json.loads(task_text(text))
        except json.JSONDecodeError:
            return Invalid("expected a JSON object of arena parameters")
        if not isinstance(params, dict) or set(params) - {self.knob}:
            return Invalid(f"expected {{\"{self.knob}\": N}}")
        value = params.get(self.knob)
        difficulty = next((d for d in range(1, self.max_difficulty + 1) if self.value(d) == value), None)
        if difficulty is None:
            return Invalid(f"{self.knob} must correspond to a difficulty in 1..{self.max_difficulty}")
        full = {**self.fixed, self.knob: value}
        try:
            arenas.make(self.arena, **full)
        except (ValueError, TypeError) as e:
            return Invalid(f"{self.arena} refuses {full}: {e}")
        return Task(self.name, json.dumps({"arena": self.arena, "params": full}), json.dumps(full, sort_keys=True),
                    difficulty, {"arena": self.arena, "params": full})

    def render(self, task: Task) -> str:
        return f"<task>{json.dumps({self.knob: task.spec['params'][self.knob]})}</task>"

    def check(self, task: Task, response: str) -> bool:
        raise TypeError(f"{self.name} tasks are solved by playing {self.arena}, not by an answer: use arena_solve_rate")

    def solution(self, task: Task) -> str:
        raise TypeError(f"{self.name} tasks have no written solution")

    def propose_prompt(self, difficulty: int) -> str:
        return f"Write {self.arena} parameters of difficulty {difficulty} as <task>{{\"{self.knob}\": N}}</task>"


# ---------------------------------------------------------------------------- registry
FAMILIES = {
    "arithmetic": Arithmetic,
    "string": StringOps,
    "program_deduction": lambda **kw: Program("deduction", **kw),
    "program_abduction": lambda **kw: Program("abduction", **kw),
    "chain": Chain,
    "mirror": Mirror,
    "arena_signalling": lambda **kw: ArenaConfig("arena_signalling", **kw),
    "arena_negotiation": lambda **kw: ArenaConfig("arena_negotiation", **kw),
}


def names() -> list[str]:
    return sorted(FAMILIES)


def load_family(name: str, **params: Any):
    """A task family by name, e.g. ``load_family("chain", max_difficulty=6)``."""
    if name not in FAMILIES:
        raise KeyError(f"unknown task family {name!r}; known: {', '.join(names())}")
    return FAMILIES[name](**params)
