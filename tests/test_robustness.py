"""Arbitrary text as actions and messages: arenas never raise, count invalid actions, respect their spaces."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import arenas

texts = st.one_of(
    st.text(max_size=200),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=50).map(lambda t: f"<message>{t}</message><answer>{t}</answer>"),
    st.sampled_from(["", "\x00", "<answer>", "</message><message>", "<message to=\"nobody\">x</message>1", "9" * 5000]),
    st.builds(lambda a, b: a + b, st.sampled_from(["bet", "1", "cooperate", "accept", "3", "ab"]), st.text(max_size=20)),
)


@pytest.mark.parametrize("name", arenas.names())
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(actions=st.lists(texts, min_size=1, max_size=30), invalid=st.sampled_from(["penalize", "fallback"]),
       channel=st.sampled_from([None, {"topology": "ring", "bandwidth": 8, "noise": 0.5, "drop": 0.2, "cost": 0.1}]))
def test_any_text_is_accepted(name, actions, invalid, channel):
    env = arenas.make(name, invalid_action=invalid, channel=channel)
    env.reset(seed=0)
    invalid_steps = {a: 0 for a in env.possible_agents}
    simultaneous, penalized = arenas.spec(name).parallel, False
    for action in actions:
        if not env.agents:
            break
        agent = env.agent_selection
        obs, _, term, trunc, info = env.last()
        assert env.observation_space(agent).contains(obs)
        if term or trunc:
            env.step(None)
            continue
        env.step(action)
        if not env.infos[agent]["valid"]:
            invalid_steps[agent] += 1
        assert env.infos[agent]["invalid_actions"] == invalid_steps[agent]
        if invalid == "penalize" and not env.infos[agent]["valid"]:
            penalized = True
        if penalized and (not simultaneous or env.agent_selection == env.possible_agents[0]):
            assert all(env.terminations.values())  # at once, or at the end of a simultaneous round
