"""`vicokd detect --image FILE` / `--video FILE`: scores and a PNG with the detections drawn.

For an image: its person score and one annotated picture. For a video: the score of every frame
of the 2.5-FPS grid (the frames the dataset uses) and a contact sheet of up to `max_tiles` of them
(evenly spread), each annotated, above a bar chart of the scores of all grid frames with the
threshold line. Scores follow the detector's rule: mean confidence of its person detections,
0 when none. Drawn: boxes with their confidence, keypoints with visibility > 0.5 and the
skeleton between them, and the person mask tinted green, where the detector provides them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, UnidentifiedImageError

from vicokd.data.sampling import sample_indices
from vicokd.detect.base import Detection, PersonDetector, check_frames, mean_confidence
from vicokd.errors import DataError

BOX = (255, 40, 40)
POINT = (40, 255, 80)
BONE = (255, 220, 0)
MASK = np.array([0, 255, 0], dtype=np.float32)


@dataclass(frozen=True)
class QuickLook:
    """Scores ``(N,)`` (N = 1 for an image, L grid frames for a video), grid times and the PNG."""

    scores: np.ndarray
    times: np.ndarray  # seconds of each scored frame (0 for an image)
    detections: list[list[Detection]]
    png: Path


def load_image(path: str | Path) -> np.ndarray:
    """An image file as ``(H, W, 3)`` uint8 RGB."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: image file not found")
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"{path}: unreadable image ({exc})") from None


def draw_detections(frame: np.ndarray, detections: list[Detection], caption: str = "") -> Image.Image:
    """`frame` ``(H, W, 3)`` uint8 RGB with masks, skeletons, keypoints and boxes drawn on it."""
    pixels = frame.astype(np.float32)
    for found in detections:
        if found.mask is not None and found.mask.shape == frame.shape[:2]:
            alpha = 0.35 * np.clip(found.mask, 0, 1)[..., None]
            pixels = pixels * (1 - alpha) + MASK * alpha
    image = Image.fromarray(pixels.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    line = max(1, round(min(frame.shape[:2]) / 160))
    for found in detections:
        if found.keypoints is not None:
            points = found.keypoints
            visible = points[:, 2] > 0.5
            for a, b in found.edges:
                if visible[a] and visible[b]:
                    draw.line([tuple(points[a, :2]), tuple(points[b, :2])], fill=BONE, width=line)
            for x, y, _ in points[visible]:
                draw.ellipse([x - 2 * line, y - 2 * line, x + 2 * line, y + 2 * line], fill=POINT)
        x0, y0, x1, y1 = found.box
        if x1 > x0 and y1 > y0:
            draw.rectangle([x0, y0, x1, y1], outline=BOX, width=line)
            draw.text((x0 + 2, max(0, y0 - 12)), f"person {found.confidence:.2f}", fill=BOX)
    if caption:
        draw.rectangle([0, 0, 8 + 6 * len(caption), 14], fill=(0, 0, 0))
        draw.text((4, 2), caption, fill=(255, 255, 0))
    return image


def _default_png(source: Path) -> Path:
    return source.with_name(f"{source.stem}.detect.png")


def _detect_batched(detector: PersonDetector, frames: np.ndarray) -> list[list[Detection]]:
    found: list[list[Detection]] = []
    for start in range(0, len(frames), detector.batch_size):
        found.extend(detector.detect(frames[start : start + detector.batch_size]))
    return found


def look_image(path: str | Path, detector: PersonDetector, png: str | Path | None = None) -> QuickLook:
    """Score one image file and write it annotated to `png` (default ``<stem>.detect.png`` beside it)."""
    path = Path(path)
    frame = load_image(path)
    found = detector.detect(check_frames(frame))[0]
    score = mean_confidence(found)
    png = Path(png) if png is not None else _default_png(path)
    png.parent.mkdir(parents=True, exist_ok=True)
    draw_detections(frame, found, f"{detector.name} score {score:.2f}").save(png)
    return QuickLook(np.array([score], np.float32), np.zeros(1), [found], png)


def _score_strip(scores: np.ndarray, threshold: float, width: int, height: int = 90) -> Image.Image:
    """Bar chart of the scores (one bar per grid frame, 0..1 upwards) with the threshold line."""
    strip = Image.new("RGB", (width, height), (25, 25, 25))
    draw = ImageDraw.Draw(strip)
    top, bottom = 14, height - 4
    step = width / max(1, len(scores))
    for j, score in enumerate(scores):
        y = bottom - float(np.clip(score, 0, 1)) * (bottom - top)
        colour = (90, 200, 90) if score > threshold else (120, 120, 120)
        draw.rectangle([j * step, y, max(j * step, (j + 1) * step - 1), bottom], fill=colour)
    y = bottom - threshold * (bottom - top)
    draw.line([0, y, width, y], fill=(255, 80, 80), width=1)
    draw.text((4, 1), f"person score per grid frame (threshold {threshold:g})", fill=(230, 230, 230))
    return strip


def look_video(
    path: str | Path,
    detector: PersonDetector,
    png: str | Path | None = None,
    fps: float = 2.5,
    threshold: float = 0.5,
    max_tiles: int = 32,
    tile_width: int = 320,
) -> QuickLook:
    """Score every grid frame of a video file; write a contact sheet + score strip to `png`."""
    from vicokd.data.media import probe_video, read_grid_frames

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: video file not found")
    info = probe_video(path)
    frames = read_grid_frames(path, (info.height, info.width), fps)
    found = _detect_batched(detector, frames)
    scores = np.array([mean_confidence(f) for f in found], dtype=np.float32)
    times = np.arange(len(frames)) / fps
    shown = np.unique(sample_indices(len(frames), min(max_tiles, len(frames)), "uniform"))
    tile_height = max(1, round(tile_width * info.height / info.width))
    columns = min(4, len(shown))
    rows = -(-len(shown) // columns)
    sheet = Image.new("RGB", (columns * tile_width, rows * tile_height), (0, 0, 0))
    for slot, j in enumerate(shown):
        caption = f"grid {j}  t={times[j]:.1f}s  score {scores[j]:.2f}"
        tile = draw_detections(frames[j], found[j], caption).resize((tile_width, tile_height), Image.BILINEAR)
        sheet.paste(tile, ((slot % columns) * tile_width, (slot // columns) * tile_height))
    strip = _score_strip(scores, threshold, sheet.width)
    canvas = Image.new("RGB", (sheet.width, sheet.height + strip.height))
    canvas.paste(sheet, (0, 0))
    canvas.paste(strip, (0, sheet.height))
    png = Path(png) if png is not None else _default_png(path)
    png.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(png)
    return QuickLook(scores, times, found, png)
