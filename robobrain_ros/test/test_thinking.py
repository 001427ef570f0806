"""The thinking switch's three spellings (goal field, model.thinking, brain_query words) map through one module."""

import pytest

from robobrain_ros.action_table import ACTIONS
from robobrain_ros.protocol.thinking import (
    GOAL_WORDS,
    PARAMETER_WORDS,
    THINKING_DEFAULT,
    THINKING_OFF,
    THINKING_ON,
    thinking_for_goal,
)


@pytest.mark.parametrize('action', ACTIONS, ids=lambda action: action.name)
def test_goal_values_are_the_actions_constants(action):
    goal = action.action_type.Goal
    assert (goal.THINKING_DEFAULT, goal.THINKING_OFF, goal.THINKING_ON) == (THINKING_DEFAULT, THINKING_OFF, THINKING_ON)


def test_the_parameter_offers_exactly_the_words_mapped():
    from robobrain_ros.node.parameters import PARAMETERS
    assert PARAMETERS['model.thinking'].choices == tuple(PARAMETER_WORDS)
    assert PARAMETER_WORDS == {'off': False, 'on': True, 'none': None}


@pytest.mark.parametrize('default', [True, False, None])
def test_a_goal_asks_its_own_switch_or_the_nodes_default(default):
    assert thinking_for_goal(THINKING_DEFAULT, default) is default
    assert thinking_for_goal(THINKING_OFF, default) is False
    assert thinking_for_goal(THINKING_ON, default) is True
    assert [thinking_for_goal(GOAL_WORDS[word], default) for word in ('default', 'off', 'on')] == [default, False,
                                                                                                 True]


def test_an_unknown_goal_value_is_refused_naming_the_three():
    with pytest.raises(ValueError, match=r'unknown thinking value 7: use THINKING_DEFAULT \(0\)'):
        thinking_for_goal(7, False)

