"""coop_code_v0: the problem set, MAGRPO's reward levels, and the sandbox that runs the agents' code."""

import builtins
import json
import time

import pytest

import arenas
from arenas.games.coop_code import (MAX_REWARD, PROBLEMS_FILE, combine, defines_with_return, extract_code, grade,
                                    is_bare_wrapper, problem_set, same)
from arenas.sandbox import Limits, run_calls

RUNS = problem_set()["run_length"]
HELPER = "<answer>\n" + RUNS["solution"]["helper"] + "</answer>"
SOLVE_ALONE = '''
def encode_runs(text):
    out, i = "", 0
    while i < len(text):
        j = i
        while j < len(text) and text[j] == text[i]:
            j += 1
        out += f"{text[i]}{j - i}"
        i = j
    return out
'''


def play(env, texts):
    """helper writes texts[0], main writes texts[1]; returns the shared rewards and the main agent's info."""
    for text in texts:
        env.step(text)
    return dict(env.rewards), env.infos["main"]


def test_problem_set_is_package_data_and_well_formed():
    data = json.loads(PROBLEMS_FILE.read_text())
    assert PROBLEMS_FILE.parent.name == "games" and PROBLEMS_FILE.suffix == ".json"  # covered by package-data "*.json"
    ps = data["problems"]
    assert len(ps) >= 20 and len({p["id"] for p in ps}) == len(ps)
    for p in ps:
        assert len(p["tests"]) >= 5 and p["signature"].startswith(p["entry_point"] + "(")
        assert p["helper"]["signature"].startswith("aux(") and p["helper"]["doc"]
        assert "aux(" in p["solution"]["main"] and not is_bare_wrapper(p["solution"]["main"], p["entry_point"])


def test_oracle_scores_full_reward_on_every_problem_and_random_scores_nothing():
    env = arenas.make("coop_code_v0")
    oracle, rand = arenas.scripted("coop_code_v0", "heuristic"), arenas.scripted("coop_code_v0", "random")
    for pid in sorted(problem_set()):
        env.reset(seed=0, options={"problem": pid})
        texts = []
        for agent in ("helper", "main"):
            assert env.agent_selection == agent
            obs, _, _, _, info = env.last()
            assert info["phase"] == "write" and f"Problem {pid}:" in obs["text"] and "<answer>" in obs["text"]
            texts.append(oracle(obs["text"], info, None))
            env.step(texts[-1])
        assert env.rewards == {"helper": MAX_REWARD, "main": MAX_REWARD}, pid
        g = env.infos["helper"]["grade"]
        assert g["passed"] == g["total"] >= 5 and g["reward"] == MAX_REWARD
    env.reset(seed=1)
    env.step(rand(env.last()[0]["text"], env.last()[4], None))
    env.step(rand(env.last()[0]["text"], env.last()[4], None))
    assert env.rewards == {"helper": 0.0, "main": 0.0}


@pytest.mark.parametrize("helper,main,reward,stopped", [
    ("", "", 0.0, "structure"),
    (HELPER, "I do not know.", 0.4, "structure"),
    ("", SOLVE_ALONE, 0.6 + 0.5 + 1.0, None),  # no helper: no cooperation bonus
    (HELPER, "def encode_runs(text):\n    return aux(text) +\n", 0.4 + 0.6, "syntax"),
    (HELPER, SOLVE_ALONE, 0.4 + 0.6 + 0.5 + 1.0, None),  # correct, but main ignores the helper
    (HELPER, "def encode_runs(text):\n    runs = aux(text)\n    return ''\n", 0.4 + 0.6 + 0.5 + 1 / 6 + 0.5 + 1.0, None),
    (HELPER, "def encode_runs(text):\n    aux(text)\n" + SOLVE_ALONE.split("\n", 2)[2], 4.0 - 0.5, None),
    ("def aux(text):\n    return 'x'\n", "def aux(text):\n    return ''\n" + SOLVE_ALONE, 2.5, None),  # own aux: no bonus
])
def test_reward_levels(helper, main, reward, stopped):
    env = arenas.make("coop_code_v0", problems=["run_length"])
    env.reset(seed=0)
    rewards, info = play(env, [helper, main])
    assert rewards["helper"] == rewards["main"] == pytest.approx(reward)
    assert info["grade"]["stopped_at"] == stopped


def test_a_bare_wrapper_loses_the_anti_wrapper_bonus_and_neither_agent_writes_the_others_part():
    does_everything = "<answer>\n" + RUNS["solution"]["helper"].replace("def aux(text):", "def runs_of(text):") + (
        "\ndef aux(text):\n    return ''.join(f'{c}{n}' for c, n in runs_of(text))\n</answer>")
    env = arenas.make("coop_code_v0", problems=["run_length"])
    env.reset(seed=0)
    rewards, info = play(env, [does_everything, "def encode_runs(text):\n    return aux(text)"])
    assert info["grade"]["passed"] == 6
    assert rewards["main"] == pytest.approx(0.4 + 0.6 + 0.5 + 1.0 + 0.5)  # no +1.0: main is a bare wrapper
    env.reset(seed=0)
    rewards, _ = play(env, [HELPER + "\n" + SOLVE_ALONE, "def encode_runs(text):\n    return None"])
    assert rewards["main"] == pytest.approx(1.5)  # the helper's encode_runs was dropped; main's fails every test
    env.reset(seed=0)
    rewards, _ = play(env, ["def aux(text):\n    return text\n", "def aux(text):\n    return 'a3b1c2'\n"
                                                                  "def encode_runs(text):\n    return aux(text)\n"])
    assert rewards["main"] == pytest.approx(0.4 + 0.6 + 0.5 + 1 / 6)  # main's own aux dropped and it gets no bonus


def test_main_sees_the_helpers_code_only_when_asked():
    for show in (True, False):
        env = arenas.make("coop_code_v0", problems=["run_length"], show_helper=show)
        env.reset(seed=0)
        env.step(HELPER)
        text = env.observe("main")["text"]
        assert ("runs.append([ch, 1])" in text) is show
        assert "aux(text: str) -> list" in text and "You are the main agent" in text


def test_code_extraction_and_static_checks():
    assert extract_code("thinking...\n<answer>\n```python\ndef f():\n    return 1\n```\n</answer>") == "def f():\n    return 1"
    assert extract_code("Here:\n```py\nx = 1\n```\nand\n```python\ny = 2\n```") == "y = 2"
    assert extract_code("def f(): return 2") == "def f(): return 2"
    assert defines_with_return("def f(x):\n    if x:\n        return 1\n", "f")
    assert not defines_with_return("def f(x):\n    print(x)\n", "f")
    assert defines_with_return("def f(x:\n    return 1\n", "f")  # broken code: read line by line
    assert not defines_with_return("def g():\n    return 1\n", "f")
    assert is_bare_wrapper("def f(x):\n    '''doc'''\n    y = aux(x)\n    return y\n", "f")
    assert not is_bare_wrapper("def f(x):\n    return aux(x) + 1\n", "f")
    program = combine("import math\nK = 2\ndef aux(x):\n    return x\ndef f(x):\n    return 0\n", "def f(x):\n    return aux(x)\nprint('hi')\n", "f")
    assert "import math" in program and "K = 2" in program and "print" not in program and program.count("def f") == 1
    assert same(2.5, 2.5) and same(3, 3.0) and not same(True, 1) and not same(1, True) and same([1, [2, "a"]], [1, [2, "a"]])
    assert not same(None, []) and not same({"a": 1}, {"a": 2})


# ---------------------------------------------------------------------------- the sandbox
TINY = {"id": "tiny", "entry_point": "f", "tests": [[[1], 2], [[5], 10]]}
GOOD_AUX = "def aux(x):\n    return x\n"


def test_sandbox_runs_code_in_another_process_only(tmp_path):
    marker = tmp_path / "pwned.txt"
    main = f"""
import builtins, os
builtins.AGORA_PWNED = True
def f(x):
    builtins.AGORA_PWNED = True
    open({str(marker)!r}, "w").write("x")
    return 2 * aux(x)
"""
    g = grade(TINY, GOOD_AUX, main)
    assert not hasattr(builtins, "AGORA_PWNED")  # nothing ran here
    assert not marker.exists() and g.passed == 0  # writing outside the sandbox folder is refused
    assert {r["error"] for r in g.results} == {"PermissionError"}
    assert grade(TINY, GOOD_AUX, "def f(x):\n    open('scratch.txt', 'w').write('ok')\n    return 2 * aux(x)\n").passed == 2


def test_graded_code_cannot_start_processes():  # sockets, reads and the rest: tests/test_sandbox.py
    for call in ("__import__('os').system('true')", "__import__('subprocess').run(['true'])", "__import__('os').fork()"):
        g = grade(TINY, GOOD_AUX, f"def f(x):\n    {call}\n    return 2 * aux(x)\n")
        assert g.passed == 0, call
    assert run_calls("import ctypes\ndef f():\n    return 1\n", "f", [[]]).load_error == "PermissionError"


def test_sandbox_limits_time_and_memory_and_fake_equality():
    start = time.perf_counter()
    g = grade(TINY, GOOD_AUX, "def f(x):\n    while True:\n        pass\n    return aux(x)\n", Limits(call_timeout_s=0.3))
    assert g.passed == 0 and {r["error"] for r in g.results} == {"Timeout"}
    stubborn = "def f(x):\n    n = 0\n    try:\n        while True:\n            n += 1\n    except BaseException:\n        while True:\n            n += 1\n    return aux(x)\n"
    g = grade(TINY, GOOD_AUX, stubborn, Limits(call_timeout_s=0.2, wall_timeout_s=1.5))
    assert g.passed == 0 and {r["error"] for r in g.results} == {"NoResult"}  # killed with its whole session
    assert time.perf_counter() - start < 6
    g = grade(TINY, GOOD_AUX, "def f(x):\n    big = [0] * (10 ** 10)\n    return aux(x)\n")
    assert {r["error"] for r in g.results} == {"MemoryError"}
    cheat = "class Yes(int):\n    def __eq__(self, other):\n        return True\ndef f(x):\n    aux(x)\n    return Yes(7)\n"
    assert [c.value for c in run_calls(cheat, "f", [[1]]).calls] == [None]  # an int subclass is not plain data
    assert grade(TINY, GOOD_AUX, cheat).passed == 0 and {r["error"] for r in grade(TINY, GOOD_AUX, cheat).results} == {"TypeError"}
    assert grade(TINY, GOOD_AUX, "def f(x):\n    return 2 * aux(x)\n").reward == pytest.approx(MAX_REWARD)
