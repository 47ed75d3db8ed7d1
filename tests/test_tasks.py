"""league.tasks: every family generates at each difficulty, reads its own proposals back, computes and checks answers,
and turns any unparseable or hostile proposer text into an Invalid with a reason."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import arenas
from league.tasks import Invalid, Task, final_answer, load_family, names, task_text

ANSWER_FAMILIES = ["arithmetic", "string", "program_deduction", "program_abduction", "chain", "mirror"]


def test_registry_loads_by_name_and_names_the_known_ones():
    assert {"arithmetic", "string", "program_deduction", "program_abduction", "chain", "mirror", "arena_signalling",
            "arena_negotiation"} <= set(names())
    assert load_family("chain", max_difficulty=3).max_difficulty == 3
    with pytest.raises(KeyError, match="known: arena_negotiation"):
        load_family("sudoku")


@pytest.mark.parametrize("name", ANSWER_FAMILIES)
def test_generate_render_parse_check_round_trip(name):
    family = load_family(name)
    rng = np.random.default_rng(0)
    levels = range(1, family.max_difficulty + 1) if not name.startswith("program") else (1, 3, 6)
    for d in levels:
        task = family.generate(d, rng)
        assert isinstance(task, Task) and task.family == name and task.difficulty == d and task.prompt
        assert family.parse(family.render(task)) == task  # what a proposer writes reads back as the same task
        assert family.check(task, family.solution(task))
        assert family.check(task, "I think so.\n" + family.solution(task)) or name in ("chain", "mirror")
        assert not family.check(task, "")
        if name != "program_abduction":  # there, another input may well give the same output
            assert not family.check(task, "<answer>-12345</answer>")


def test_arithmetic_answers_and_invalid_texts():
    family = load_family("arithmetic")
    task = family.parse("Here you go: <task>(3 + 4) * 2</task>")
    assert task.answer == "14" and task.difficulty == 2 and task.spec == {"expression": "(3+4)*2"}
    assert family.check(task, "7*2 = <answer>14</answer>") and not family.check(task, "<answer>15</answer>")
    for text in ("", "hello", "2**8", "1/0", "x + 1", "__import__('os')", "(((", "9" * 300, "5",
                 "<task>" + "+".join(["1"] * 20) + "</task>", "99*99*99*99*99"):
        assert isinstance(family.parse(text), Invalid), text


def test_string_operations():
    family = load_family("string")
    task = family.parse("<task>ops: reverse, upper, dedupe\ninput: hello</task>")
    assert task.answer == "OLEH" and task.difficulty == 3
    assert family.parse("ops: sort, count l\ninput: hello").answer == "2"
    assert family.parse("ops: double, length\ninput: abc").answer == "6"
    for text in ("reverse hello", "ops: explode\ninput: abc", "ops: count l, reverse\ninput: hello", "ops: \ninput: x"):
        assert isinstance(family.parse(text), Invalid), text


def test_chain_rewrites_one_addition_per_step():
    family = load_family("chain", max_difficulty=6)
    task = family.parse("3+4+2+7")
    assert task.answer == "7+2+7 9+7 6" and task.difficulty == 3
    assert family.check(task, " 7+2+7  9+7 6 ") and not family.check(task, "6") and not family.check(task, "7+2+7 9+7 5")
    assert isinstance(family.parse("3+4+2+7+1+1+1+1"), Invalid) and isinstance(family.parse("12+3"), Invalid)
    # the warm start's responses: every line's shape and copies right, the first sum right, later sums random
    rng = np.random.default_rng(0)
    examples = [family.format_example(task, rng).split() for _ in range(200)]
    assert all(e[0] == "7+2+7" and e[1][1:] == "+7" and len(e[2]) == 1 for e in examples)
    assert len({e[1][0] for e in examples}) == 10 and len({e[2] for e in examples}) == 10
    assert family.format_example(family.parse("3+4"), rng) == "7"


def test_mirror_levels_share_the_word_and_check_one_more_letter():
    family = load_family("mirror", max_difficulty=5, letters=8)
    tasks = [family.parse(f"<task>bdhae {d}</task>") for d in range(1, 6)]
    assert [t.answer for t in tasks] == ["e", "ea", "eah", "eahd", "eahdb"] and [t.difficulty for t in tasks] == [1, 2, 3, 4, 5]
    assert {t.prompt for t in tasks} == {"bdhae"}  # the prompt is the word alone: every level asks for the same response
    assert family.parse(family.render(tasks[2])) == tasks[2] and tasks[2].key() != tasks[3].key()
    assert family.check(tasks[2], " eahdb\n") and family.check(tasks[2], "eah") and not family.check(tasks[2], "ea")
    assert not family.check(tasks[4], "eahdc") and family.check(tasks[4], "eahdb")
    for text in ("bdhae", "bdhai 2", "bdha 2", "bdhae 6", "bdhae 0"):  # i is outside an 8-letter alphabet
        assert isinstance(family.parse(text), Invalid), text
    with pytest.raises(ValueError, match="letters"):
        load_family("mirror", letters=11)
    rng = np.random.default_rng(0)
    assert set(family.generate(5, rng).prompt) <= set("abcdefgh")
    examples = [family.format_example(tasks[1], rng) for _ in range(200)]  # first letter right, then random, a whole word
    assert all(len(e) == 5 and e[0] == "e" for e in examples) and len({e[1] for e in examples}) == 8


def test_program_deduction_and_abduction():
    code = "def f(x):\n    y = x * 3\n    return y - 1\n"
    deduction, abduction = load_family("program_deduction"), load_family("program_abduction")
    task = deduction.parse(f"<task>{code}input: 4</task>")
    assert task.answer == "11" and task.difficulty == 1 and task.spec["output"] == 11
    assert deduction.check(task, "<answer>11</answer>") and not deduction.check(task, "<answer>12</answer>")
    task = abduction.parse(f"```python\n{code}```\ninput: 4")
    assert task.answer == "4" and "f(x) == 11" in task.prompt
    # any input that gives the output is right; it is checked by running the program in the sandbox
    even = abduction.parse("<task>def f(x):\n    x = x % 2\n    return x\ninput: 3</task>")
    assert abduction.check(even, "<answer>5</answer>") and not abduction.check(even, "<answer>4</answer>")
    assert not abduction.check(even, "<answer>__import__('os')</answer>")


@pytest.mark.parametrize("code,reason", [
    ("def f(x):\n    while True:\n        x += 1\n    return x\n", "Timeout"),
    ("import os\ndef f(x):\n    x = x + 1\n    return x\n", "importing os"),
    ("def f(x):\n    x = len(open('/etc/passwd').read())\n    return x\n", "reading outside"),
    ("def f(x):\n    x = hash(str(x)) % 1000\n    return x\n", "different results"),
    ("def f(x):\n    x = [x]\n    return x\n", "return an integer"),
    ("def f(x):\n    x = 1 // (x - x)\n    return x\n", "ZeroDivisionError"),
    ("def g(x):\n    x = x + 1\n    return x\n", "no function f"),
    ("def f(x):\n    return x +\n", "does not parse"),
    ("def f(x):\n    return x\n", "0 statements"),
])
def test_hostile_or_broken_programs_are_invalid_tasks(code, reason):
    result = load_family("program_deduction").parse(f"<task>{code}input: 3</task>")
    assert isinstance(result, Invalid) and reason in result.reason


def test_arena_configurations_are_tasks_that_make_arenas():
    family = load_family("arena_signalling")
    rng = np.random.default_rng(0)
    objects = []
    for d in (1, 5, 15):
        task = family.generate(d, rng)
        env = arenas.make(task.spec["arena"], **task.spec["params"])
        env.reset(seed=0)
        objects.append(task.spec["params"]["num_objects"])
        assert family.parse(family.render(task)) == task
    assert objects == sorted(objects) and objects[0] == 2
    assert isinstance(family.parse('{"num_objects": 99}'), Invalid) and isinstance(family.parse("many"), Invalid)
    negotiation = load_family("arena_negotiation").generate(3, rng)
    assert arenas.make(negotiation.spec["arena"], **negotiation.spec["params"]) is not None
    with pytest.raises(TypeError, match="playing"):
        family.check(negotiation, "anything")


def test_answer_and_task_extraction():
    assert final_answer("thinking... <answer>1</answer> no wait <answer> 2 </answer>") == "2"
    assert final_answer("Answer: 42") == "42"
    assert task_text("a <task>x</task> b <task> y </task>") == "y" and task_text("  plain  ") == "plain"


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=300))
def test_any_proposer_text_is_a_task_or_invalid_never_an_error(text):
    for name in ("arithmetic", "string", "chain", "mirror", "arena_negotiation"):
        assert isinstance(load_family(name).parse(text), (Task, Invalid))
