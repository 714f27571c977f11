"""What the window knows of the video it reconstructs and scrubs: Qt-free, no maths, testable alone.

One ``VideoSession`` per opened video. The child process that reconstructs its frames reports
messages (``info``, ``frame``, ``progress``, ``done``, ``error``); the session keeps which frames
have a saved reconstruction, which one the timeline wants shown, whether one is loading, and a small
cache of loaded frames. The window turns its answers into widget updates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

FRAME_CACHE = 64  # loaded frames kept for scrubbing back and forth


@dataclass(eq=False)
class VideoSession:
    path: str
    out_dir: str  # the video job's folder (frames.jsonl, one .npz per frame with a face)
    remember: bool = True  # whether the file goes to Recent once it opens
    process: Any = None  # the child process reconstructing the frames (owned by the window)
    frames: int = 0  # the container's frame count (0 until the job's "info" message)
    fps: float = 25.0
    size: tuple[int, int] | None = None  # (width, height), known after "info"
    shown: bool = False  # the first face has been shown
    done: bool = False  # the job finished ("done" message)
    ended: bool = False  # the job is over, however it ended
    summary: dict = field(default_factory=dict)
    saved: dict[int, str] = field(default_factory=dict)  # frame index -> its reconstruction (.npz)
    cache: dict[int, Any] = field(default_factory=dict)  # frame index -> loaded FaceResult
    wanted: int | None = None  # the newest frame asked for while another loads
    loading: bool = False

    # ------------------------------------------------------------------ the job's messages

    def apply_info(self, info: dict) -> None:
        self.frames = int(info.get("frames") or 0)
        self.fps = float(info.get("fps") or 25.0)
        self.size = (int(info.get("width") or 0), int(info.get("height") or 0))

    def add_frame(self, index: int, path: str) -> bool:
        """Record a saved frame; True for the first one (the window shows it at once)."""
        self.saved[index] = path
        first = not self.shown
        self.shown = True
        return first

    def finish(self, summary: dict) -> None:
        self.done, self.ended, self.summary = True, True, summary

    # ------------------------------------------------------------------ scrubbing

    def shown_frame(self, index: int) -> int | None:
        """The frame to show for timeline position ``index``: itself, else the nearest earlier
        frame with a face, else None (nothing reconstructed up to there)."""
        if index in self.saved:
            return index
        earlier = [i for i in self.saved if i <= index]
        return max(earlier) if earlier else None

    def want(self, index: int) -> bool:
        """Ask for frame ``index``; True when nothing loads now, so the caller starts loading."""
        self.wanted = index
        return not self.loading

    def take_wanted(self) -> int | None:
        index, self.wanted = self.wanted, None
        return index

    def keep(self, face: Any) -> None:
        """Cache a loaded frame (the oldest leaves beyond FRAME_CACHE)."""
        self.cache[face.frame] = face
        while len(self.cache) > FRAME_CACHE:
            self.cache.pop(next(iter(self.cache)))

    def frame_files(self) -> list[str]:
        """The saved reconstructions in frame order (for the sequence export)."""
        return [self.saved[i] for i in sorted(self.saved)]
