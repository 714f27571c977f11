"""One person across the frames of a video or a live source: one shape, one reflectance.

The estimating thread's ``Track`` keeps the running mean of the identity and the smoothed viewpoint.
The finishing thread's ``PersonAlbedo`` estimates the rest of the chain: the reflectance is one
person's, so its network runs on every ``ALBEDO_STRIDE``-th frame of a track and the frames between
reuse its estimate (the light is still estimated on every frame, conditioned on it); the estimated
frames, with the photo's fine detail, make the person's running albedo, which every frame carries.
``MainShape`` picks the person seen most: the clip's one shape.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from engine.params import FaceParams
from engine.reconstruct.shots import MIN_TRACK_FRAMES, jump_threshold, shape_distance

POSE_SMOOTHING = 0.5  # weight of the previous frame's viewpoint
# Visibility the current frame's own (filled) albedo counts for in the running mean: texels no frame
# saw (inside the mouth, the nostrils, under the chin) take it, as photo mode's unseen texels do.
UNSEEN_PRIOR = 0.05
# Every third frame of a track estimates the reflectance (10 a second at 30 fps): the running mean
# over those is the mean over all frames to within the frames' own noise, and the reflectance
# network and the full-resolution detail unwrap are half of a frame's work.
ALBEDO_STRIDE = 3


@dataclass
class AlbedoMean:
    """Running visibility-weighted mean of one person's reflectance."""

    albedo_sum: torch.Tensor | None = None
    albedo_weight: torch.Tensor | None = None

    def update(self, params: FaceParams, visibility: torch.Tensor | None) -> FaceParams:
        weight = visibility if visibility is not None else torch.ones_like(params.albedo[:, :1])
        if self.albedo_sum is None or self.albedo_weight is None:
            self.albedo_sum, self.albedo_weight = params.albedo * weight, weight.clone()
        else:
            self.albedo_sum += params.albedo * weight
            self.albedo_weight += weight
        albedo = (self.albedo_sum + UNSEEN_PRIOR * params.albedo) / (self.albedo_weight + UNSEEN_PRIOR)
        return params.replace(albedo=albedo)


@dataclass
class Track:
    """Running consensus of one person's shape and the smoothed viewpoint (the crop box is followed
    by engine.tracking.CropTracker)."""

    identity_sum: torch.Tensor | None = None
    weight_sum: float = 0.0
    previous: FaceParams | None = None
    number: int = 0  # 0 for the first person tracked, 1 for the next...
    distance_sq_sum: float = 0.0  # squared shape distances to the running mean, frames judged this person
    distance_count: int = 0

    def reset(self) -> None:
        """End the track; the next face starts a new one (with the next number)."""
        number = self.number + (self.weight_sum > 0)
        vars(self).update(vars(Track(number=number)))

    def someone_else(self, face_model, params: FaceParams) -> bool:
        """Whether ``params``' shape is too far from the track's to be the same person; a frame judged
        the same person adds its distance to the track's spread."""
        if self.identity_sum is None or self.weight_sum < MIN_TRACK_FRAMES:
            return False
        distance = shape_distance(face_model, params.identity, self.identity_sum / self.weight_sum)
        if distance > jump_threshold(self.distance_sq_sum, self.distance_count):
            return True
        self.distance_sq_sum += distance**2
        self.distance_count += 1
        return False

    def update(self, params: FaceParams) -> FaceParams:
        """Fold a frame in and return it with the track's identity and smoothed viewpoint (its albedo
        is left to the finishing thread's PersonAlbedo)."""
        if self.identity_sum is None:
            self.identity_sum = params.identity.clone()
        else:
            self.identity_sum += params.identity
        self.weight_sum += 1
        smoothed = params.replace(identity=self.identity_sum / self.weight_sum)
        if self.previous is not None:
            a = POSE_SMOOTHING
            smoothed = smoothed.replace(
                rotation=a * self.previous.rotation + (1 - a) * params.rotation,
                translation=a * self.previous.translation + (1 - a) * params.translation,
                scale=a * self.previous.scale + (1 - a) * params.scale,
            )
        self.previous = smoothed
        return smoothed


class PersonAlbedo:
    """The finishing thread's half of a track: the reflectance network runs on every
    ``ALBEDO_STRIDE``-th frame (Reconstructor.estimate_appearance), whose albedo gets the photo's
    detail (Reconstructor.add_detail) and is folded into the person's running mean; the frames
    between reuse the network's last estimate for their light and carry the mean as it stands.
    Another track number starts another person's."""

    def __init__(self, number: int = -1):
        self._start(number)

    def _start(self, number: int) -> None:
        self.mean, self.number = AlbedoMean(), number
        self.current: torch.Tensor | None = None  # the running mean every frame carries
        self.reflectance: torch.Tensor | None = None  # the network's albedo of the last estimate
        self.reused = 0  # frames since then that reused it

    def finish(self, reconstructor, recon, number: int) -> None:
        """Give ``recon`` (of track ``number``) its light and its person's albedo, in place."""
        if number != self.number:
            self._start(number)
        due = self.reflectance is None or self.reused >= ALBEDO_STRIDE - 1
        reconstructor.estimate_appearance(recon, None if due else self.reflectance)
        if recon.albedo_reused and self.current is not None:
            self.reused += 1
            recon.extras.pop("detail_pending", None)
            recon.params = recon.params.replace(albedo=self.current)
            return
        self.reflectance, self.reused = recon.params.albedo, 0
        reconstructor.add_detail(recon)
        recon.params = self.mean.update(recon.params, recon.extras.get("visibility"))
        self.current = recon.params.albedo


class MainShape:
    """The shape and albedo of the person seen in the most frames: the clip's one shape."""

    def __init__(self):
        self.params: FaceParams | None = None
        self._best, self._track, self._count = 0, -1, 0

    def add(self, track: int, params: FaceParams) -> None:
        self._track, self._count = track, (self._count + 1 if track == self._track else 1)
        if self._count >= self._best:  # a track's latest params hold its running means
            self._best, self.params = self._count, params
