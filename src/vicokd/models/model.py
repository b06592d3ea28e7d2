"""The ViCoKD network: teacher (audio-visual) and student (visual only) in one class.

``MultiViewActionModel(config: ModelConfig, num_classes)``; ``config.mode`` picks::

    teacher:  F^V = E_V(video)   F^A = E_A(audio)     F^attn = CrossAttn(F^V, F^A)   (Eq. 2)
    student:  F^V = E_V(video)   F̂^A = A_ψ(F^V)       F^attn = CrossAttn(F^V, F̂^A)   (Eq. 6)
    both:     F^AV = F^V + F^attn (Eq. 3)  →  backbone  →  F^Fusion and logits
    (student with ``model.fusion.student_gate``: F^attn = g ⊙ CrossAttn(F^V, F̂^A), g ∈ R^D from 0)

``forward(batch)`` takes a dict:

- ``"video"``  (B, V, T, 3, H, W) uint8 as decoded, normalised inside (:meth:`normalize`: the
  model's ``pixel_mean`` / ``pixel_std`` buffers, saved with its weights, as timm keeps them
  with a model); float video is taken as already normalised;
- ``"audio"``  (B, V, T, R, M) float log-mel chunks (teacher only; a student ignores it);
- ``"audio_present"`` (B, V) bool (teacher only; default all True): a False view gets
  F^attn = 0, so F^AV = F^V;
- or, for frozen encoders, ``"visual_features"`` / ``"audio_features"`` (B, V, T, width): the
  cached outputs of the encoders' networks (before their projection to D) in place of video/audio,
  in any float dtype (the cache keeps float16; they are widened to float32 here);
  with ``model.visual.trainable_blocks: K`` ≥ 1, ``"visual_features"`` (B, V, T, N, width) are the
  tokens after block L-K, and the top K blocks run on them.

and returns a :class:`ModelOutput` (B batch, V views, T frames, C classes, D = ``model.dim``):

====================  ============  =============================================================
field                 shape         meaning
====================  ============  =============================================================
view_frame_logits     (B, V, T, C)  per-view frame logits from F^Fusion (LD, VC)
frame_logits          (B, T, C)     frame logits fused over views (L_F)
seq_logits            (B, C)        sequence logits (L_S): the backbone's own head, or with
                                    ``model.sequence_head: frame_pool`` mean_t frame_logits
visual                (B, V, T, D)  F^V, visual encoder output
audio                 (B, V, T, D)  F^A (teacher) or pseudo-audio F̂^A (student)
attn                  (B, V, T, D)  F^attn, cross-modal attention output (FD)
av                    (B, V, T, D)  F^AV = F^V + F^attn (FD)
fusion                (B, V, T, D)  F^Fusion, backbone per-view temporal features
extras                dict          backbone extras: ``human_logits`` (B, V, T) for MultiTSF;
                                    ``cas`` (B, T, C), ``cas_top`` (B, C), ``topk_mask``
                                    (B, T, C), ``actionness`` (B, T, 2) for MultiASL
====================  ============  =============================================================

Teacher and student share every parameter name except ``audio_encoder.*`` (teacher only) and
``adapter.*`` / ``attention_gate`` (student only), so ``student.load_state_dict(teacher.state_dict(), strict=False)``
reports exactly those as unexpected / missing keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from vicokd.batch import Batch
from vicokd.config import ModelConfig, replace
from vicokd.errors import VicokdError
from vicokd.models.audio_encoder import ast_architecture, build_audio_encoder
from vicokd.models.backbones import build_backbone
from vicokd.models.cross_modal import CrossModalAdapter, CrossModalAttention
from vicokd.models.visual_encoder import build_visual_encoder
from vicokd.models.vit import cls_attention

__all__ = ["ModelOutput", "MultiViewActionModel", "normalize_video"]



def normalize_video(video: torch.Tensor, mean: Sequence[float] | torch.Tensor, std: Sequence[float] | torch.Tensor,
                    dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 (..., 3, H, W) → float ``(x/255 − mean) / std`` per channel."""
    mean_t = torch.as_tensor(mean, dtype=dtype, device=video.device).view(3, 1, 1)
    std_t = torch.as_tensor(std, dtype=dtype, device=video.device).view(3, 1, 1)
    return (video.to(dtype) / 255.0 - mean_t) / std_t


@dataclass
class ModelOutput:
    """Everything a training objective may read (shapes in the module docstring)."""

    view_frame_logits: Tensor
    frame_logits: Tensor
    seq_logits: Tensor
    visual: Tensor
    audio: Tensor
    attn: Tensor
    av: Tensor
    fusion: Tensor
    extras: dict[str, Tensor] = field(default_factory=dict)


class MultiViewActionModel(nn.Module):
    """Teacher (``config.mode == "teacher"``) or student multi-view action model.

    Args:
        config: the ``model`` section.
        num_classes: C.
    """

    def __init__(self, config: ModelConfig, num_classes: int) -> None:
        super().__init__()
        # per-channel normalisation of uint8 video (``model.visual.mean`` / ``.std``), in the state dict
        self.register_buffer("pixel_mean", torch.tensor(config.visual.mean, dtype=torch.float32).view(3, 1, 1))
        self.register_buffer("pixel_std", torch.tensor(config.visual.std, dtype=torch.float32).view(3, 1, 1))
        self.config = config
        self.mode = config.mode
        self.num_classes = num_classes
        self.visual_encoder = build_visual_encoder(config.visual, config.dim)
        if config.mode == "teacher":
            self.audio_encoder = build_audio_encoder(config.audio, config.dim)
        else:
            self.adapter = CrossModalAdapter(config.dim, config.fusion.adapter_hidden)
            if config.fusion.student_gate:  # model.fusion.student_gate: g ⊙ F^attn, g = 0 at init
                self.attention_gate = nn.Parameter(torch.zeros(config.dim))
        self.cross_attention = CrossModalAttention(config.dim, config.fusion.num_heads, config.fusion.dropout,
                                                   config.fusion.positional)
        self.backbone = build_backbone(config, num_classes)

    @property
    def is_teacher(self) -> bool:
        return self.mode == "teacher"

    def architecture(self) -> ModelConfig:
        """The ``model`` config that rebuilds this architecture without reading any file.

        What a checkpoint records, so that it stays usable when the pretrained weights it
        started from are gone: the pretrained paths are dropped (the trained weights are in the
        checkpoint), and a pretrained AST's configuration, which the ``config.json`` beside its
        weights may have set, is spelled out in ``audio.ast_kwargs``.
        """
        changes: dict[str, object] = {"visual.pretrained": None, "audio.pretrained": None}
        if self.is_teacher and self.config.audio.kind == "ast":
            changes["audio.ast_kwargs"] = ast_architecture(self.audio_encoder)
        return replace(self.config, **changes)

    def copy_shared_weights(self, other: MultiViewActionModel) -> list[str]:
        """Copy every parameter and buffer that `other` has under the same name; return their names.

        For ``distill.student_init: teacher``: a student takes all of the teacher's weights but
        ``audio_encoder.*`` (the teacher's own), and keeps its ``adapter.*`` (its own). A shared
        name with another shape (other widths or backbone) is an error, never a silent skip.
        """
        mine, theirs = self.state_dict(), other.state_dict()
        shared = [name for name in mine if name in theirs]
        mismatched = [name for name in shared if mine[name].shape != theirs[name].shape]
        if mismatched:
            name = mismatched[0]
            raise VicokdError(f"cannot copy weights: {name} is {tuple(theirs[name].shape)} in the source model, "
                              f"{tuple(mine[name].shape)} here ({len(mismatched)} such tensors)")
        self.load_state_dict({name: theirs[name] for name in shared}, strict=False)
        return shared

    def normalize(self, video: Tensor) -> Tensor:
        """uint8 (..., 3, H, W) → float32 ``(x/255 − pixel_mean) / pixel_std`` per channel.

        Float input is returned as it is (already normalised by the caller).
        """
        return normalize_video(video, self.pixel_mean, self.pixel_std) if video.dtype == torch.uint8 else video

    def visual_features(self, frames: Tensor) -> Tensor:
        """The visual encoder's features before its projection, (..., W), of frames (..., 3, H, W),
        uint8 or normalised: what the feature cache stores and `stream` computes per frame."""
        return self.visual_encoder.features(self.normalize(frames))

    def _checked_audio(self, audio: Tensor | None, lead: tuple[int, ...]) -> Tensor:
        expected = (*lead, self.config.audio.num_mel_bins)
        if audio is None or audio.ndim != 5 or (*audio.shape[:3], audio.shape[-1]) != expected:
            got = None if audio is None else tuple(audio.shape)
            raise VicokdError(f"batch['audio']: the teacher needs (B, V, T, R, M) = "
                              f"({', '.join(map(str, expected[:3]))}, R, {expected[3]}), got {got}")
        return audio

    def visual_attention(self, frames: Tensor) -> Tensor:
        """Last-block CLS attention of the visual ViT over patches, mean over heads.

        frames (..., 3, H, W), uint8 or normalised → (..., H/p, W/p); needs a ViT-style timm encoder.
        """
        frames = self.normalize(frames)
        lead = frames.shape[:-3]
        maps = cls_attention(self.visual_encoder.net, frames.reshape(-1, *frames.shape[-3:]))
        return maps.reshape(*lead, *maps.shape[-2:])

    def forward(self, batch: Batch) -> ModelOutput:
        if "visual_features" in batch:  # cached by `prepare --features`: pooled (B, V, T, W) or tokens (.., N, W)
            cached = batch["visual_features"].float()  # the cache keeps float16
            visual = (self.visual_encoder.from_tokens(cached) if cached.ndim == 5
                      else self.visual_encoder.proj(cached))
        else:
            video = batch["video"]
            if video.ndim != 6:
                raise VicokdError(f"batch['video']: expected (B, V, T, 3, H, W), got {tuple(video.shape)}")
            visual = self.visual_encoder(self.normalize(video))
        present = None
        if self.is_teacher:
            if "audio_features" in batch:
                audio = self.audio_encoder.proj(batch["audio_features"].float())
            else:
                audio = self.audio_encoder(self._checked_audio(batch.get("audio"), visual.shape[:3]))
            present = batch.get("audio_present")
        else:
            audio = self.adapter(visual)
        attn = self.cross_attention(visual, audio, present)
        if not self.is_teacher and self.config.fusion.student_gate:
            attn = attn * self.attention_gate
        av = visual + attn
        out = self.backbone(av)
        # model.sequence_head "frame_pool": temporal average pooling of the view-fused frame logits
        seq_logits = out.frame_logits.mean(dim=1) if out.seq_logits is None else out.seq_logits
        return ModelOutput(
            view_frame_logits=out.view_frame_logits,
            frame_logits=out.frame_logits,
            seq_logits=seq_logits,
            visual=visual,
            audio=audio,
            attn=attn,
            av=av,
            fusion=out.fusion,
            extras=out.extras,
        )

