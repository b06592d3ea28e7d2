"""What a user reads about a generated home: the floor plan picture and OUT/README.md."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from vicokd.io import atomic_path, write_text
from vicokd.synthetic.options import SynthOptions, SynthSummary
from vicokd.synthetic.render import VIS_WIDTH, VISIBLE_SHARE
from vicokd.synthetic.scene import LAYOUT_JOIN, LAYOUTS, Home, floor_visibility, layout_names
from vicokd.synthetic.script import CLASS_SCRIPTS
from vicokd.synthetic.view_quality import (
    BODY_HEIGHT,
    CLEAR_HEIGHT,
    CLEAR_SHARE,
    POOR_HEIGHT,
    POOR_SHARE,
    QUALITY_FILE,
    MomentCounts,
    ViewQualityStats,
)

_VIEW_COLORS = ("tab:red", "tab:blue", "tab:green", "tab:orange", "tab:purple", "tab:brown", "tab:pink",
                "tab:olive")


def _fov_edges(home: Home, k: int, size: tuple[int, int]) -> list[np.ndarray]:
    """Floor-plan segments (2, 2) from camera k along the left and right edges of its view."""
    camera = home.cameras[k]
    forward, right, _ = camera.basis()
    tan_x = camera.half_extent(size)[0]
    start = np.asarray(camera.position[:2])
    edges = []
    for side in (-1.0, 1.0):
        direction = (forward + side * tan_x * right)[:2]
        direction /= np.linalg.norm(direction)
        with np.errstate(divide="ignore"):
            limits = np.where(direction > 0, (np.asarray(home.size[:2]) - start) / direction, -start / direction)
        edges.append(np.stack([start, start + direction * np.nanmin(np.abs(limits))]))
    return edges


def draw_floor_plan(path: Path, home: Home, size: tuple[int, int]) -> None:
    """Save a PNG: furniture, door, window, cameras with their fields of view, and how many
    cameras see each spot of the open floor."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    width, depth = home.size[:2]
    seen, open_floor = floor_visibility(home, size)
    count = np.where(open_floor, seen.sum(axis=0), np.nan)
    fig, ax = plt.subplots(figsize=(8.4, 7.2), dpi=110)
    image = ax.imshow(count, origin="lower", extent=(0, width, 0, depth), cmap="Blues", vmin=0,
                      vmax=max(home.num_views, 1), alpha=0.55)
    fig.colorbar(image, ax=ax, shrink=0.7, label="cameras that see this spot of open floor")
    labelled: set[str] = set()
    for box in sorted(home.boxes, key=lambda b: b.hi[2]):
        if box.lo[2] >= 1.9 and box.name != "air conditioner":
            continue
        face = tuple(min(1.0, c * 1.1) for c in box.color)
        ax.add_patch(Rectangle(box.lo[:2], box.hi[0] - box.lo[0], box.hi[1] - box.lo[1], facecolor=face,
                               edgecolor="0.25", linewidth=0.6))
        base = box.name.split(" leg")[0].split(" books")[0].split(" seat")[0].split(" back")[0]
        base = {"lamp shade": "lamp"}.get(base, base)
        if base not in labelled and base not in ("lamp base", "lamp pole", "plant pot", "ac vane", "ac led",
                                                  "laptop", "laptop screen", "curtain rail", "plate", "sofa arm"):
            labelled.add(base)
            cx, cy = (box.lo[0] + box.hi[0]) / 2, (box.lo[1] + box.hi[1]) / 2
            ax.text(cx, cy, base, ha="center", va="center", fontsize=7, color="0.1", zorder=5,
                    bbox={"facecolor": "white", "alpha": 0.6, "pad": 1, "edgecolor": "none"})
    ax.plot([0, width, width, 0, 0], [0, 0, depth, depth, 0], color="0.2", linewidth=3)
    door, window = home.door, home.window
    ax.plot([0, 0], door.u, color="white", linewidth=4)
    ax.plot([0, 0], door.u, color="saddlebrown", linewidth=1.5, linestyle="--")
    ax.text(0.08, sum(door.u) / 2, "door", rotation=90, va="center", fontsize=8)
    ax.plot(window.u, [depth, depth], color="deepskyblue", linewidth=5)
    ax.text(sum(window.u) / 2, depth - 0.12, "window + curtains", ha="center", fontsize=8)
    ax.plot(*home.lamp_bulb[:2], marker="*", color="gold", markersize=14, markeredgecolor="0.3")
    for k, camera in enumerate(home.cameras):
        color = _VIEW_COLORS[k % len(_VIEW_COLORS)]
        for edge in _fov_edges(home, k, size):
            ax.plot(edge[:, 0], edge[:, 1], color=color, linewidth=1, alpha=0.8)
        x, y = camera.position[:2]
        heading = math.atan2(camera.target[1] - y, camera.target[0] - x)
        ax.plot(x, y, marker="o", color=color, markersize=7)
        ax.annotate("", xy=(x + 0.5 * math.cos(heading), y + 0.5 * math.sin(heading)), xytext=(x, y),
                    arrowprops={"arrowstyle": "-|>", "color": color, "lw": 2})
        ax.text(x + (0.15 if x < width / 2 else -0.15), y + (0.15 if y < depth / 2 else -0.2), camera.name,
                color=color, fontsize=9, fontweight="bold", ha="left" if x < width / 2 else "right")
    for station in home.stations:
        ax.plot(*station.stand, marker=".", color="0.35", markersize=4)
    ax.set_xlim(-0.3, width + 0.3)
    ax.set_ylim(-0.3, depth + 0.3)
    ax.set_aspect("equal")
    ax.set_xlabel("x (m), west → east")
    ax.set_ylabel("y (m), south → north")
    ax.set_title(f"Synthetic home: {width:g} × {depth:g} m, {home.num_views} cameras on the walls "
                 "(lines: horizontal fields of view)", fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp)
    plt.close(fig)


def _command(options: SynthOptions) -> str:
    classes = "" if len(options.classes) == len(CLASS_SCRIPTS) else f" --classes {','.join(options.classes)}"
    return (f"vicokd synth OUT --clips {options.clips} --views {options.views} --seed {options.seed} "
            f"--size {options.size[0]}x{options.size[1]} --fps {options.fps:g} --duration {_span(options.duration)} "
            f"--sessions {options.sessions} --test {options.test_fraction:g} "
            f"--supersample {options.supersample}{classes}"
            + ("" if options.layout == "home1" else f" --layout {options.layout}"))


def write_readme(path: Path, home: Home, options: SynthOptions, summary: SynthSummary) -> None:
    """Describe the generated dataset: files, home, cameras, classes, seed and coverage."""
    width, height = options.size
    lines = [
        "# Synthetic home",
        "",
        "A small home simulated and rendered by `vicokd synth` (ViCoKD reference implementation), in the",
        f"format of MultiSensor-Home, cameras hung as layout `{options.layout}` "
        f"({'; '.join(LAYOUTS[name] for name in layout_names(options.layout))}"
        + ("; clip i filmed by the (i mod n)-th layout, the floor plan and coverage below are the first's"
           if LAYOUT_JOIN in options.layout else "") + "). Made with:",
        "",
        f"    {_command(options)}",
        "",
        "The same command gives the same annotation files (byte for byte) and the same decoded frames.",
        "",
        "## Files",
        "",
        f"- `01/` … : session folders; `{{id}}-View{{k}}-Part1.mp4` is view k of a clip: H.264 video, "
        f"{width}×{height} at {options.fps:g} fps, and a FLAC track (16 kHz mono, lossless) from the "
        "microphone at camera k.",
        f"- `all_labels.json`: all {summary.clips} clip records; `train.json` ({summary.train}) and `test.json` "
        f"({summary.test}): {100 * (1 - options.test_fraction):.0f}:{100 * options.test_fraction:.0f} split by "
        f"iterative stratification (seed {options.seed}). A record is "
        '`{"video_url_1": …, "tricks": [{"start", "end", "labels"}]}`, times in seconds.',
        "- `visibility.npz`: what the simulator knows, in the person-score format of `vicokd detect` "
        "(detector `groundtruth`): per clip key an array (views, grid frames), 1 where at least "
        f"{100 * VISIBLE_SHARE:.0f} % of the actor's projected body is inside the image and not hidden "
        f"(measured on a {VIS_WIDTH}-pixel-wide grid); grid frame j is time j / 2.5 s.",
        f"- `{QUALITY_FILE}`: per clip key an array (4, views, grid frames): body cells seen, inside the "
        "image and in all on the same grid, and the apparent height of the actor (see *Views that see "
        "the action well or poorly*).",
        "- `floorplan.png`: the room from above with each camera's field of view and how many cameras see "
        "each spot of the floor.",
        "- `synth.json`: the options (a re-run with the same options resumes an interrupted one).",
        "",
        "## The home",
        "",
        f"One room of {home.size[0]:g} × {home.size[1]:g} m, {home.size[2]:g} m high (x west → east, "
        "y south → north): a sofa on the south wall with a floor lamp beside it, a dining table with two "
        "chairs, a desk with a laptop and a desk chair behind a shelf that divides the room, a bookshelf "
        "and a window with curtains on the north wall, an air conditioner high on the north wall, a door "
        "to the hallway on the west wall, a tall plant, a rug and two pictures. One person acts in it; "
        "their clothes and the daylight change from session to session.",
        "",
        "## Cameras and coverage",
        "",
        "Cameras hang on the walls at about 2.4 m, each with a microphone. *Floor seen*: share of the "
        "open floor inside the view and not hidden by furniture. *Actor visible*: share of the labelled "
        "action time in which the actor is visible in that view (from `visibility.npz`).",
        "",
        "| view | position (m) | looks at (m) | horizontal FOV | floor seen | actor visible |",
        "|---|---|---|---|---|---|",
    ]
    for camera, floor, action in zip(home.cameras, summary.floor_coverage, summary.action_visibility):
        lines.append(f"| {camera.name} | {_xyz(camera.position)} | {_xyz(camera.target)} | {camera.hfov:g}° "
                     f"| {100 * floor:.0f} % | {100 * action:.0f} % |")
    lines += [
        "",
        "Share of labelled time in which the actor is seen by 0, 1, 2, … views: "
        + ", ".join(f"{100 * s:.0f} %" for s in summary.seen_by) + ".",
        f"*Co-visibility*: the actor is seen by at least two views during {100 * sum(summary.seen_by[2:]):.0f} % "
        f"of the labelled time. *View disparity*: {summary.view_disparity:.2f}, the mean over view pairs of "
        "1 − |A ∩ B| / |A ∪ B|, where A and B are the labelled grid frames in which each of the two views "
        f"sees the actor (0: the views see the actor at the same moments; 1: never together); of the open "
        f"floor each view sees: {summary.floor_disparity:.2f}.",
        "An action can be heard at every microphone while it is seen in only some views (or none).",
        "",
    ]
    if summary.view_quality is not None:
        lines += _view_quality_lines(summary.view_quality, options.size)
    lines += [
        "## Classes",
        "",
        "Each class is a script of place, body motion, change in the room and sound. Clips last "
        f"{_span(options.duration)} s with 2-5 labelled actions; some overlap "
        "(multi-label frames).",
        "",
        "| class | where | motion | change in the room | sound | segments |",
        "|---|---|---|---|---|---|",
    ]
    for name in options.classes:
        where, motion, change, sound = CLASS_SCRIPTS[name]
        lines.append(f"| {name} | {where} | {motion} | {change} | {sound} | {summary.segments.get(name, 0)} |")
    lines += [
        "",
        "Sounds reach each microphone attenuated as 1/distance and delayed by distance / 343 m/s, over "
        "the microphone's own room noise. Walking (footsteps), idling and background sounds (birds, a "
        "passing car, the air conditioner's airflow) are not labelled.",
        "",
    ]
    write_text(path, "\n".join(lines))


def _pct(value: float) -> str:
    return f"{100 * value:.0f} %"


def _moment_row(name: str, counts: MomentCounts) -> str:
    """A table row: labelled time, ≥ 2-view share, VC share of it, VC moments by reason ("-" for 0/0)."""
    multi = _pct(counts.multi_share) if counts.labelled else "-"
    vc = _pct(counts.vc_share) if counts.multi else "-"
    reasons = [_pct(v) for v in counts.reason_shares().values()] if counts.vc else ["-"] * 3
    return f"| {name} | {counts.labelled / 2.5:.0f} s | {multi} | {vc} | " + " | ".join(reasons) + " |"


def _view_quality_lines(stats: ViewQualityStats, size: tuple[int, int]) -> list[str]:
    """The README section on VC moments (rule, thresholds, measured shares, table by class)."""
    kinds = stats.view_frames
    visible = sum(kinds[k] for k in ("clear", "between", "far", "hidden", "both"))
    poor_share = kinds["hidden"] + kinds["both"]
    overall = stats.overall
    reasons = overall.reason_shares()
    height_px = POOR_HEIGHT * size[1]
    lines = [
        "## Views that see the action well or poorly (VC moments)",
        "",
        "ViCoKD's view-aware consistency loss (VC) aligns the predictions of the views in which a person "
        "is detected; it is meant for moments when the actor is visible in two views but the action is "
        "clear in one and poor in the other. For each labelled grid frame and view that sees the actor "
        "(as in `visibility.npz`), the simulator measures the *seen share* of the body (inside the image "
        f"and not hidden, on the same {VIS_WIDTH}-column grid) and the *apparent height*: the height of the "
        f"upright body ({BODY_HEIGHT:g} m) at the torso's distance from the camera, as a share of the image "
        f"height (posture and occlusion left out; at {size[0]}×{size[1]} an apparent height of "
        f"{POOR_HEIGHT:g} is a {height_px:.0f}-pixel-tall person). A view is **clear** when it sees at "
        f"least {_pct(CLEAR_SHARE)} of the body and the apparent height is at least {CLEAR_HEIGHT:g}; "
        "**poor** when it sees less than "
        f"{_pct(POOR_SHARE)} (*partly hidden*: by furniture, walls or the image edge) or the apparent "
        f"height is below {POOR_HEIGHT:g} (*far/small*); in between otherwise. A *VC moment* is a "
        "labelled grid frame in which at least two views see the actor, one of them clear and one poor; "
        "its reason is that of its poor views (*both* when they differ or one view is poor by both).",
        "",
    ]
    if visible and stats.share_q and stats.height_q:
        q = dict(zip((10, 25, 50, 75, 90), stats.share_q))
        h = dict(zip((10, 25, 50, 75, 90), stats.height_q))
        lines += [
            f"Over the {visible} (view, labelled frame) pairs in which a view sees the actor, the seen share "
            f"has median {_pct(q[50])} (10th-90th percentile {_pct(q[10])}-{_pct(q[90])}) and the apparent "
            f"height median {h[50]:.2f} ({h[10]:.2f}-{h[90]:.2f}); {_pct(kinds['clear'] / visible)} of them "
            f"are clear, {_pct(kinds['between'] / visible)} in between and "
            f"{_pct((kinds['far'] + poor_share) / visible)} poor ({_pct(kinds['far'] / visible)} by size "
            f"only, {_pct(kinds['hidden'] / visible)} by share only, {_pct(kinds['both'] / visible)} by both). "
            + (f"Of the views poor by share, {_pct(kinds['hidden_edge'] / poor_share)} lose more of the body "
               "past the image edge than behind furniture." if poor_share else ""),
            "",
        ]
    lines += [
        f"Labelled time seen by at least two views: {_pct(overall.multi_share)}; of that, VC moments: "
        f"{_pct(overall.vc_share)} (far/small {_pct(reasons['far'])}, partly hidden "
        f"{_pct(reasons['hidden'])}, both {_pct(reasons['both'])}). Per-frame measures: `{QUALITY_FILE}`.",
        "",
        "| class | labelled time | seen by ≥ 2 views | VC moments (of the ≥ 2-view time) | far/small | "
        "partly hidden | both |",
        "|---|---|---|---|---|---|---|",
        _moment_row("all", overall),
        *(_moment_row(name, counts) for name, counts in stats.by_class.items()),
        "",
        "A frame can carry two labels, so the class rows add up to more than *all*. The last three columns "
        "split the VC moments by reason.",
        "",
    ]
    return lines


def _span(duration: tuple[float, float]) -> str:
    """"30" or "20-60" (seconds), as the --duration option takes it."""
    low, high = duration
    return f"{low:g}" if low == high else f"{low:g}-{high:g}"


def _xyz(point: tuple[float, float, float]) -> str:
    return "(" + ", ".join(f"{v:g}" for v in point) + ")"
