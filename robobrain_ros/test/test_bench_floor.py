"""The floor benchmark (bench/floor.py) with tiny numbers: every cell gets its round trips from its own server and
client processes, the kept-goals measurement gets its levels, and the report has a row per cell. Timings are
printed by the benchmark, never asserted here."""

from __future__ import annotations

import copy
import json
from itertools import product

from robobrain_ros.bench import floor
from robobrain_ros.bench.floor_server import EXECUTORS, PACINGS, PAYLOADS


def table_rows(markdown: str) -> list[str]:
    return [line for line in markdown.splitlines()
            if line.startswith('| ') and any(name in line for name in floor.EXECUTOR_NAMES.values())]


def test_floor_measures_every_cell_and_renders_a_row_per_cell(tmp_path):
    results = floor.run(repetitions=4, block=2, kept_levels=(0, 10), kept_goals=5, log=lambda message: None)

    # Every executor works in this rclpy (its cells have no error), and each cell has n positive round trips.
    assert set(results['cells']) == {floor.cell_key(*cell) for cell in product(EXECUTORS, PAYLOADS, PACINGS)}
    for key, cell in results['cells'].items():
        assert 'error' not in cell, f"{key}: {cell['error']}"
        for name in ('round_trip_ms', 'accepted_ms', 'kept'):
            assert len(cell['samples'][name]) == 4, (key, name)
        assert all(value > 0 for value in cell['samples']['round_trip_ms'] + cell['samples']['accepted_ms']), key
        assert cell['round_trip_ms']['n'] == 4
    assert results['serialise_goal_ms']['image']['bytes'] > floor.IMAGE_WIDTH * floor.IMAGE_HEIGHT * 3
    assert results['rclpy'] != 'unknown' and results['ros_distro']

    kept = results['kept_goals']
    assert 'error' not in kept, kept.get('error')
    assert sorted(level['kept'] for level in kept['levels'].values())[1] >= 10
    assert all(len(level['samples']) == 5 and all(value > 0 for value in level['samples'])
               for level in kept['levels'].values())
    assert isinstance(kept['us_per_kept_goal'], float)

    text = floor.section(results)
    assert text.startswith("### The floor: rclpy's own action round trip\n")
    assert len(table_rows(text)) == len(results['cells'])
    print(floor.text_summary(results))

    # floor.json is plain JSON (no NaN), and a cell that failed renders as a row saying so.
    json.dumps(results, allow_nan=False)
    (path,) = floor.write(results, tmp_path)
    assert json.loads(path.read_text())['cells'].keys() == results['cells'].keys()
    broken = copy.deepcopy(results)
    broken['cells'][floor.cell_key('events', 'image', 'idle')]['error'] = 'the client hung\nlog tail'
    rows = table_rows(floor.section(broken))
    assert len(rows) == len(results['cells']) and sum('error: the client hung |' in row for row in rows) == 1
