"""Draw the consistency tool's shipped sample set: simple table-top scenes whose boxes and masks are known exactly.

Deterministic (no randomness, OpenCV drawing only): running it again writes the same PNGs and samples.jsonl.

    python scripts/make_consistency_samples.py [--out robobrain_ros/robobrain_ros/consistency/shipped_samples]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

# 640x480 is not a multiple of 28: the model sees 644x476, so every answer goes through the coordinate mapping.
WIDTH, HEIGHT = 640, 480
TABLE = (40, 200, 600, 470)                 # x1, y1, x2, y2 of the table top [px]
RED_CUP = (150, 250, 210, 330)
BLUE_BOX = (400, 240, 520, 330)
GREEN_PLATE_CENTER, GREEN_PLATE_RADIUS = (300, 400), 45
MUG_BODY = (470, 370, 530, 440)
MUG_HANDLE = (530, 385, 555, 425)
FREE_SPACE = (60, 350, 200, 460)            # the empty part of the table left of the plate, below the cup


def _draw_scene() -> np.ndarray:
    image = np.full((HEIGHT, WIDTH, 3), (235, 230, 220), np.uint8)   # wall (RGB)
    cv2.rectangle(image, TABLE[:2], TABLE[2:], (150, 110, 70), cv2.FILLED)
    cv2.rectangle(image, RED_CUP[:2], RED_CUP[2:], (200, 30, 30), cv2.FILLED)
    cv2.rectangle(image, BLUE_BOX[:2], BLUE_BOX[2:], (40, 70, 200), cv2.FILLED)
    cv2.circle(image, GREEN_PLATE_CENTER, GREEN_PLATE_RADIUS, (40, 170, 60), cv2.FILLED)
    cv2.rectangle(image, MUG_BODY[:2], MUG_BODY[2:], (240, 240, 240), cv2.FILLED)
    cv2.rectangle(image, MUG_HANDLE[:2], MUG_HANDLE[2:], (240, 240, 240), 6)
    return image


def _plate_mask() -> np.ndarray:
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    cv2.circle(mask, GREEN_PLATE_CENTER, GREEN_PLATE_RADIUS, 255, cv2.FILLED)
    return mask


def _free_space_mask() -> np.ndarray:
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    cv2.rectangle(mask, FREE_SPACE[:2], FREE_SPACE[2:], 255, cv2.FILLED)
    return mask


def _samples() -> list[dict]:
    cup_center = ((RED_CUP[0] + RED_CUP[2]) // 2, (RED_CUP[1] + RED_CUP[3]) // 2)
    return [
        {'id': 'point-red-cup', 'task': 'pointing', 'image': 'images/table.png',
         'instruction': 'Point to the red cup', 'ground_truth': {'box': list(RED_CUP)}},
        {'id': 'point-free-space', 'task': 'pointing', 'image': 'images/table.png',
         'instruction': 'Point to free space on the table where the cup can be placed',
         'ground_truth': {'mask': 'images/table_free_space_mask.png'}},
        {'id': 'point-plate', 'task': 'pointing', 'image': 'images/table.png',
         'instruction': 'Point to the green plate', 'ground_truth': {'mask': 'images/table_plate_mask.png'}},
        {'id': 'afford-mug-handle', 'task': 'affordance', 'image': 'images/table.png',
         'instruction': 'grasp the mug by its handle', 'ground_truth': {'box': list(MUG_HANDLE)}},
        {'id': 'ground-blue-box', 'task': 'grounding', 'image': 'images/table.png',
         'instruction': 'the blue box', 'ground_truth': {'box': list(BLUE_BOX)}},
        {'id': 'trajectory-cup-to-plate', 'task': 'trajectory', 'image': 'images/table.png',
         'instruction': 'move the red cup onto the green plate',
         'ground_truth': {'trajectory': [list(cup_center), [240, 300], [280, 360], list(GREEN_PLATE_CENTER)]}},
        {'id': 'plan-clear-table', 'task': 'planning', 'image': 'images/table.png',
         'instruction': 'Put the red cup on the green plate and the mug into the blue box'},
        {'id': 'general-describe', 'task': 'general', 'image': 'images/table.png',
         'instruction': 'What objects are on the table?'},
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_out = Path(__file__).resolve().parents[1] / 'robobrain_ros/robobrain_ros/consistency/shipped_samples'
    parser.add_argument('--out', type=Path, default=default_out)
    args = parser.parse_args(argv)
    images = args.out / 'images'
    images.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(images / 'table.png'), cv2.cvtColor(_draw_scene(), cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_PNG_COMPRESSION, 9])
    cv2.imwrite(str(images / 'table_plate_mask.png'), _plate_mask(), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    cv2.imwrite(str(images / 'table_free_space_mask.png'), _free_space_mask(), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    with open(args.out / 'samples.jsonl', 'w') as f:
        f.writelines(json.dumps(sample) + '\n' for sample in _samples())
    print(f'wrote {len(_samples())} samples to {args.out}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
