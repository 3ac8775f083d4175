"""Real little videos for tests, encoded with PyAV (the worker's decoder, FFmpeg inside
its wheel): solid-colour frames, so a test can tell which frames a model was shown."""

from __future__ import annotations

import io
import random

import av

__all__ = ["RED_GREEN_BLUE", "colour_of", "noisy_video", "tiny_video"]

RED_GREEN_BLUE = [(255, 0, 0)] * 4 + [(0, 255, 0)] * 4 + [(0, 0, 255)] * 4
"""Twelve frames: four red, four green, four blue (three seconds at 4 fps)."""


def tiny_video(
    colours: list[tuple[int, int, int]] = RED_GREEN_BLUE,
    size: tuple[int, int] = (64, 48),
    fps: int = 4,
    container: str = "mp4",
) -> bytes:
    """An MPEG-4 video (in MP4, or another ``container``) showing ``colours`` in order."""
    width, height = size
    out = io.BytesIO()
    with av.open(out, "w", format=container) as video:
        stream = video.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for colour in colours:
            frame = av.VideoFrame(width, height, "rgb24")
            frame.planes[0].update(bytes(colour) * (width * height))
            for packet in stream.encode(frame.reformat(format="yuv420p")):
                video.mux(packet)
        for packet in stream.encode(None):
            video.mux(packet)
    return out.getvalue()


def noisy_video(frames: int, size: tuple[int, int] = (320, 240), seed: int = 1) -> bytes:
    """An MP4 of random pixels (which do not compress away: a large file from few frames)."""
    width, height = size
    noise = random.Random(seed)
    out = io.BytesIO()
    with av.open(out, "w", format="mp4") as video:
        stream = video.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for _ in range(frames):
            frame = av.VideoFrame(width, height, "rgb24")
            frame.planes[0].update(noise.randbytes(width * height * 3))
            for packet in stream.encode(frame.reformat(format="yuv420p")):
                video.mux(packet)
        for packet in stream.encode(None):
            video.mux(packet)
    return out.getvalue()


def colour_of(jpeg: bytes) -> str:
    """``red``, ``green`` or ``blue``: the strongest channel of a JPEG's middle pixel."""
    with av.open(io.BytesIO(jpeg), format="mjpeg") as image:
        frame = next(image.decode(video=0)).to_rgb()
    row = bytes(frame.planes[0])[frame.planes[0].line_size * (frame.height // 2) :]
    pixel = row[3 * (frame.width // 2) : 3 * (frame.width // 2) + 3]
    return ("red", "green", "blue")[max(range(3), key=lambda i: pixel[i])]
