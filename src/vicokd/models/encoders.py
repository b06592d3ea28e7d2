"""Frame encoders shared across views: a timm image model, a real AST, or the old fbank MLP.

Shapes: B batch, V views, T frames, D = ``model.dim``, R fbank rows, M mel bins.

- visual: ``(B, V, T, 3, H, W)`` → F^V ``(B, V, T, D)``; any timm model by name, pooled features
  (``num_classes=0``) projected to D when the widths differ.
- audio, ``kind: ast``: ``(B, V, T, R, M)`` → F^A ``(B, V, T, D)``; each frame's fbank chunk is
  padded / cropped to ``max_rows`` rows and encoded by transformers' ``ASTModel`` (pooled
  output = mean of the CLS and distillation tokens), projected to D.
- audio, ``kind: mlp``: the released code's encoder, ``flatten(max_rows·M) → Linear-ReLU … →
  Linear(→D)``.

Both go through :class:`ChunkedEncoder`: all B·V·T items in chunks of ``chunk_size`` (memory
bound), optional activation checkpointing per chunk, optional freezing.

Pretrained weights are read from local disk only (a file, a directory, or a Hugging Face cache
folder ``models--org--name``); nothing here downloads (the ``vicokd`` command also switches the
hub libraries to offline mode). A configured path that does not exist is an error naming it, never
a random init.
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Any

import timm
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from vicokd.config import AudioEncoderConfig, VisualEncoderConfig
from vicokd.errors import ConfigError, VicokdError
from vicokd.models.class_token_block import attention_folds, class_token_attention, class_token_block, folds

__all__ = [
    "ASTEncoder",
    "ChunkedEncoder",
    "FbankMLP",
    "ast_architecture",
    "build_audio_encoder",
    "build_visual_encoder",
    "cls_attention",
    "fit_rows",
    "load_weights",
    "pools_class_token",
    "resolve_pretrained",
    "vit_from_tokens",
    "vit_tokens",
]

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


# ------------------------------------------------------------------------------ local weights


def resolve_pretrained(path: str, where: str) -> Path:
    """The weights file behind a configured local path.

    Accepts a weights file (.safetensors, .bin, .pth, .pt), a directory holding
    ``model.safetensors`` or ``pytorch_model.bin``, or a Hugging Face cache folder
    (``models--org--name`` with ``refs/main`` and ``snapshots/``). `where` names the config
    field in errors.
    """
    location = Path(path).expanduser()
    if not location.exists():
        raise VicokdError(f"{where}: {location}: not found (weights are read from local disk only; "
                          f"copy them there, or set {where}: null to train from scratch)")
    if location.is_file():
        if location.suffix not in WEIGHT_SUFFIXES:
            raise VicokdError(f"{where}: {location}: not a weights file ({', '.join(WEIGHT_SUFFIXES)})")
        return location
    snapshots = location / "snapshots"
    if snapshots.is_dir():
        ref = location / "refs" / "main"
        candidates = [snapshots / ref.read_text().strip()] if ref.is_file() else sorted(snapshots.iterdir())
        if len(candidates) != 1:
            raise VicokdError(f"{where}: {location}: cannot tell which snapshot to use (no refs/main)")
        location = candidates[0]
    for name in WEIGHT_FILES:
        if (location / name).is_file():
            return location / name
    raise VicokdError(f"{where}: {location}: no {' or '.join(WEIGHT_FILES)} in this directory")


def load_weights(file: Path, where: str) -> dict[str, Tensor]:
    """A state dict from a .safetensors file, or a .bin/.pth pickle with ``weights_only=True``.

    A checkpoint that nests its weights under ``state_dict`` or ``model`` is unwrapped.
    """
    try:
        if file.suffix == ".safetensors":
            return load_file(str(file))
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise VicokdError(f"{where}: {file}: cannot read weights ({type(exc).__name__}: {exc})") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise VicokdError(f"{where}: {file}: expected a state dict, found {type(state).__name__}")
    return state


def _mismatch(exc: Exception) -> str:
    """The first line of a load error, short enough for a one-line message."""
    return str(exc).strip().splitlines()[0][:300]


# ------------------------------------------------------------------------------ chunked wrapper


class ChunkedEncoder(nn.Module):
    """Runs `net` on every item of a (..., *item) tensor in chunks, then projects to D.

    ``y = P(net(x_i))`` for each item x_i, P = Linear(width→D) or identity when width = D.

    Args:
        net: maps (N, *item) to pooled features (N, width).
        width: feature width of `net`.
        dim: D.
        item_ndim: number of trailing axes of one item (3 for an image, 2 for an fbank chunk).
        chunk_size: items per `net` call.
        checkpointing: in training, store only each chunk's input and recompute in backward.
        freeze: `net` gets no gradient and stays in eval mode (P still trains).
    """

    def __init__(self, net: nn.Module, width: int, dim: int, *, item_ndim: int, chunk_size: int,
                 checkpointing: bool = False, freeze: bool = False) -> None:
        super().__init__()
        self.net = net
        self.width = width
        self.proj = nn.Linear(width, dim) if width != dim else nn.Identity()
        self.item_ndim = item_ndim
        self.chunk_size = chunk_size
        self.checkpointing = checkpointing
        self.freeze = freeze
        if freeze:
            self.net.requires_grad_(False)
            self.net.eval()

    def train(self, mode: bool = True) -> ChunkedEncoder:
        super().train(mode)
        if self.freeze:
            self.net.eval()
        return self

    def _encode(self, chunk: Tensor) -> Tensor:
        if self.freeze:
            with torch.no_grad():
                return self.net(chunk)
        if self.checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(self.net, chunk, use_reentrant=False)
        return self.net(chunk)

    def features(self, x: Tensor) -> Tensor:
        """`net` features before the projection: (*lead, *item) → (*lead, width), in chunks.

        A frozen encoder's features can be computed once and cached (``vicokd prepare
        --features``); ``proj`` then turns them into F^V or F^A during training.
        """
        lead = x.shape[: x.ndim - self.item_ndim]
        items = x.reshape(-1, *x.shape[len(lead):])
        features = torch.cat([self._encode(chunk) for chunk in items.split(self.chunk_size)])
        return features.reshape(*lead, -1)

    def forward(self, x: Tensor) -> Tensor:
        """(*lead, *item) → (*lead, D)."""
        return self.proj(self.features(x))

    def from_tokens(self, tokens: Tensor) -> Tensor:
        """F^V from the cached tokens after block L-K (:func:`vit_tokens`): (*lead, N, W) → (*lead, D).

        Runs the top K blocks, the final norm and the pooling (:func:`vit_from_tokens`), in chunks.
        """
        start = self.token_start
        if start is None:
            raise VicokdError("token features need model.visual.trainable_blocks >= 1")
        lead = tokens.shape[:-2]
        items = tokens.reshape(-1, *tokens.shape[-2:])

        def run(chunk: Tensor) -> Tensor:
            return vit_from_tokens(self.net, chunk, start)

        chunks = [checkpoint(run, chunk, use_reentrant=False)
                  if self.checkpointing and self.training and torch.is_grad_enabled() else run(chunk)
                  for chunk in items.split(self.chunk_size)]
        return self.proj(torch.cat(chunks).reshape(*lead, -1))

    @property
    def token_start(self) -> int | None:
        """L-K, the first block that trains (None unless some but not all blocks train)."""
        return getattr(self, "_token_start", None)

    def train_top_blocks(self, count: int) -> None:
        """Freeze all of a ViT-style `net` but its top `count` blocks and final norm (count >= 1)."""
        blocks = getattr(self.net, "blocks", None)
        if blocks is None or not hasattr(self.net, "patch_embed"):
            raise ConfigError(f"model.visual.trainable_blocks: {count} needs a ViT-style timm model, "
                              f"not {type(self.net).__name__}")
        if count > len(blocks):
            raise ConfigError(f"model.visual.trainable_blocks: {count}, but the encoder has {len(blocks)} blocks")
        self._token_start = len(blocks) - count
        self.net.requires_grad_(False)
        for module in (*list(blocks)[self._token_start:], self.net.norm, getattr(self.net, "fc_norm", None)):
            if module is not None:
                module.requires_grad_(True)


def vit_tokens(net: nn.Module, images: Tensor, upto: int) -> Tensor:
    """Tokens of a timm ViT after its first `upto` blocks: (N, 3, H, W) → (N, prefix + patches, W).

    ``patch_embed → position embedding (+ prefix tokens) → patch dropout → norm_pre → blocks[:upto]``,
    the start of timm's ``forward_features``.
    """
    x = net.norm_pre(net.patch_drop(net._pos_embed(net.patch_embed(images))))
    for block in list(net.blocks)[:upto]:
        x = block(x)
    return x


def pools_class_token(net: nn.Module) -> bool:
    """Whether a timm ViT's pooled output is its class token (row 0) after the final norm."""
    return (getattr(net, "global_pool", None) == "token" and getattr(net, "attn_pool", None) is None
            and getattr(net, "cls_token", None) is not None)


def vit_from_tokens(net: nn.Module, tokens: Tensor, start: int) -> Tensor:
    """The rest of a timm ViT from the tokens after block `start`: ``blocks[start:] → norm → pooled``,
    (N, tokens, W) → (N, W); ``vit_from_tokens(net, vit_tokens(net, x, s), s) == net(x)``.

    When the ViT pools its class token, the last block is computed for that token only
    (:func:`~vicokd.models.class_token_block.class_token_block`: the same maths, a fraction of the cost).
    """
    x = tokens
    blocks = list(net.blocks)[start:]
    last = blocks.pop() if blocks and pools_class_token(net) and folds(blocks[-1]) else None
    for block in blocks:
        x = block(x)
    if last is not None:
        x = class_token_block(last, x)[:, None]
    return net.forward_head(net.norm(x), pre_logits=True)


# ------------------------------------------------------------------------------ visual


def _check_chunk_size(size: int, where: str) -> None:
    if size < 1:
        raise ConfigError(f"{where}: must be at least 1, got {size}")


def build_visual_encoder(config: VisualEncoderConfig, dim: int) -> ChunkedEncoder:
    """timm model ``config.name`` (with ``timm_kwargs``), local pretrained weights, chunked."""
    _check_chunk_size(config.chunk_size, "model.visual.chunk_size")
    if not timm.is_model(config.name):
        raise ConfigError(f"model.visual.name: {config.name!r} is not a timm model")
    kwargs: dict[str, Any] = dict(config.timm_kwargs)
    source = None
    if config.pretrained is not None:
        source = resolve_pretrained(config.pretrained, "model.visual.pretrained")
        weights = load_weights(source, "model.visual.pretrained")
        # timm adapts the state dict (classifier dropped, position embeddings resampled).
        kwargs.update(pretrained=True, pretrained_cfg_overlay={"state_dict": weights})
    try:
        net = timm.create_model(config.name, num_classes=0, **kwargs)
    except (RuntimeError, KeyError, ValueError) as exc:
        if source is None:
            raise ConfigError(f"model.visual.timm_kwargs: {_mismatch(exc)}") from None
        raise VicokdError(f"model.visual.pretrained: {source}: does not fit {config.name} "
                          f"{config.timm_kwargs or ''}: {_mismatch(exc)}") from None
    width = getattr(net, "head_hidden_size", None) or net.num_features
    blocks = config.trainable_blocks
    frozen = config.freeze if blocks is None else blocks == 0
    encoder = ChunkedEncoder(net, width, dim, item_ndim=3, chunk_size=config.chunk_size,
                             checkpointing=config.checkpointing, freeze=frozen)
    if blocks is not None and blocks > 0:
        encoder.train_top_blocks(blocks)
    return encoder


@torch.no_grad()
def cls_attention(vit: nn.Module, images: Tensor) -> Tensor:
    """CLS-token attention over patches in the last block of a timm ViT, mean over heads.

    images (N, 3, H, W) → (N, H/p, W/p); each map sums to at most 1 (the rest goes to prefix
    tokens). Needs a ViT-style model: ``blocks[-1].attn.qkv``, a class token, ``patch_embed``.
    """
    blocks = getattr(vit, "blocks", None)
    if not blocks or not attention_folds(blocks[-1]) or getattr(vit, "cls_token", None) is None:
        raise VicokdError(f"attention maps need a ViT-style timm encoder with a class token, "
                          f"not {type(vit).__name__}")
    tokens = vit_tokens(vit, images, len(blocks) - 1)
    weights = class_token_attention(blocks[-1], tokens)  # (N, h, L)
    grid = vit.patch_embed.dynamic_feat_size(tuple(images.shape[-2:]))
    return weights[:, :, vit.num_prefix_tokens:].mean(1).reshape(len(images), *grid)


# ------------------------------------------------------------------------------ audio


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
                              f"{config.ast_kwargs or ''}: {_mismatch(exc)}") from None
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
    _check_chunk_size(config.chunk_size, "model.audio.chunk_size")
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
