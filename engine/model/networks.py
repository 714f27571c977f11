"""The four CEST estimators and the small convolutional blocks they are built from.

Every estimator ends in a zero-initialised linear layer (or a zero-initialised output conv), so
an untrained chain predicts the initial face: frontal, centred, mean shape, near-neutral
expression, grey albedo, ambient light. Training moves away from that point.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def conv_block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    groups = min(8, cout // 4) or 1
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
        nn.GroupNorm(groups, cout),
        nn.LeakyReLU(0.2, inplace=True),
    )


def zero_linear(cin: int, cout: int) -> nn.Linear:
    layer = nn.Linear(cin, cout)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


def _widths(width: int, stages: int) -> list[int]:
    """Channel counts doubling from width/2, capped at 4*width."""
    return [min(width * 4, max(8, width // 2) << i) for i in range(stages)]


class Encoder(nn.Module):
    """Stride-2 conv stages down to a 4x4 map, flattened into a feature vector."""

    def __init__(self, in_channels: int, size: int, width: int, features: int):
        super().__init__()
        stages = max(1, (size // 4).bit_length() - 1)  # 128 -> 5 stages, 64 -> 4
        chans = _widths(width, stages)
        layers, cin = [], in_channels
        for cout in chans:
            layers.append(conv_block(cin, cout, 2))
            cin = cout
        self.body = nn.Sequential(*layers)
        side = size >> stages
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(cin * side * side, features), nn.LeakyReLU(0.2, True)
        )
        self.features = features

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x))


class Decoder(nn.Module):
    """Feature vector -> (B, out, size, size) map through nearest upsampling and convs."""

    def __init__(self, features: int, size: int, width: int, out_channels: int = 3):
        super().__init__()
        stages = max(1, (size // 4).bit_length() - 1)
        chans = _widths(width, stages + 1)[::-1]
        self.start = chans[0]
        self.fc = nn.Sequential(nn.Linear(features, chans[0] * 16), nn.LeakyReLU(0.2, True))
        layers = []
        for cin, cout in zip(chans[:-1], chans[1:]):
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), conv_block(cin, cout)]
        self.body = nn.Sequential(*layers)
        self.out = nn.Conv2d(chans[-1], out_channels, 3, 1, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, z: Tensor) -> Tensor:
        x = self.fc(z).reshape(z.shape[0], self.start, 4, 4)
        return self.out(self.body(x))


class UNet(nn.Module):
    """Image-to-image network (same size in and out) with skip connections; zero-initialised output."""

    def __init__(self, in_channels: int, out_channels: int, size: int, width: int, depth: int = 3):
        super().__init__()
        chans = _widths(width, depth + 1)
        self.stem = conv_block(in_channels, chans[0])
        self.down = nn.ModuleList(conv_block(a, b, 2) for a, b in zip(chans[:-1], chans[1:]))
        self.up = nn.ModuleList(conv_block(b + a, a) for a, b in zip(chans[:-1], chans[1:]))
        self.out = nn.Conv2d(chans[0], out_channels, 3, 1, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor) -> Tensor:
        skips = [self.stem(x)]
        for down in self.down:
            skips.append(down(skips[-1]))
        y = skips.pop()
        for up in reversed(self.up):
            skip = skips.pop()
            y = nn.functional.interpolate(y, size=skip.shape[-2:], mode="nearest")
            y = up(torch.cat([y, skip], 1))
        return self.out(y)


class ViewpointNet(nn.Module):
    """f_v(I) -> (B, 6): pitch, yaw, roll offsets, translation (2), log-scale offset."""

    def __init__(self, size: int, width: int, features: int):
        super().__init__()
        self.encoder = Encoder(3, size, width, features)
        self.head = zero_linear(features, 6)

    def forward(self, image: Tensor) -> Tensor:
        return self.head(self.encoder(image))


class ShapeNet(nn.Module):
    """f_s(aligned I) -> (B, n_identity + n_expression) raw coefficients."""

    def __init__(self, size: int, width: int, features: int, n_coeffs: int):
        super().__init__()
        self.encoder = Encoder(3, size, width, features)
        self.head = zero_linear(features, n_coeffs)

    def forward(self, image: Tensor) -> Tensor:
        return self.head(self.encoder(image))


class ReflectanceNet(nn.Module):
    """f_r: albedo logits (B, 3, T, T).

    Conditional: a UNet over the unwrapped texture, its visibility and their mirror images
    (8 channels, so occluded texels can borrow from the other side). Unconditional: the image is
    encoded to a vector and decoded into UV space.
    """

    def __init__(self, conditional: bool, image_size: int, texture_size: int, width: int, features: int):
        super().__init__()
        self.conditional = conditional
        if conditional:
            self.net = UNet(8, 3, texture_size, width)
        else:
            self.encoder = Encoder(3, image_size, width, features)
            self.decoder = Decoder(features, texture_size, width)

    def forward(self, image: Tensor, texture: Tensor | None, visibility: Tensor | None) -> Tensor:
        if not self.conditional:
            return self.decoder(self.encoder(image))
        x = torch.cat([texture, visibility, texture.flip(-1), visibility.flip(-1)], 1)
        return self.net(x * 2 - 1)


class IlluminationNet(nn.Module):
    """f_l -> (B, 27) SH offsets. Conditional: sees I plus the UV stack [T, A, visibility]."""

    def __init__(self, conditional: bool, image_size: int, texture_size: int, width: int, features: int):
        super().__init__()
        self.conditional = conditional
        self.image_encoder = Encoder(3, image_size, width, features)
        total = features
        if conditional:
            self.uv_encoder = Encoder(7, texture_size, width, features)
            total += features
        self.head = zero_linear(total, 27)

    def forward(
        self,
        image: Tensor,
        texture: Tensor | None = None,
        albedo: Tensor | None = None,
        visibility: Tensor | None = None,
    ) -> Tensor:
        feats = self.image_encoder(image)
        if self.conditional:
            uv = torch.cat([texture, albedo, visibility], 1) * 2 - 1
            feats = torch.cat([feats, self.uv_encoder(uv)], 1)
        return self.head(feats)
