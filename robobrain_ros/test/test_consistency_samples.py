"""Unit tests of sample-set loading and of the shipped set."""

import json

import pytest

from robobrain_ros.consistency.samples import SHIPPED_SAMPLES, SampleError, load_samples
from robobrain_ros.protocol import Task


def test_shipped_set_covers_every_task_with_ground_truth_where_scorable():
    samples = load_samples(SHIPPED_SAMPLES)
    assert {sample.task for sample in samples} == set(Task)
    for sample in samples:
        assert sample.load_image().shape == (480, 640, 3)
        if sample.truth.mask_path is not None:
            mask = sample.load_mask()
            assert mask.shape == (480, 640) and mask.any()
    assert any(s.truth.mask_path for s in samples) and any(s.truth.box for s in samples)
    assert any(s.truth.trajectory for s in samples)


def _write(tmp_path, *entries, image=True):
    if image:
        (tmp_path / 'img.png').write_bytes((SHIPPED_SAMPLES.parent / 'images' / 'table.png').read_bytes())
    path = tmp_path / 'set.jsonl'
    path.write_text('# a comment\n\n' + '\n'.join(json.dumps(e) for e in entries) + '\n')
    return path


def _entry(**overrides):
    entry = {'id': 'a', 'task': 'grounding', 'image': 'img.png', 'instruction': 'the cup',
             'ground_truth': {'box': [1, 2, 3, 4]}}
    entry.update(overrides)
    return entry


def test_paths_are_relative_to_the_sample_file(tmp_path):
    (sample,) = load_samples(_write(tmp_path, _entry()))
    assert sample.image_path == tmp_path / 'img.png'
    assert sample.truth.box == (1.0, 2.0, 3.0, 4.0)
    assert sample.task is Task.GROUNDING


@pytest.mark.parametrize('entry, message', [
    (_entry(task='dancing'), 'unknown task'),
    (_entry(image='missing.png'), 'no image at'),
    (_entry(instruction=''), '"instruction" must be a non-empty string'),
    (_entry(ground_truth={'box': [3, 2, 1, 4]}), 'x1 <= x2'),
    (_entry(ground_truth={'box': [1, 2, 3]}), 'list of 4 numbers'),
    (_entry(ground_truth={'trajectory': [[1, 2]]}), 'cannot be scored against'),
    (_entry(ground_truth={'mask': 'missing.png'}), 'cannot be scored against'),
    (_entry(task='pointing', ground_truth={'mask': 'missing.png'}), 'no mask at'),
    (_entry(ground_truth={'polygon': []}), 'unknown ground_truth keys'),
])
def test_bad_samples_are_named_with_their_line(tmp_path, entry, message):
    with pytest.raises(SampleError, match=message) as error:
        load_samples(_write(tmp_path, entry))
    assert 'set.jsonl:3' in str(error.value)


def test_duplicate_ids_and_empty_files_are_refused(tmp_path):
    with pytest.raises(SampleError, match='used twice'):
        load_samples(_write(tmp_path, _entry(), _entry()))
    with pytest.raises(SampleError, match='holds no samples'):
        load_samples(_write(tmp_path))
