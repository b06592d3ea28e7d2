"""The audio frame encoder: ``(B, V, T, R, M)`` → F^A ``(B, V, T, D)`` (R fbank rows, M mel bins).

- ``kind: ast``: each frame's fbank chunk is padded / cropped to ``max_rows`` rows and encoded by
  transformers' ``ASTModel`` (pooled output = mean of the CLS and distillation tokens),
  projected to D;
- ``kind: mlp``: the released code's encoder, ``flatten(max_rows·M) → Linear-ReLU … → Linear(→D)``.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vicokd.config import AudioEncoderConfig
from vicokd.errors import ConfigError, VicokdError
from vicokd.models.encoders import ChunkedEncoder, check_chunk_size
from vicokd.models.weights import first_error_line, load_weights, resolve_pretrained

__all__ = ["ASTEncoder", "FbankMLP", "ast_architecture", "build_audio_encoder", "fit_rows"]


def fit_rows(fbank: Tensor, rows: int, pad_value: float) -> Tensor:
    """(N, R, M) → (N, rows, M): keep the first `rows` rows, or pad at the end with `pad_value`."""
    if fbank.shape[1] >= rows:
        return fbank[:, :rows]
    return F.pad(fbank, (0, 0, 0, rows - fbank.shape[1]), value=pad_value)


class Float32Conv2d(nn.Conv2d):
    """A Conv2d that always computes in float32, also under autocast (its output is float32).

    The AST's patch projection runs in it: on CPUs with AVX-512 bf16, oneDNN's bf16 convolution
    returns wrong values for a patch grid one patch wide (e.g. input (48, 1, 128, 16), kernel and
    stride 16: error ≈ the outputs' own size, torch 2.14.1; fp32 and mkldnn-off are right). The
    projection is a small share of the AST's FLOPs.
    """

    def forward(self, x: Tensor) -> Tensor:
        device = x.device.type  # the meta device of FLOP counts has no autocast
        with torch.autocast(device, enabled=False) if torch.amp.is_autocast_available(device) else nullcontext():
            return super().forward(x.float())


def _float32_projection(conv: nn.Conv2d) -> Float32Conv2d:
    """`conv` as a :class:`Float32Conv2d` holding the same parameters (same state-dict keys)."""
    fixed = Float32Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                          padding=conv.padding, dilation=conv.dilation, groups=conv.groups, bias=conv.bias is not None,
                          padding_mode=conv.padding_mode, device="meta")
    fixed.weight, fixed.bias = conv.weight, conv.bias
    return fixed


class ASTEncoder(nn.Module):
    """transformers ``ASTModel`` over one fbank chunk: (N, R, M) → pooled (N, hidden).

    The patch projection computes in float32 under autocast (:class:`Float32Conv2d`).
    """

    def __init__(self, model: nn.Module, max_rows: int, pad_value: float) -> None:
        super().__init__()
        patches = model.embeddings.patch_embeddings
        patches.projection = _float32_projection(patches.projection)
        self.model = model
        self.max_rows = max_rows
        self.pad_value = pad_value

    def forward(self, fbank: Tensor) -> Tensor:
        return self.model(fit_rows(fbank, self.max_rows, self.pad_value)).pooler_output


class FbankMLP(nn.Module):
    """The released code's "AST": flatten(rows·M) → [Linear → ReLU] per hidden size.

    (N, R, M) → (N, hidden[-1]); the projection to D is the final Linear.
    """

    def __init__(self, rows: int, mel_bins: int, hidden: tuple[int, ...], pad_value: float) -> None:
        super().__init__()
        self.rows = rows
        self.pad_value = pad_value
        layers: list[nn.Module] = []
        width = rows * mel_bins
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        self.layers = nn.Sequential(*layers)
        self.width = width

    def forward(self, fbank: Tensor) -> Tensor:
        return self.layers(fit_rows(fbank, self.rows, self.pad_value).flatten(1))


def _resize_time_positions(positions: Tensor, freq_patches: int, time_patches: int) -> Tensor:
    """AST position table (1, 2 + F·T₀, H) → (1, 2 + F·T₁, H) on the time axis of the patch grid.

    Patches are ordered frequency-major (f·T + t). Fewer time patches: centre crop; more:
    bilinear interpolation.
    """
    prefix, grid = positions[:, :2], positions[:, 2:]
    hidden = grid.shape[-1]
    old = grid.shape[1] // freq_patches
    grid = grid.reshape(1, freq_patches, old, hidden)
    if time_patches <= old:
        start = (old - time_patches) // 2
        grid = grid[:, :, start:start + time_patches]
    else:
        grid = F.interpolate(grid.permute(0, 3, 1, 2), size=(freq_patches, time_patches), mode="bilinear",
                             align_corners=False).permute(0, 2, 3, 1)
    return torch.cat([prefix, grid.reshape(1, -1, hidden)], dim=1)


def _build_ast(config: AudioEncoderConfig) -> ASTEncoder:
    from transformers import ASTConfig, ASTModel

    if "max_length" in config.ast_kwargs:
        raise ConfigError("model.audio.ast_kwargs.max_length: set model.audio.max_rows instead")
    source = None
    ast_config = ASTConfig()
    if config.pretrained is not None:
        source = resolve_pretrained(config.pretrained, "model.audio.pretrained")
        if (source.parent / "config.json").is_file():
            ast_config = ASTConfig.from_json_file(str(source.parent / "config.json"))
    defaults = ASTConfig().to_dict()
    for key, value in {**config.ast_kwargs, "max_length": config.max_rows,
                       "num_mel_bins": config.num_mel_bins}.items():
        if key not in defaults:
            raise ConfigError(f"model.audio.ast_kwargs.{key}: not an ASTConfig field")
        setattr(ast_config, key, value)
    if config.max_rows < ast_config.patch_size or config.num_mel_bins < ast_config.patch_size:
        raise ConfigError(f"model.audio.max_rows: {config.max_rows} rows × {config.num_mel_bins} mel bins "
                          f"is smaller than one AST patch ({ast_config.patch_size})")
    model = ASTModel(ast_config)
    if source is None:
        # transformers zero-initialises these, so from scratch the first LayerNorm sees the CLS /
        # distillation tokens as exact zeros: 1/sqrt(eps) ≈ 1e6-scale gradients. Init as DeiT.
        for tensor in (model.embeddings.cls_token, model.embeddings.distillation_token,
                       model.embeddings.position_embeddings):
            nn.init.trunc_normal_(tensor, std=0.02)
    else:
        state = {key.removeprefix("audio_spectrogram_transformer."): value
                 for key, value in load_weights(source, "model.audio.pretrained").items()
                 if not key.startswith("classifier.")}
        key = "embeddings.position_embeddings"
        if key in state:
            freq_patches, time_patches = model.embeddings.get_shape(ast_config)
            state[key] = _resize_time_positions(state[key], freq_patches, time_patches)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise VicokdError(f"model.audio.pretrained: {source}: does not fit ASTModel "
                              f"{config.ast_kwargs or ''}: {first_error_line(exc)}") from None
    return ASTEncoder(model, config.max_rows, config.pad_value)


def ast_architecture(encoder: ChunkedEncoder) -> dict[str, Any]:
    """The ``model.audio.ast_kwargs`` that rebuild this AST without its pretrained folder.

    Every ``ASTConfig`` argument that differs from its default (a pretrained folder's
    ``config.json`` may have set any of them), but ``max_length`` and ``num_mel_bins``, which
    ``max_rows`` and ``num_mel_bins`` of the config own.
    """
    import inspect

    from transformers import ASTConfig

    built, defaults = encoder.net.model.config.to_dict(), ASTConfig().to_dict()
    fields = set(inspect.signature(ASTConfig.__init__).parameters) - {"self", "kwargs", "max_length", "num_mel_bins"}
    return {key: built[key] for key in sorted(fields) if key in built and built[key] != defaults.get(key)}


def build_audio_encoder(config: AudioEncoderConfig, dim: int) -> ChunkedEncoder:
    """AST (``kind: ast``) or fbank MLP (``kind: mlp``) over (…, R, M) chunks, chunked, → D."""
    check_chunk_size(config.chunk_size, "model.audio.chunk_size")
    if config.kind == "mlp":
        if config.pretrained is not None:
            raise ConfigError("model.audio.pretrained: only kind 'ast' loads pretrained weights")
        net: nn.Module = FbankMLP(config.max_rows, config.num_mel_bins, config.mlp_hidden, config.pad_value)
        width = net.width
    else:
        net = _build_ast(config)
        width = net.model.config.hidden_size
    return ChunkedEncoder(net, width, dim, item_ndim=2, chunk_size=config.chunk_size,
                          checkpointing=config.checkpointing, freeze=config.freeze)
