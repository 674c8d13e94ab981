"""A workload sized for a GPU: a small ResNet on a generated CIFAR-shaped data set (3x32x32 images, 10
classes), and ``train``, a training function for it with the GPU path on.

``workload: orchestrator.workloads.images:cifar_resnet`` trains it with the built-in loop (not among
``BUILTINS``: its default size is a GPU's, too slow for the CPU checks every built-in gets);
``train: orchestrator.workloads.images:train`` with the GPU path, which is used only when the trial has a
GPU: data kept on the device (copied once, pinned and non-blocking), ``channels_last``, ``cudnn.benchmark``,
and mixed precision when ``amp: true`` (float16 with a gradient scaler). On a CPU it is the plain loop, so
the same config runs anywhere.

Config keys (all optional): ``width`` (64: channels of the first stage; 2x, 4x in the next two),
``blocks`` (2 residual blocks a stage), ``n_train`` (20000 images; 20% more for validation), ``amp``
(false), ``batch_size`` (128), ``seed``. The data depends only on ``n_train`` (a fixed seed): every
trial sees the same images.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import nn

from orchestrator.workloads import Workload

space_keys = frozenset({"width", "blocks", "n_train", "amp"})
CLASSES, SHAPE = 10, (3, 32, 32)


@functools.lru_cache(maxsize=2)
def images(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` images and labels: each class a fixed random low-frequency pattern, each image its class's
    pattern, shifted and scaled at random, plus noise (learnable, not trivially: a linear model does not
    reach a CNN's accuracy). Cached per process."""
    if n < 1:
        raise ValueError(f"n={n}: expected >= 1")
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(CLASSES, 3, 8, 8, generator=g)
    patterns = nn.functional.interpolate(coarse, size=SHAPE[1:], mode="bilinear", align_corners=False)
    labels = torch.randint(0, CLASSES, (n,), generator=g)
    shifts = torch.randint(-4, 5, (n, 2), generator=g)
    x = torch.empty(n, *SHAPE)
    for i in range(n):
        x[i] = torch.roll(patterns[labels[i]], shifts=(int(shifts[i, 0]), int(shifts[i, 1])), dims=(1, 2))
    x = x * (0.5 + torch.rand(n, 1, 1, 1, generator=g)) + 1.5 * torch.randn(n, *SHAPE, generator=g)
    return x, labels


class Block(nn.Module):
    """conv-bn-relu-conv-bn plus the input (a 1x1 conv when the shape changes), relu."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.skip = (
            nn.Identity()
            if stride == 1 and cin == cout
            else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.skip(x))


def resnet(width: int = 64, blocks: int = 2, classes: int = CLASSES) -> nn.Sequential:
    """A CIFAR ResNet: a 3x3 stem, three stages of ``blocks`` blocks (width, 2x, 4x; stride 2 between),
    global average pooling, a linear head. width 64, blocks 2: ResNet-18's body at CIFAR scale."""
    if width < 1 or blocks < 1:
        raise ValueError(f"width={width}, blocks={blocks}: expected both >= 1")
    layers: list[nn.Module] = [nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
    cin = width
    for stage in range(3):
        cout = width * 2**stage
        for b in range(blocks):
            layers.append(Block(cin, cout, 2 if stage and b == 0 else 1))
            cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, classes)]
    return nn.Sequential(*layers)


def cifar_resnet(config: dict) -> Workload:
    """The workload: ``resnet(width, blocks)`` on ``images(n_train * 1.2)``, split 5:1 into train and val."""
    n = int(config.get("n_train", 20000))
    if n < 10:
        raise ValueError(f"n_train={n}: expected >= 10")
    x, y = images(n + max(2, n // 5))
    torch.manual_seed(int(config.get("seed", 0)))
    model = resnet(int(config.get("width", 64)), int(config.get("blocks", 2)))
    return Workload(
        model=model,
        train=torch.utils.data.TensorDataset(x[:n], y[:n]),
        val=torch.utils.data.TensorDataset(x[n:], y[n:]),
        loss=nn.CrossEntropyLoss(),
        num_classes=CLASSES,
        meta={"name": "cifar_resnet", "shape": SHAPE},
    )


cifar_resnet.space_keys = space_keys  # type: ignore[attr-defined]


def train(config: dict, trial) -> None:
    """A training function (``orchestrator.session``) for ``cifar_resnet`` with the GPU path when the
    trial's device is CUDA; data-parallel through ``trial.parallel`` (DDP, a shard per worker)."""
    torch.manual_seed(trial.seed)
    wl = cifar_resnet(config)
    device = trial.device
    gpu = device.type == "cuda"
    amp = gpu and bool(config.get("amp", False))
    if gpu:
        torch.backends.cudnn.benchmark = True
    model = wl.model.to(device)
    if gpu:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    net = trial.parallel.model(model)
    optimizer = trial.optimizer(model.parameters())
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    train_x, train_y = _on(trial.parallel.shard(wl.train), device)
    val_x, val_y = _on(wl.val, device)
    batch_size = int(config.get("batch_size", 128))
    generator = torch.Generator().manual_seed(trial.seed)
    saved = trial.restore()
    if saved:
        model.load_state_dict(saved["model"])
        generator.set_state(saved["generator"])
        scaler.load_state_dict(saved.get("scaler", {}) or scaler.state_dict())
    for _ in trial.epochs():
        net.train()
        total = torch.zeros((), device=device)
        order = torch.randperm(len(train_y), generator=generator).to(device, non_blocking=True)
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            x, y = train_x[idx], train_y[idx]
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
                loss = wl.loss(net(x), y)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            trial.step()
            total += loss.detach() * len(y)
        train_loss = float(total) / len(train_y)  # one device sync an epoch
        val_loss, val_error = _evaluate(model, val_x, val_y, wl.loss, amp)
        if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
            trial.report(diverged=True, train_loss=math.inf, val_loss=math.inf, val_error=1.0, val_accuracy=math.nan)
        trial.checkpoint(
            {"model": model.state_dict(), "generator": generator.get_state(), "scaler": scaler.state_dict()}
        )
        trial.report(train_loss=train_loss, val_loss=val_loss, val_error=val_error, val_accuracy=1 - val_error)


def _on(dataset, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """A TensorDataset's (x, y) on ``device``: pinned and copied without blocking to a GPU, in
    channels_last there."""
    x, y = dataset.tensors
    if device.type == "cuda":
        x, y = x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
        x = x.contiguous(memory_format=torch.channels_last)
    return x, y


def _evaluate(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn, amp: bool, batch_size: int = 1024
) -> tuple[float, float]:
    model.eval()
    total = torch.zeros((), device=x.device)
    errors = torch.zeros((), device=x.device, dtype=torch.long)
    with torch.no_grad(), torch.autocast(x.device.type, dtype=torch.float16, enabled=amp):
        for i in range(0, len(y), batch_size):
            out = model(x[i : i + batch_size])
            total += loss_fn(out.float(), y[i : i + batch_size]) * len(out)
            errors += (out.argmax(dim=1) != y[i : i + batch_size]).sum()
    return float(total) / len(y), float(errors) / len(y)
