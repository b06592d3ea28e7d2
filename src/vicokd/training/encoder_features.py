"""Compute the frozen-encoder feature cache and use it in a run (see :mod:`vicokd.data.features`).

``compute_features`` runs the encoder networks of a config (weights from the config's
``pretrained`` paths, or from the encoders of a trained vicokd checkpoint) once over every grid
frame of every view of a prepared cache. ``apply_feature_cache`` makes a run train from those
features: it freezes the encoders in the config and loads the cached encoder weights into the
model, so the run's checkpoints still work on raw video (predict, export).
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from vicokd.config import Config, config_to_dict
from vicokd.data.cache import load_fbank, load_frames, read_index
from vicokd.data.features import (
    ENCODERS_FILE,
    FEATURES_FILE,
    FEATURES_VERSION,
    feature_path,
    features_are_current,
    read_feature_index,
    write_feature_stamp,
)
from vicokd.errors import VicokdError
from vicokd.io import atomic_path, write_json_atomic, write_safetensors
from vicokd.models import MultiViewActionModel
from vicokd.models.checkpoint import load_state_dict, read_safetensors
from vicokd.models.vit import vit_tokens

_ENCODERS = ("visual_encoder", "audio_encoder")


def _encoder_sections(config: Config) -> dict[str, Any]:
    model = config_to_dict(config.model)
    return {"visual": model["visual"], "audio": model["audio"], "image_size": list(config.data.image_size)}


def _encoder_differences(recorded: dict[str, Any] | None, config: Config) -> list[str]:
    """Where a feature directory's recorded encoder sections differ from `config`'s, as
    ``model.visual.name: 'a' there, 'b' here`` lines; a field the record lacks (added to the config
    since) counts as its default. Empty when they agree."""
    if recorded is None:
        return ["no encoder settings recorded"]
    defaults = _encoder_sections(Config())
    filled = {**recorded, **{section: {**defaults[section], **recorded.get(section, {})}
                             for section in ("visual", "audio")}}
    wanted = _encoder_sections(config)
    differences = []
    for section in ("visual", "audio"):
        for key in sorted(set(filled[section]) | set(wanted[section])):
            there, here = filled[section].get(key), wanted[section].get(key)
            if there != here:
                differences.append(f"model.{section}.{key}: {there!r} there, {here!r} here")
    if filled.get("image_size") != wanted["image_size"]:
        differences.append(f"data.image_size: {filled.get('image_size')!r} there, {wanted['image_size']!r} here")
    return differences


def _same_encoders(recorded: dict[str, Any] | None, config: Config) -> bool:
    """Whether a feature directory's recorded encoder sections are those of `config`."""
    return not _encoder_differences(recorded, config)


def _save_array(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        np.save(tmp, array)


def compute_features(config: Config, out: str | Path, *, encoders_from: str | Path | None = None,
                     audio: bool = True, progress: bool = True) -> dict[str, Any]:
    """Encode every grid frame of `config.data.cache` with the (frozen) encoders into `out`.

    Returns the feature index. Resumes: clips whose files exist and whose cache copy is
    unchanged are skipped (a clip ``prepare`` redid is computed again). Refuses a directory made
    with other encoder settings.
    """
    out = Path(out)
    started = time.perf_counter()
    index = read_index(config.data.cache)
    torch.manual_seed(config.train.seed)  # random encoders: the initial weights a run of this config starts from
    model = MultiViewActionModel(replace(config.model, mode="teacher"), max(1, len(index.classes))).eval()
    source = "config (pretrained paths or random initialisation)"
    if encoders_from is not None:
        weights = load_state_dict(encoders_from)
        chosen = {k: v for k, v in weights.items() if k.startswith(tuple(f"{e}.net." for e in _ENCODERS))}
        if not any(k.startswith("visual_encoder.net.") for k in chosen):
            raise VicokdError(f"{encoders_from}: no visual encoder weights in this checkpoint")
        has_audio = any(k.startswith("audio_encoder.net.") for k in chosen)
        if audio and not has_audio:
            raise VicokdError(f"{encoders_from}: a student checkpoint has no audio encoder; use a teacher "
                              "checkpoint or --no-audio")
        try:
            model.load_state_dict(chosen, strict=False)
        except RuntimeError as exc:
            raise VicokdError(f"{encoders_from}: encoder weights do not fit model.visual/model.audio of the config "
                              f"({str(exc).splitlines()[0]})") from None
        source = str(encoders_from)
    header = {"version": FEATURES_VERSION, "cache": str(config.data.cache), "model": _encoder_sections(config),
              "source": source, "audio": audio}
    if (out / FEATURES_FILE).is_file():
        old = read_feature_index(out)
        if not _same_encoders(old.get("model"), config) or {k: old.get(k) for k in header if k != "model"} != {
                k: v for k, v in header.items() if k != "model"}:
            raise VicokdError(f"{out}: features were computed with other settings; use another directory")
    (out / "clips").mkdir(parents=True, exist_ok=True)
    nets = {name: getattr(model, name).net for name in _ENCODERS if audio or name == "visual_encoder"}
    write_safetensors({f"{name}.net.{k}": v.contiguous() for name, net in nets.items()
                       for k, v in net.state_dict().items()}, out / ENCODERS_FILE)
    write_json_atomic(out / FEATURES_FILE, header)
    data = config.data
    keys = sorted(index.clips)
    bar = tqdm(keys, desc="features", unit="clip", disable=not progress, file=sys.stderr)
    done = 0
    with torch.inference_mode():
        for key in bar:
            targets = {"visual": feature_path(out, key, "visual")}
            if audio:
                targets["audio"] = feature_path(out, key, "audio")
            if all(p.is_file() for p in targets.values()) and features_are_current(out, index.clips[key]):
                continue
            frames = torch.from_numpy(np.array(load_frames(data.cache, key)))  # (V, L, 3, H, W)
            visual = _visual_features(model, frames)
            _save_array(targets["visual"], visual.to(torch.float16).numpy())
            if audio:
                fbank = torch.from_numpy(load_fbank(data.cache, key).astype(np.float32))
                _save_array(targets["audio"], model.audio_encoder.features(fbank).to(torch.float16).numpy())
            write_feature_stamp(out, index.clips[key])
            done += 1
    if progress:
        print(f"features of {len(keys)} clips ({done} new) in {out}, {time.perf_counter() - started:.1f} s")
    return header


def _visual_features(model: MultiViewActionModel, frames: torch.Tensor) -> torch.Tensor:
    """What the cache keeps of the visual encoder for uint8 frames (V, L, 3, H, W): pooled features
    (V, L, W), or with ``model.visual.trainable_blocks`` K >= 1 the tokens after block L-K (V, L, N, W)."""
    encoder = model.visual_encoder
    if encoder.token_start is None:
        return model.visual_features(frames)
    lead = frames.shape[:-3]
    items = model.normalize(frames).reshape(-1, *frames.shape[-3:])
    tokens = torch.cat([vit_tokens(encoder.net, chunk, encoder.token_start)
                        for chunk in items.split(encoder.chunk_size)])
    return tokens.reshape(*lead, *tokens.shape[1:])


def apply_feature_cache(config: Config) -> Config:
    """The run config with frozen encoders when ``data.features`` is set (checked against the cache).

    The visual encoder stays as it is with ``trainable_blocks`` K >= 1 (its top K blocks train on
    the cached tokens); -1 (all blocks) cannot train from a cache.
    """
    if config.data.features is None:
        return config
    blocks = config.model.visual.trainable_blocks
    if blocks == -1:
        raise VicokdError("model.visual.trainable_blocks: -1 (every block) cannot train from data.features; "
                          "set K >= 1 or drop data.features")
    header = read_feature_index(config.data.features)
    differences = _encoder_differences(header["model"], config)
    if differences:
        raise VicokdError(f"{config.data.features}: features were computed with other encoder settings than this "
                          f"config ({'; '.join(differences[:3])}{'; ...' if len(differences) > 3 else ''})")
    if config.model.mode == "teacher" and not header["audio"]:
        raise VicokdError(f"{config.data.features}: has no audio features; a teacher needs them")
    visual = config.model.visual if blocks is not None and blocks > 0 else replace(config.model.visual, freeze=True)
    model = replace(config.model, visual=visual, audio=replace(config.model.audio, freeze=True))
    return replace(config, model=model)


def load_cached_encoders(model: MultiViewActionModel, directory: str | Path) -> None:
    """Put the encoder weights the features were computed with into `model`."""
    weights = read_safetensors(Path(directory) / ENCODERS_FILE)
    own = set(model.state_dict())
    missing = [k for k in own if k.startswith(tuple(f"{e}.net." for e in _ENCODERS)) and k not in weights]
    if missing:
        raise VicokdError(f"{directory}: cached encoder weights lack {missing[0]} (and {len(missing) - 1} more)")
    model.load_state_dict({k: v for k, v in weights.items() if k in own}, strict=False)

