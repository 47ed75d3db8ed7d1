import pytest

from arenas.parsing import normalize, parse_choice, split_message

LEGAL = ["pass", "bet"]


@pytest.mark.parametrize("text,expected", [
    ("bet", "bet"),
    ("  BET.  ", "bet"),
    ("I think I should bet", "bet"),
    ("Let me think. Betting is risky, so I pass.\n<answer>pass</answer>", "pass"),
    ("<answer> Bet </answer>", "bet"),
    ("Reasoning: bet would be bold...\nAnswer: pass", "pass"),
    ("**Final answer:** `bet`", "bet"),
    ("bet or pass?", None),
    ("", None),
    ("fold", None),
    ("<answer>raise</answer>", None),
])
def test_parse_choice(text, expected):
    assert parse_choice(text, LEGAL) == expected


def test_aliases_only_map_to_legal_actions():
    assert parse_choice("I call", LEGAL, {"call": "bet"}) == "bet"
    assert parse_choice("I call", ["pass"], {"call": "bet"}) is None


def test_answer_tag_wins_over_earlier_mentions():
    assert parse_choice("bet bet bet <answer>pass</answer>", LEGAL) == "pass"


def test_huge_hostile_text_is_cheap_and_safe():
    text = "bet " * 500_000 + "(" * 10_000 + "<answer>pass</answer>"
    assert parse_choice(text, LEGAL) == "pass"


def test_normalize():
    assert normalize('  "Cooperate!"  ') == "cooperate"
    assert normalize("propose   2 1\n0") == "propose 2 1 0"


def test_split_message():
    msg, to, rest = split_message('<message to="p1, p2">hi there</message> <answer>bet</answer>')
    assert msg == "hi there" and to == ["p1", "p2"] and "message" not in rest and "bet" in rest
    assert split_message("just bet") == (None, None, "just bet")
