"""The networks of the experiments and their initialisation by method, paired across methods.

Architectures (:func:`build_model`), all for inputs flattened to ``(batch, features)``:

``mlp``
    ``fc1 -> act1 -> ... -> fcL -> actL -> out``, hidden widths ``hidden``; with ``batchnorm``
    a ``bn{i}`` (BatchNorm1d) between every ``fc{i}`` and ``act{i}``.
``cnn``
    The features reshaped to an image or a signal (:func:`input_shape`: ``(3, 32, 32)`` for
    CIFAR-10's 3072, ``(1, s, s)`` when ``features = s^2``, else ``(1, features)``), then per
    stage ``conv{i}`` (3 wide, padding 1) ``-> act{i}`` (with ``batchnorm``: ``conv{i} -> bn{i}
    -> act{i}``), a max-pool between stages, an adaptive average pool (2x2 or 4) and the linear
    ``out``.
``resnet``
    A ResNet-style CNN (He et al. 2016): a stem convolution with batch norm, ``blocks`` basic
    residual blocks per stage (two 3-wide convolutions with batch norm; the first block of every
    later stage halves the resolution and has a 1x1 projection shortcut), global average pooling
    and the linear ``out``.

Initialisation (:func:`initialise`) of every Linear/Conv weight (the canonical matrix is the
weight reshaped to ``(out, in * prod(k))``, see :mod:`netinit`):

1. the **base draw** from the method's initialiser with a ``torch.Generator`` seeded from
   ``(seed, "<layer>.weight")`` (:func:`netinit._rng.torch_seed`), so for a seed every
   method with the same base starts from the same draw, and a layer's draw does not depend on the
   others;
2. the **modifiers** in order, each on top of the current weights: ``stabilize`` keeps, of the
   base draw and ``stabilize_k - 1`` further draws (stream ``"<layer>.stabilize"``), the one of
   lowest mean in/out strength variance (:func:`netinit.rewire.stabilize_`); ``decorrelated`` and
   ``decorrelated_backprop`` decorrelate the rows (:func:`netinit.diversity.decorrelate`,
   symmetric or by gradient steps); ``pa`` rewires (:func:`netinit.rewire.pa_rewire_`, stream
   ``"<layer>.pa"``); ``decorrelated_greedy`` replaces the draw by rows chosen greedily from 4
   fresh draws (:func:`netinit.diversity.decorrelated_`, stream ``"<layer>.greedy"``);
   ``scale_default`` and ``scale_gain1`` multiply the whole matrix by one factor so that the root
   mean square of its row norms is PyTorch's default's expectation ``sqrt(1/3)``
   (kaiming_uniform with ``a = sqrt(5)`` has variance ``1 / (3 fan_in)``) or 1 (orthogonal with
   gain 1 when ``n_out <= fan_in``): the structure (correlations, strength ratios) is kept and
   only the scale changes, so each structured arm gets a scale-matched twin;
3. biases as PyTorch's layers do (``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``, stream
   ``"<layer>.bias"``), the same for every method; batch norms at their defaults (1 and 0).

:func:`initialise` returns fingerprints of the base draw and of the final weights, which the
runner stores with every run so the pairing can be checked from the results.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from typing import Any

from netinit._rng import torch_seed
from netinit.experiments.config import InitConfig, Method, ModelConfig

__all__ = ["build_model", "input_shape", "weight_layers", "initialise"]




def input_shape(n_features: int, image_shape: tuple[int, ...] | None = None) -> tuple[int, ...]:
    """The shape ``(channels, *spatial)`` the CNNs see the flattened (channel-first) inputs as.

    In order: ``image_shape`` when given; the image shape of a data set of
    :data:`netinit.experiments.datasets.IMAGE_SHAPES` with ``n_features`` inputs (3072: CIFAR-10's
    ``(3, 32, 32)``); the grey image ``(1, s, s)`` when ``n_features = s^2`` with ``s >= 4``;
    else the 1-D signal ``(1, n_features)``.

    Raises
    ------
    ValueError
        ``image_shape`` does not hold ``n_features`` values.

    Examples
    --------
    >>> input_shape(3072), input_shape(784), input_shape(40)
    ((3, 32, 32), (1, 28, 28), (1, 40))
    """
    from netinit.experiments.datasets import IMAGE_SHAPES

    if image_shape is not None:
        shape = tuple(int(d) for d in image_shape)
        if len(shape) not in (2, 3) or math.prod(shape) != n_features:
            raise ValueError(f"image_shape must be (channels, length) or (channels, height, width) holding "
                             f"the {n_features} input features, got {image_shape!r}")
        return shape
    known = {math.prod(shape): shape for shape in IMAGE_SHAPES.values()}
    if n_features in known:
        return known[n_features]
    s = math.isqrt(n_features)
    return (1, s, s) if s * s == n_features and s >= 4 else (1, n_features)


def _act(name: str) -> Any:
    import torch.nn as nn

    return {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "sigmoid": nn.Sigmoid}[name]()


def _mlp(n_in: int, hidden: tuple[int, ...], n_out: int, activation: str, batchnorm: bool = False) -> Any:
    import torch.nn as nn

    layers: list[tuple[str, Any]] = []
    sizes = [n_in, *hidden]
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        layers.append((f"fc{i}", nn.Linear(a, b)))
        if batchnorm:
            layers.append((f"bn{i}", nn.BatchNorm1d(b)))
        layers.append((f"act{i}", _act(activation)))
    layers.append(("out", nn.Linear(sizes[-1], n_out)))
    return nn.Sequential(OrderedDict(layers))


def _cnn(shape: tuple[int, ...], channels: tuple[int, ...], n_out: int, activation: str,
         batchnorm: bool = False) -> Any:
    import torch.nn as nn

    two_d = len(shape) == 3
    conv, pool, gap = ((nn.Conv2d, nn.MaxPool2d, nn.AdaptiveAvgPool2d) if two_d
                       else (nn.Conv1d, nn.MaxPool1d, nn.AdaptiveAvgPool1d))
    bn = nn.BatchNorm2d if two_d else nn.BatchNorm1d
    out_size = 2 if two_d else 4
    layers: list[tuple[str, Any]] = [("unflatten", nn.Unflatten(1, shape))]
    c_in = shape[0]
    for i, c in enumerate(channels, start=1):
        if i > 1:
            layers.append((f"pool{i - 1}", pool(2, ceil_mode=True)))
        layers.append((f"conv{i}", conv(c_in, c, 3, padding=1)))
        if batchnorm:
            layers.append((f"bn{i}", bn(c)))
        layers.append((f"act{i}", _act(activation)))
        c_in = c
    layers += [("gap", gap(out_size)), ("flatten", nn.Flatten()),
               ("out", nn.Linear(c_in * out_size ** (2 if two_d else 1), n_out))]
    return nn.Sequential(OrderedDict(layers))


def _resnet(shape: tuple[int, ...], channels: tuple[int, ...], blocks: int, n_out: int, activation: str) -> Any:
    import torch.nn as nn

    two_d = len(shape) == 3
    conv, bn, gap = ((nn.Conv2d, nn.BatchNorm2d, nn.AdaptiveAvgPool2d) if two_d
                     else (nn.Conv1d, nn.BatchNorm1d, nn.AdaptiveAvgPool1d))

    class Block(nn.Module):
        """Basic residual block: conv-bn-act-conv-bn plus the (projected) input, then act."""

        def __init__(self, c_in: int, c_out: int, stride: int) -> None:
            super().__init__()
            self.conv1 = conv(c_in, c_out, 3, stride=stride, padding=1, bias=False)
            self.bn1 = bn(c_out)
            self.act1 = _act(activation)
            self.conv2 = conv(c_out, c_out, 3, padding=1, bias=False)
            self.bn2 = bn(c_out)
            self.shortcut = (nn.Sequential(conv(c_in, c_out, 1, stride=stride, bias=False), bn(c_out))
                             if stride != 1 or c_in != c_out else nn.Identity())
            self.act2 = _act(activation)

        def forward(self, x: Any) -> Any:
            y = self.bn2(self.conv2(self.act1(self.bn1(self.conv1(x)))))
            return self.act2(y + self.shortcut(x))

    layers: list[tuple[str, Any]] = [
        ("unflatten", nn.Unflatten(1, shape)),
        ("stem", conv(shape[0], channels[0], 3, padding=1, bias=False)), ("stem_bn", bn(channels[0])),
        ("stem_act", _act(activation)),
    ]
    c_in = channels[0]
    for s, c in enumerate(channels, start=1):
        for b in range(1, blocks + 1):
            stride = 2 if (s > 1 and b == 1) else 1
            layers.append((f"stage{s}_block{b}", Block(c_in, c, stride)))
            c_in = c
    layers += [("gap", gap(1)), ("flatten", nn.Flatten()), ("out", nn.Linear(c_in, n_out))]
    return nn.Sequential(OrderedDict(layers))


def build_model(cfg: ModelConfig, n_features: int, n_classes: int, *,
                image_shape: tuple[int, ...] | None = None) -> Any:
    """The network of ``cfg`` for ``n_features`` inputs and ``n_classes`` outputs (torch defaults).

    The CNNs unflatten the inputs to ``input_shape(n_features, image_shape)`` (:func:`input_shape`):
    pass ``image_shape`` (``(channels, height, width)``) for images of a size it does not know.

    Examples
    --------
    >>> from netinit.experiments.config import ModelConfig
    >>> m = build_model(ModelConfig(arch="mlp", hidden=(32, 16)), 64, 10)
    >>> list(weight_layers(m))
    ['fc1', 'fc2', 'out']
    """
    if cfg.arch == "mlp":
        return _mlp(n_features, cfg.hidden, n_classes, cfg.activation, cfg.batchnorm)
    if cfg.arch == "cnn":
        return _cnn(input_shape(n_features, image_shape), cfg.channels, n_classes, cfg.activation, cfg.batchnorm)
    return _resnet(input_shape(n_features, image_shape), cfg.channels, cfg.blocks, n_classes, cfg.activation)


def weight_layers(model: Any) -> dict[str, Any]:
    """The Linear and Conv modules of ``model`` by qualified name, in module order
    (:func:`netinit.layers.weight_modules`)."""
    from netinit.layers import weight_modules

    return weight_modules(model)


def _base_fn(base: str) -> Any:
    import functools

    from torch.nn import init

    if base == "default":
        return functools.partial(init.kaiming_uniform_, a=math.sqrt(5))
    return getattr(init, base + "_")


def _stabilized(w: Any, base: str, k: int, generator: Any) -> None:
    """Replace ``w`` by the best of itself and ``k - 1`` further draws (lowest strength variance)."""
    import torch

    from netinit.rewire import stabilize_, strength_variances

    if k <= 1:
        return
    cand = torch.empty_like(w)
    stabilize_(cand, _base_fn(base), k - 1, generator=generator)
    if sum(strength_variances(cand)) < sum(strength_variances(w)):
        w.copy_(cand)


#: Target root mean square row norm of the scale modifiers.
SCALE_TARGETS = {"scale_default": math.sqrt(1.0 / 3.0), "scale_gain1": 1.0}


def _rescale(w: Any, target: float) -> None:
    """Multiply ``w`` by one factor so that the root mean square of its row norms is ``target``."""
    rms = float(w.reshape(w.shape[0], -1).double().pow(2).sum(1).mean().sqrt())
    if rms > 0:
        w.mul_(target / rms)


def _fingerprint(h: Any, t: Any) -> None:
    h.update(t.detach().cpu().contiguous().numpy().tobytes())


def initialise(model: Any, method: Method, seed: int, options: InitConfig) -> dict[str, str]:
    """Initialise every Linear/Conv layer of ``model`` in place by ``method`` (see the module docstring).

    Parameters
    ----------
    model : torch.nn.Module
        From :func:`build_model`.
    method : Method
        Base initialiser and modifiers (:func:`netinit.experiments.config.parse_method`).
    seed : int
        Run seed; with the layer names it determines every draw.
    options : InitConfig
        ``stabilize_k``, ``pa_passes``, ``backprop_steps``.

    Returns
    -------
    dict
        ``base_draw``: a 16-hex-digit fingerprint of the base draw (weights and biases), equal for
        every method of a seed that shares the base initialiser; ``init_weights``: the same of
        the final initial weights.
    """
    import torch
    from torch.nn import init

    base_h, final_h = hashlib.sha256(), hashlib.sha256()
    with torch.no_grad():
        for name, m in weight_layers(model).items():
            w = m.weight
            g = torch.Generator().manual_seed(torch_seed(seed, f"{name}.weight"))
            _base_fn(method.base)(w, generator=g)
            bias = getattr(m, "bias", None)
            if bias is not None:
                bound = 1.0 / math.sqrt(w[0].numel()) if w[0].numel() > 0 else 0.0
                init.uniform_(bias, -bound, bound,
                              generator=torch.Generator().manual_seed(torch_seed(seed, f"{name}.bias")))
                _fingerprint(base_h, bias)
            _fingerprint(base_h, w)
            for mod in method.modifiers:
                if mod == "stabilize":
                    _stabilized(w, method.base, options.stabilize_k,
                                torch.Generator().manual_seed(torch_seed(seed, f"{name}.stabilize")))
                elif mod in SCALE_TARGETS:
                    _rescale(w, SCALE_TARGETS[mod])
                elif mod == "decorrelated_greedy":
                    from netinit.diversity import decorrelated_

                    if w.shape[1:].numel() >= 2:
                        decorrelated_(w, _base_fn(method.base), method="greedy",
                                      generator=torch.Generator().manual_seed(torch_seed(seed, f"{name}.greedy")))
                elif mod in ("decorrelated", "decorrelated_backprop"):
                    from netinit.diversity import decorrelate

                    if w.shape[1:].numel() >= 2:  # one input: rows cannot be decorrelated
                        kw = ({"method": "backprop", "steps": options.backprop_steps}
                              if mod == "decorrelated_backprop" else {})
                        w.copy_(decorrelate(w, **kw)[0])
                else:
                    from netinit.rewire import pa_rewire_

                    pa_rewire_(w, generator=torch.Generator().manual_seed(torch_seed(seed, f"{name}.pa")),
                               passes=options.pa_passes)
            _fingerprint(final_h, w)
            if bias is not None:
                _fingerprint(final_h, bias)
    return {"base_draw": base_h.hexdigest()[:16], "init_weights": final_h.hexdigest()[:16]}
