"""Trunks as sequences of layers, so that every mechanism can share, copy, mask or condition
any layer of any trunk: MLP, 1-d convolutional or recurrent (LSTM, GRU).

A ``Backbone`` says how to build layer ``i`` for a given input width; mechanisms call it once per
copy they need (hard sharing's task-specific layers, soft sharing's per-task trunks) and with a
wider input where a task vector is concatenated. Inputs are ``(batch, features)`` for the MLP and
``(batch, time, features)`` for the sequence trunks, whose layers keep that layout.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from mtlshare.errors import ConfigError, one_of

TRUNK_KINDS = ("mlp", "conv", "lstm", "gru")
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "identity": nn.Identity,
}


@dataclass
class TrunkConfig:
    """``[trunk]``: which layers the shared network is made of."""

    kind: str = "mlp"
    hidden: list[int] = field(default_factory=lambda: [64, 64])
    activation: str = "relu"
    dropout: float = 0.0
    kernel_size: int = 3
    bidirectional: bool = True
    passthrough: int = 0  # the first N input features skip the layers, joined to each output
    # the last layer's activation ("": as the others); "identity" ends the trunk in a linear
    # projection, e.g. a forecast of the whole horizon that every task reads
    last_activation: str = ""

    def validate(self) -> None:
        if self.kind not in TRUNK_KINDS:
            raise ConfigError(f"trunk.kind: {self.kind!r} is not one of {one_of(TRUNK_KINDS)}")
        if not self.hidden or any(h < 1 for h in self.hidden):
            raise ConfigError(f"trunk.hidden: need one or more positive widths, got {self.hidden}")
        for key, name in (
            ("activation", self.activation),
            ("last_activation", self.last_activation),
        ):
            if name not in ACTIVATIONS and not (key == "last_activation" and name == ""):
                raise ConfigError(
                    f"trunk.{key}: {name!r} is not one of {one_of(sorted(ACTIVATIONS))}"
                )
        if self.last_activation and self.kind in ("lstm", "gru"):
            raise ConfigError("trunk.last_activation: recurrent layers have no activation to set")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"trunk.dropout: must be in [0, 1), got {self.dropout}")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ConfigError(f"trunk.kernel_size: must be odd and >= 1, got {self.kernel_size}")


class Carry(nn.Module):
    """Wide-and-deep split: the first ``k`` features pass by ``inner`` and are joined to its
    output, so heads read them directly (e.g. day-of-week effects per series while the layers
    learn a shared seasonality). (..., k + d_in) -> (..., k + d_out)."""

    def __init__(self, k: int, inner: nn.Module) -> None:
        super().__init__()
        self.k = k
        self.inner = inner

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([x[..., : self.k], self.inner(x[..., self.k :])], dim=-1)


class FeedForward(nn.Module):
    """Linear -> activation -> dropout. Works on (batch, features) and (batch, time, features)."""

    def __init__(self, in_dim: int, out_dim: int, activation: str, dropout: float) -> None:
        super().__init__()
        self.linear = nn.Linear(in_dim, out_dim)
        self.act = ACTIVATIONS[activation]()
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.act(self.linear(x)))


class TimeConv(nn.Module):
    """1-d convolution over time with 'same' padding: (batch, time, in) -> (batch, time, out).

    On a batch padded at the end with all-zero steps, outputs at padded steps are zero (else
    they would be ``act(bias)``), so they stay padding for the next layer, and a sequence's
    outputs are those it gets alone: the convolution reads zeros past its end either way."""

    def __init__(
        self, in_dim: int, out_dim: int, kernel: int, activation: str, dropout: float
    ) -> None:
        super().__init__()
        self.conv = nn.Conv1d(in_dim, out_dim, kernel, padding=kernel // 2)
        self.act = ACTIVATIONS[activation]()
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        out = self.drop(self.act(self.conv(x.transpose(1, 2)).transpose(1, 2)))
        real = real_steps(x)
        return out if real is None else out * real


def padded_lengths(x: Tensor) -> Tensor | None:
    """Lengths of the sequences of a batch padded at the end with all-zero steps (as the
    tagger's input encoder and ``Recurrent`` both pad), or None when no sequence ends in
    padding. A sequence that is all padding counts as length 1."""
    real = x.ne(0).any(-1)  # (batch, time)
    if bool(real[:, -1].all()):
        return None
    time = x.shape[1]
    return (time - real.flip(1).int().argmax(1)).where(
        real.any(1), torch.ones_like(real[:, 0], dtype=torch.long)
    )


def real_steps(x: Tensor) -> Tensor | None:
    """The (batch, time, 1) mask of the real steps of a batch padded at the end with all-zero
    steps (``padded_lengths``), or None when no sequence ends in padding."""
    lengths = padded_lengths(x)
    if lengths is None:
        return None
    return (torch.arange(x.shape[1], device=x.device)[None, :] < lengths[:, None]).unsqueeze(-1)


class Recurrent(nn.Module):
    """One recurrent layer returning its outputs only: (batch, time, in) -> (batch, time, out).

    A batch of sequences padded at the end with all-zero steps (how the tagger's input encoder
    pads) is run so that padding never reaches a real step: the forward direction reads the
    padding only after the real steps, and the backward direction runs over each sequence
    reversed within its own length, so it starts at the sequence's last real step (what
    packing would do, at about the cost of the plain call; packing cost twice as much here).
    Outputs at padded steps are zero, so they stay padding for the next layer.

    On a GPU with cuDNN every batch runs one direction at a time, each direction's four weights
    in a buffer of their own laid out as cuDNN reads them (``_apply``): cuDNN copies weights
    that are not one such buffer into one at every call, and warns that it does. The CPU runs
    as it always did.
    """

    def __init__(
        self, cell: str, in_dim: int, hidden: int, bidirectional: bool, dropout: float
    ) -> None:
        super().__init__()
        self.cell = cell
        rnn_cls = nn.LSTM if cell == "lstm" else nn.GRU
        self.rnn = rnn_cls(in_dim, hidden, batch_first=True, bidirectional=bidirectional)
        self.drop = nn.Dropout(dropout)
        self.flat_per_direction = False  # set by ``_apply`` on a GPU; not part of the state

    def _suffixes(self) -> tuple[str, ...]:
        return ("", "_reverse") if self.rnn.bidirectional else ("",)

    def _apply(self, fn: Callable[[Tensor], Tensor], recurse: bool = True) -> Recurrent:
        """Move or convert as any module does (``nn.LSTM`` then lays both directions out in
        one buffer), then give each direction a cuDNN buffer of its own where cuDNN takes the
        weights (on a GPU, all float of one type)."""
        super()._apply(fn, recurse)
        directions = [self._weights(suffix) for suffix in self._suffixes()]
        weights = [w for four in directions for w in four]
        self.flat_per_direction = (
            torch._use_cudnn_rnn_flatten_weight()
            and all(w.is_cuda and w.dtype == weights[0].dtype for w in weights)
            and all(torch.backends.cudnn.is_acceptable(w.data) for w in weights)
        )
        if self.flat_per_direction:
            from torch.backends.cudnn import rnn as cudnn_rnn

            with torch.cuda.device_of(weights[0]), torch.no_grad():
                for four in directions:
                    torch._cudnn_rnn_flatten_weight(
                        four,
                        4,
                        self.rnn.input_size,
                        cudnn_rnn.get_cudnn_mode(self.rnn.mode),
                        self.rnn.hidden_size,
                        0,  # no projection
                        1,  # one layer
                        True,  # batch first
                        False,  # one direction
                    )
        return self

    def _weights(self, suffix: str) -> list[Tensor]:
        """One direction's four weights, in the order cuDNN and ``torch.lstm`` take them."""
        return [
            getattr(self.rnn, f"{name}_l0{suffix}")
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        ]

    def _direction(self, x: Tensor, suffix: str) -> Tensor:
        rnn = self.rnn
        params = self._weights(suffix)
        h0 = x.new_zeros(1, x.shape[0], rnn.hidden_size)
        if self.cell == "lstm":
            return torch.lstm(x, (h0, h0), params, True, 1, 0.0, self.training, False, True)[0]
        return torch.gru(x, h0, params, True, 1, 0.0, self.training, False, True)[0]

    def forward(self, x: Tensor) -> Tensor:
        lengths = padded_lengths(x)
        if lengths is None:
            if not self.flat_per_direction:
                out, _ = self.rnn(x)
                return self.drop(out)
            lengths = torch.full((x.shape[0],), x.shape[1], dtype=torch.long, device=x.device)
        steps = torch.arange(x.shape[1], device=x.device).unsqueeze(0)
        ends = lengths.unsqueeze(1)
        real = (steps < ends).unsqueeze(-1)  # (batch, time, 1)
        outs = [self._direction(x, "")]
        if self.rnn.bidirectional:
            order = torch.where(steps < ends, ends - 1 - steps, steps).unsqueeze(-1)
            flipped = x.gather(1, order.expand(-1, -1, x.shape[2]))
            back = self._direction(flipped, "_reverse")
            outs.append(back.gather(1, order.expand(-1, -1, back.shape[2])))
        out = torch.cat(outs, dim=-1) if len(outs) > 1 else outs[0]
        return self.drop(out * real)


@dataclass
class Backbone:
    """A recipe for a trunk: input width, output width of each layer, and a layer builder.

    ``build_layer(i, in_dim)`` returns a fresh layer ``i`` reading ``in_dim`` features (normally
    ``in_dims[i]``; wider when a mechanism concatenates something to its input). ``build_stem``
    returns the input encoder (embeddings) or None; it is shared wherever the trunk is and is left
    out of the counted parameters, like the task heads.
    """

    input_dim: int
    out_dims: list[int]
    build_layer: Callable[[int, int], nn.Module]
    build_stem: Callable[[], nn.Module] | None = None

    @property
    def depth(self) -> int:
        return len(self.out_dims)

    @property
    def in_dims(self) -> list[int]:
        return [self.input_dim, *self.out_dims[:-1]]

    def layers(self, start: int = 0, stop: int | None = None) -> nn.ModuleList:
        """Fresh, independently initialised copies of layers ``start`` to ``stop`` (exclusive).

        Only those layers are built, so the random draws of a model depend only on the layers
        it really has: a sparse network and a hard-sharing one of the same shape start equal.
        """
        stop = self.depth if stop is None else stop
        return nn.ModuleList(self.build_layer(i, self.in_dims[i]) for i in range(start, stop))

    def stem(self) -> nn.Module:
        return self.build_stem() if self.build_stem is not None else nn.Identity()


def backbone_from_config(
    cfg: TrunkConfig, input_dim: int, build_stem: Callable[[], nn.Module] | None = None
) -> Backbone:
    """A ``Backbone`` of ``cfg.kind`` layers, widths ``cfg.hidden``, over ``input_dim`` inputs."""
    cfg.validate()
    k = cfg.passthrough
    if not 0 <= k < input_dim:
        raise ConfigError(
            f"trunk.passthrough: must be in [0, {input_dim - 1}] for "
            f"{input_dim} input features, got {k}"
        )
    rnn = cfg.kind in ("lstm", "gru")
    factor = 2 if rnn and cfg.bidirectional else 1
    out_dims = [k + h * factor for h in cfg.hidden]

    def build_layer(i: int, in_dim: int) -> nn.Module:
        inner = build_inner(i, in_dim - k)
        return Carry(k, inner) if k else inner

    def build_inner(i: int, in_dim: int) -> nn.Module:
        width = cfg.hidden[i]
        last = i == len(cfg.hidden) - 1 and cfg.last_activation
        activation = cfg.last_activation if last else cfg.activation
        if cfg.kind == "mlp":
            return FeedForward(in_dim, width, activation, cfg.dropout)
        if cfg.kind == "conv":
            return TimeConv(in_dim, width, cfg.kernel_size, activation, cfg.dropout)
        return Recurrent(cfg.kind, in_dim, width, cfg.bidirectional, cfg.dropout)

    return Backbone(input_dim, out_dims, build_layer, build_stem)
