"""The brain's lifecycle: inactive brains reject goals; cleanup and configure again give a working brain."""

from __future__ import annotations

from action_msgs.msg import GoalStatus
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from std_msgs.msg import Header

from robobrain_ros.harness.brain_process import wait_until
from robobrain_ros.harness.camera_publisher import test_image
from robobrain_ros.node.image_conversion import rgb_to_image_msg


def call(node, service_type, name: str, request, timeout: float = 20.0):
    client = node.create_client(service_type, name)
    try:
        assert client.wait_for_service(timeout_sec=timeout), f'no service {name}'
        future = client.call_async(request)
        assert wait_until(future.done, timeout), f'{name} did not answer'
        return future.result()
    finally:
        node.destroy_client(client)


def transition(node, brain: str, transition_id: int) -> None:
    response = call(node, ChangeState, f'/{brain}/change_state',
                    ChangeState.Request(transition=Transition(id=transition_id)))
    assert response.success, f'transition {transition_id} of {brain} failed'


def state(node, brain: str) -> str:
    return call(node, GetState, f'/{brain}/get_state', GetState.Request()).current_state.label


def test_deactivate_rejects_and_reconfigure_serves_again(start_brain, vllm_server):
    name = 'lifecycle_brain'
    brain = start_brain({'server.base_urls': [vllm_server.base_url], 'model.max_tokens': 32,
                         'model.allow_empty_answer': False, 'topics.image': ''}, name=name)
    node = brain.node
    image = rgb_to_image_msg(test_image(), Header(frame_id='lifecycle_camera'))
    assert state(node, name) == 'active'

    transition(node, name, Transition.TRANSITION_DEACTIVATE)
    assert state(node, name) == 'inactive'
    assert brain.query('point', 'the cup', image=image, wait_timeout=30.0).status_name == 'rejected'

    transition(node, name, Transition.TRANSITION_CLEANUP)
    transition(node, name, Transition.TRANSITION_CONFIGURE)
    transition(node, name, Transition.TRANSITION_ACTIVATE)
    assert state(node, name) == 'active'
    # The action servers were made anew: wait until this client sees them, both ways.
    assert brain.wait_for_server('point', 30.0)
    outcome = brain.query('point', 'the cup', image=image, wait_timeout=60.0)
    assert outcome.status == GoalStatus.STATUS_SUCCEEDED, outcome.answer.info.status.message
    assert brain.process.alive() and 'Traceback' not in brain.process.log()
