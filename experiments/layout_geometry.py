"""What each camera layout lets the views see: geometry of the world, no model trained.

For a camera layout of the synthetic home, plans clips of the 16 classes (the generator's scripts,
seed --seed) and measures, on every labelled 2.5-FPS grid frame, per view: whether it sees the
actor (share of the body >= 0.25, the rule of visibility.npz), the actor's apparent height, and
from which side it sees them (the angle between the actor's heading and the direction to the
camera: front < 60°, side 60-120°, back > 120°). Prints per layout, over the labelled frames:
how many views see the actor, the co-visibility and view disparity, the median apparent height,
the median angle at which the views look down on the actor, the share of frames with a front or
side view of at least 0.4 of the image height, and per class
the share of frames some view sees clearly (share >= 0.75, height >= 0.5).

    python experiments/layout_geometry.py --clips 40 --layouts home1,home2
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from vicokd.data.annotations import frame_labels
from vicokd.synthetic.actor import random_outfit
from vicokd.synthetic.render import GRID_FPS, VISIBLE_SHARE, ViewRenderer
from vicokd.synthetic.scene import LAYOUTS, build_home, pairwise_disparity
from vicokd.synthetic.script import CLASSES, plan_clip
from vicokd.synthetic.view_quality import clip_view_measures, visible_shares

SIZE = (80, 60)
TORSO_HEIGHT = 1.0  # metres: the look-down angle is taken to this height above the actor's floor position


def layout_stats(layout: str, clips: int, seed: int) -> dict[str, object]:
    home = build_home(5, layout)
    renderers = [ViewRenderer(home, camera, SIZE, 1) for camera in home.cameras]
    seen_all, heights, sides, labels_all, shares_all, downs = [], [], [], [], [], []
    for i in range(clips):
        rng = np.random.default_rng([seed, i])
        outfit, daylight = random_outfit(np.random.default_rng([seed, 7919, 0])), 0.7
        script = plan_clip(home, rng, round(float(rng.uniform(20, 40)) * 2.5) / 2.5, CLASSES, outfit, daylight)
        measures = clip_view_measures(renderers, script, 2.5)
        length = measures.shape[2]
        labels = frame_labels(script.tricks(), length, CLASSES, GRID_FPS)
        times = np.arange(length) / GRID_FPS
        pose = script.pose(times)
        angle, down = [], []
        for camera in home.cameras:
            to_camera = np.arctan2(camera.position[1] - pose["y"], camera.position[0] - pose["x"])
            diff = np.abs((to_camera - pose["heading"] + math.pi) % (2 * math.pi) - math.pi)
            angle.append(np.degrees(diff))
            flat = np.hypot(camera.position[0] - pose["x"], camera.position[1] - pose["y"])
            down.append(np.degrees(np.arctan2(camera.position[2] - TORSO_HEIGHT, flat)))
        labelled = labels.any(axis=1)
        shares = visible_shares(measures)[:, labelled]
        seen_all.append(shares >= VISIBLE_SHARE)
        shares_all.append(shares)
        heights.append(measures[3][:, labelled])
        sides.append(np.stack(angle)[:, labelled])
        downs.append(np.stack(down)[:, labelled])
        labels_all.append(labels[labelled])
    seen = np.concatenate(seen_all, axis=1)
    share = np.concatenate(shares_all, axis=1)
    height = np.concatenate(heights, axis=1)
    side = np.concatenate(sides, axis=1)
    down = np.concatenate(downs, axis=1)
    labels = np.concatenate(labels_all)
    count = seen.sum(axis=0)
    useful = seen & (height >= 0.4) & (side < 120)
    clear = seen & (share >= 0.75) & (height >= 0.5)
    per_class = {c: float(clear.any(axis=0)[labels[:, k] > 0].mean()) for k, c in enumerate(CLASSES)
                 if labels[:, k].any()}
    return {
        "frames": int(seen.shape[1]),
        "views seeing (mean)": float(count.mean()),
        "seen by >= 2": float((count >= 2).mean()),
        "seen by none": float((count == 0).mean()),
        "disparity": pairwise_disparity(seen),
        "median height (seen)": float(np.median(height[seen])),
        "median look-down angle (seen, deg)": float(np.median(down[seen])),
        "front/side view >= 0.4": float(useful.any(axis=0).mean()),
        "front/side views >= 0.4 (mean)": float(useful.sum(axis=0).mean()),
        "clear view": float(clear.any(axis=0).mean()),
        "per class clear": per_class,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=40)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--layouts", default=",".join(LAYOUTS))
    args = parser.parse_args()
    rows = {layout: layout_stats(layout, args.clips, args.seed) for layout in args.layouts.split(",")}
    keys = [k for k in next(iter(rows.values())) if k != "per class clear"]
    print("| | " + " | ".join(rows) + " |\n|:---|" + "---:|" * len(rows))
    for key in keys:
        print(f"| {key} | " + " | ".join(f"{r[key]:.2f}" if isinstance(r[key], float) else str(r[key])
                                         for r in rows.values()) + " |")
    for c in CLASSES:
        print(f"| clear: {c} | " + " | ".join(f"{r['per class clear'].get(c, float('nan')):.2f}"
                                             for r in rows.values()) + " |")


if __name__ == "__main__":
    main()
