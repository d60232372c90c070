"""Composite flow layers: transition blocks, flow steps, conditional flows and splits."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sdflow.flows.actnorm import ActNorm
from sdflow.flows.base import Bijection, Composite, FlowSequence
from sdflow.flows.coupling import AffineCoupling, AffineInjector, PaddedCondition
from sdflow.flows.invconv import InvertibleConv1x1
from sdflow.flows.predict import LinearPredictor
from sdflow.flows.reshape import Squeeze, Unsqueeze


class FlowStep(Composite):
    """ActNorm -> invertible 1x1 -> [affine injector] -> [affine coupling].

    With ``cond_channels > 0`` the step is conditional and includes the injector; the
    coupling can be left out (the authors' conditional flows end with a step without one).
    """

    def __init__(self, channels: int, cond_channels: int = 0, hidden: int = 64,
                 coupling: bool = True, generator: torch.Generator | None = None):
        super().__init__()
        self.conditional = cond_channels > 0
        self.actnorm = ActNorm(channels)
        self.invconv = InvertibleConv1x1(channels, generator=generator)
        self.injector = AffineInjector(channels, cond_channels, hidden) \
            if self.conditional else None
        self.coupling = AffineCoupling(channels, cond_channels, hidden) if coupling else None
        self.baked = False  # see bake()

    def members(self) -> list[Bijection]:
        return [m for m in (self.actnorm, self.invconv, self.injector, self.coupling)
                if m is not None]

    @torch.no_grad()
    def bake(self, memory_format: torch.memory_format = torch.contiguous_format) -> None:
        """Fold ActNorm into the 1x1 conv and fix the weights of both directions (for
        :func:`sdflow.prepare`; the step is then for inference only): forward
        ``W' = W diag(e^s)`` with bias ``W' b``, inverse ``diag(e^-s) W^-1`` then ``- b``,
        as non-persistent buffers (the checkpoint format is unchanged). The 1x1 convs on
        the flow's narrow tensors keep their format: ``memory_format`` is not used."""
        an, ic = self.actnorm, self.invconv
        if an.wants_init:
            raise RuntimeError("bake() inside data_init(): the ActNorm is about to be "
                               "initialised from data; prepare the model afterwards")
        s, b = an.log_scale.reshape(-1), an.loc.reshape(-1)
        w = ic.weight() * torch.exp(s)[None, :]
        w_inv = torch.exp(-s)[:, None] * ic.inverse_weight()
        self.register_buffer("baked_weight", w[:, :, None, None].clone(), persistent=False)
        self.register_buffer("baked_bias", (w @ b).clone(), persistent=False)
        self.register_buffer("baked_inverse_weight", w_inv[:, :, None, None].clone(),
                             persistent=False)
        self.register_buffer("baked_inverse_bias", (-b).clone(), persistent=False)
        self.register_buffer("baked_logdet", (s.sum() + ic.log_abs_diag.sum()).clone(),
                             persistent=False)
        self.baked = True

    def _rest(self) -> list[Bijection]:
        return [m for m in (self.injector, self.coupling) if m is not None]

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if not self.baked:
            return super().forward(x, cond)
        self._check_cond(cond)
        logdet = (x.shape[2] * x.shape[3] * self.baked_logdet).expand(x.shape[0])
        x = F.conv2d(x, self.baked_weight, self.baked_bias)
        for layer in self._rest():
            x, d = layer(x, cond if layer.conditional else None)
            logdet = logdet + d
        return x, logdet

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if not self.baked:
            return super().inverse(y, cond)
        self._check_cond(cond)
        logdet = (-(y.shape[2] * y.shape[3]) * self.baked_logdet).expand(y.shape[0])
        for layer in reversed(self._rest()):
            y, d = layer.inverse(y, cond if layer.conditional else None)
            logdet = logdet + d
        return F.conv2d(y, self.baked_inverse_weight, self.baked_inverse_bias), logdet


def transition_block(channels: int, n_steps: int = 2,
                     generator: torch.Generator | None = None) -> FlowSequence:
    """``n_steps`` x (ActNorm -> invertible 1x1): mixes channels after a squeeze and before an
    unsqueeze."""
    return FlowSequence(FlowStep(channels, coupling=False, generator=generator)
                        for _ in range(n_steps))


class FlowLevel(Composite):
    """One scale of an unconditional multi-scale flow:
    squeeze -> transition -> ``n_steps`` flow steps [-> transition -> unsqueeze].

    ``in_channels`` is the channel count before the squeeze. With ``unsqueeze=True`` the
    level returns to the input shape (the authors' LR flow).
    """

    def __init__(self, in_channels: int, n_steps: int, hidden: int = 64,
                 unsqueeze: bool = False, transition_steps: int = 2,
                 generator: torch.Generator | None = None):
        super().__init__()
        channels = 4 * in_channels
        self.squeeze = Squeeze()
        self.transition_in = transition_block(channels, transition_steps, generator)
        self.steps = FlowSequence(FlowStep(channels, hidden=hidden, generator=generator)
                                  for _ in range(n_steps))
        self.transition_out = transition_block(channels, transition_steps, generator) \
            if unsqueeze else None

    def members(self) -> list[Bijection]:
        layers = [self.squeeze, self.transition_in, self.steps]
        if self.transition_out is not None:
            layers += [self.transition_out, Unsqueeze()]
        return layers


class ConditionalFlow(Bijection):
    """A conditional flow ``z <-> z'`` given a raw condition ``c``.

    The condition is first mapped to features ``u = cond_net(c)`` that every conditional
    step sees. With ``squeeze=True`` the input is squeezed (and transitioned) first, so
    ``cond_net`` must return features at half the resolution of ``c``.
    The last step has no coupling (as in the authors' model).
    """

    conditional = True

    def __init__(self, channels: int, cond_net: nn.Module, cond_channels: int, n_steps: int,
                 hidden: int = 64, squeeze: bool = False,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.cond_net = cond_net
        inner = channels * 4 if squeeze else channels
        self.squeeze = squeeze
        self.transition = transition_block(inner, generator=generator) if squeeze else None
        self.steps = FlowSequence(
            FlowStep(inner, cond_channels, hidden, coupling=i < n_steps - 1, generator=generator)
            for i in range(n_steps)
        )

    def forward_features(self, z: Tensor, features: Tensor) -> tuple[Tensor, Tensor]:
        logdet = z.new_zeros(z.shape[0])
        if self.transition is not None:
            z, logdet = self.transition(Squeeze()(z)[0])
        z, ld = self.steps(z, PaddedCondition.of(features))  # padded once for all steps
        return z, logdet + ld

    def inverse_features(self, z: Tensor, features: Tensor) -> tuple[Tensor, Tensor]:
        z, logdet = self.steps.inverse(z, PaddedCondition.of(features))
        if self.transition is not None:
            z, ld = self.transition.inverse(z)
            z = Squeeze().inverse(z)[0]
            logdet = logdet + ld
        return z, logdet

    def forward(self, z: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self._check_cond(cond)
        return self.forward_features(z, self.cond_net(cond))

    def inverse(self, z: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self._check_cond(cond)
        return self.inverse_features(z, self.cond_net(cond))


class ConditionalSplit(Bijection):
    """Split channels into ``(a, b)`` = first ``keep`` / the rest and transform ``b`` by a
    conditional flow given ``a``: ``x = [a, b] -> [a, f(b - P(a); a)]``.

    ``P`` is an optional :class:`~sdflow.flows.predict.LinearPredictor` (the predict step of
    a lifting scheme; without one, ``P = 0`` as in the authors' model). The Jacobian is
    block-triangular, so the log-det is that of ``f``. With ``detach_condition`` no gradient
    reaches ``a`` through the condition or the predictor (the authors' HF flow does this).
    """

    def __init__(self, keep: int, flow: ConditionalFlow, detach_condition: bool = True,
                 predictor: LinearPredictor | None = None):
        super().__init__()
        self.keep = keep
        self.flow = flow
        self.detach_condition = detach_condition
        self.predictor = predictor

    def split(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x[:, : self.keep], x[:, self.keep :]

    def _cond(self, a: Tensor) -> Tensor:
        return a.detach() if self.detach_condition else a

    def predict(self, a: Tensor) -> Tensor | None:
        """``P(a)`` (``None`` without a predictor)."""
        return None if self.predictor is None else self.predictor(self._cond(a))

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        a, b = self.split(x)
        if self.predictor is not None:
            if self.predictor.wants_init:
                self.predictor.initialize(a, b)
            b = b - self.predict(a)
        b, logdet = self.flow(b, self._cond(a))
        return torch.cat([a, b], dim=1), logdet

    def inverse_given(self, a: Tensor, b: Tensor, features: Tensor) -> tuple[Tensor, Tensor]:
        """Inverse of the transformed half ``b`` given ``a`` and the condition features
        ``u = cond_net(a)`` computed once (the SR pipeline reuses them across samples)."""
        b, logdet = self.flow.inverse_features(b, features)
        prediction = self.predict(a)
        return (b if prediction is None else b + prediction), logdet

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        a, b = self.split(y)
        b, logdet = self.inverse_given(a, b, self.flow.cond_net(self._cond(a)))
        return torch.cat([a, b], dim=1), logdet
