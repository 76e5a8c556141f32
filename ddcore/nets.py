"""The ConvNet every dataset-distillation paper uses.

Each block: Conv3x3(pad 1) -> "instance norm" (GroupNorm with one group per channel, affine)
-> ReLU -> AvgPool 2x2 (`AvgPool2x2`). A linear classifier sits on the flattened features; `embed` returns
those features (what DM matches and what the surrogate's density is computed on).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# A CPU runs a network over many images in chunks whose first activation map stays within this many
# bytes: one forward over all 2,560 paper-size real images of a DM step (1 GB of activations) ran
# slower than cache-sized chunks that the allocator reuses, and so did one forward and backward
# over 500 synthetic images or a surrogate's 512 views (bench/RESULTS.md 8.2, 8.6).
CPU_CHUNK_BYTES = 16 * 2**20


def cpu_chunk(net: "ConvNet", images: torch.Tensor) -> int:
    """Images per forward for `net` on `images`' device (see CPU_CHUNK_BYTES); 0 means all at once
    (a GPU)."""
    if images.device.type != "cpu":
        return 0
    first = next(m for m in net.features if isinstance(m, nn.Conv2d))
    return max(1, CPU_CHUNK_BYTES // (first.out_channels * images.shape[-2] * images.shape[-1] * 4))


class AvgPool2x2(nn.Module):
    """nn.AvgPool2d(2), computed on a CPU as a depthwise 2x2 convolution with weights 1/4: the
    same numbers up to float rounding, 2-3x faster there (forward and backward), where ATen's
    average pooling of NCHW tensors is not vectorised and took a quarter of an evaluation step
    (bench/RESULTS.md 8.6).
    A GPU keeps the pooling kernel. No parameters: nothing for `init_parameters` to draw."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu":
            return F.avg_pool2d(x, 2)
        channels = x.shape[1]
        return F.conv2d(x, x.new_full((channels, 1, 2, 2), 0.25), stride=2, groups=channels)


class ConvNet(nn.Module):
    def __init__(
        self,
        num_classes: int = 10,
        channels: int = 3,
        width: int = 128,
        depth: int = 3,
        norm: str = "instance",
        image_size: tuple[int, int] = (28, 28),
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c, h, w = channels, *image_size
        for _ in range(depth):
            layers.append(nn.Conv2d(c, width, kernel_size=3, padding=1))
            if norm == "instance":
                layers.append(nn.GroupNorm(width, width, affine=True))
            elif norm != "none":
                raise ValueError(f"unknown norm '{norm}'; choose 'instance' or 'none'")
            layers += [nn.ReLU(inplace=True), AvgPool2x2()]
            c, h, w = width, h // 2, w // 2
        self.features = nn.Sequential(*layers)
        self.embed_dim = width * h * w
        self.classifier = nn.Linear(self.embed_dim, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] -> [B, embed_dim]"""
        return self.features(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] -> logits [B, num_classes]"""
        return self.classifier(self.embed(x))

    def reset_parameters(self, generator: torch.Generator) -> "ConvNet":
        """Re-draw every weight from `generator`: a fresh random network without allocation."""
        return init_parameters(self, generator)


@torch.no_grad()
def init_parameters(module: nn.Module, generator: torch.Generator) -> nn.Module:
    """Draw every conv/linear weight and bias as PyTorch's default init does, but from
    `generator`, so networks are reproducible without touching the global RNG."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            bound = 1.0 / math.sqrt(m.weight[0].numel())
            # kaiming_uniform(a=sqrt(5)) and the bias init share this bound
            _uniform_(m.weight, bound, generator)
            _uniform_(m.bias, bound, generator)
        elif isinstance(m, nn.GroupNorm):
            m.weight.fill_(1.0)
            m.bias.zero_()
    return module


def _uniform_(t: torch.Tensor, bound: float, generator: torch.Generator) -> None:
    if t.device == generator.device:
        t.uniform_(-bound, bound, generator=generator)
    else:  # draw on the generator's device, then copy: a CPU generator for CUDA params
        t.copy_(torch.empty(t.shape, device=generator.device).uniform_(-bound, bound, generator=generator))


def build_convnet(num_classes: int, width: int, depth: int, norm: str, image_size: tuple[int, int],
                  generator: torch.Generator, device: torch.device | str = "cpu") -> ConvNet:
    """A ConvNet initialised from `generator` and moved to `device`."""
    return ConvNet(num_classes, 3, width, depth, norm, image_size).reset_parameters(generator).to(device)
