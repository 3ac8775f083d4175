"""A video as the agent's model takes it: the video itself, or frames as image parts.

``video_inputs.video_input`` decides per model: a Gemini model gets a ``file`` part and
a Qwen VL (or omni) model behind an OpenAI-compatible server a ``video_url`` part, both
carrying the video as a ``data:`` URL; any other vision model is shown ``VIDEO_FRAMES``
evenly spaced frames as JPEG image parts. Frames are decoded here with PyAV (FFmpeg's
libraries inside its wheel: no system ffmpeg), in a thread, from the bytes the gateway
served (already checked: a video by its first bytes, within the agent's size limit).
"""

from __future__ import annotations

import asyncio
import io
from fractions import Fraction

import av
from massgen_proto.json_types import JsonObject
from massgen_proto.video_inputs import VIDEO_FRAMES, video_input

from .media import MediaError, data_url, file_part, image_part

__all__ = ["FRAME_SIDE", "MAX_PIXELS", "sample_frames", "video_parts", "video_url_part"]

FRAME_SIDE = 768
"""Longest side of a frame shown to the model, in pixels (frames are scaled down)."""
MAX_PIXELS = 8192 * 8192
"""Largest frame decoded: a video claiming more is refused before any decoding."""


def video_url_part(mime: str, data: bytes) -> JsonObject:
    """An OpenAI-style ``video_url`` content part (litellm passes it through as is)."""
    return {"type": "video_url", "video_url": {"url": data_url(mime, data)}}


async def video_parts(
    backend_type: str, model: str, name: str, mime: str, data: bytes
) -> list[JsonObject]:
    """The content parts that show the video ``name`` to ``model``.

    Raises:
        MediaError: the model takes neither video nor images, or the bytes do not
            decode as a video (frames only).
    """
    mode = video_input(backend_type, model)
    if mode == "file":
        return [file_part(name, mime, data)]
    if mode == "video_url":
        return [video_url_part(mime, data)]
    if mode is None:
        raise MediaError(f"{name}: model {model!r} takes neither video nor images")
    frames = await asyncio.to_thread(sample_frames, data, VIDEO_FRAMES, FRAME_SIDE, name)
    return [image_part(data_url("image/jpeg", frame)) for frame in frames]


def sample_frames(data: bytes, count: int, side: int, name: str = "video") -> list[bytes]:
    """Up to ``count`` evenly spaced frames of the video ``data``, as JPEG files whose
    longest side is at most ``side`` pixels (fewer frames for a shorter video).

    Raises:
        MediaError: not a video the decoder reads, no video stream, frames too large.
    """
    try:
        total = _frame_count(data, name)
        wanted = sorted({min(total - 1, int((i + 0.5) * total / count)) for i in range(count)})
        return _decode_picks(data, set(wanted), side, name)
    except av.FFmpegError as error:
        raise MediaError(f"{name}: not a video the decoder can read ({error})") from None


def _video_stream(container: av.container.InputContainer, name: str) -> av.VideoStream:
    if not container.streams.video:
        raise MediaError(f"{name}: the file holds no video stream")
    stream = container.streams.video[0]
    width, height = stream.codec_context.width, stream.codec_context.height
    if width * height > MAX_PIXELS:
        raise MediaError(f"{name}: frames of {width}x{height} are too large to decode here")
    return stream


def _frame_count(data: bytes, name: str) -> int:
    """The number of frames, from the container or else by counting packets (no decoding)."""
    with av.open(io.BytesIO(data), mode="r") as container:
        stream = _video_stream(container, name)
        total = stream.frames or sum(1 for packet in container.demux(stream) if packet.size)
    if total <= 0:
        raise MediaError(f"{name}: the video has no frames")
    return int(total)


def _decode_picks(data: bytes, picks: set[int], side: int, name: str) -> list[bytes]:
    frames: list[bytes] = []
    last = None
    with av.open(io.BytesIO(data), mode="r") as container:
        stream = _video_stream(container, name)
        for index, frame in enumerate(container.decode(stream)):
            last = frame
            if index in picks:
                frames.append(_jpeg(frame, side))
                if len(frames) == len(picks):
                    break
    if not frames and last is not None:
        frames.append(_jpeg(last, side))  # fewer frames decoded than the container said
    if not frames:
        raise MediaError(f"{name}: no frame of the video could be decoded")
    return frames


def _jpeg(frame: av.VideoFrame, side: int) -> bytes:
    """One frame as a JPEG file, scaled to fit ``side`` (even sizes, as the encoder wants)."""
    scale = min(1.0, side / max(frame.width, frame.height))
    width = max(2, int(frame.width * scale) // 2 * 2)
    height = max(2, int(frame.height * scale) // 2 * 2)
    picture = frame.reformat(width=width, height=height, format="yuvj420p")
    encoder = av.CodecContext.create("mjpeg", "w")
    encoder.width, encoder.height = width, height
    encoder.pix_fmt = "yuvj420p"
    encoder.time_base = Fraction(1, 25)
    packets = encoder.encode(picture) + encoder.encode(None)
    return b"".join(bytes(packet) for packet in packets)
