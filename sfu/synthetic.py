"""Synthetic media: a moving picture and a tone, paced in real time.

For the Python participant of tests, the benchmark and the self-check's media round
trip. Frames are made once up front, so sending costs only the encoder's time.
"""

from __future__ import annotations

import asyncio
import fractions
import math
import struct
import time

from aiortc import MediaStreamTrack
from av import AudioFrame, VideoFrame

VIDEO_CLOCK = 90000
AUDIO_RATE = 48000
AUDIO_PTIME = 0.020


class _Paced(MediaStreamTrack):
    def __init__(self, rate: float) -> None:
        super().__init__()
        self._period = 1.0 / rate
        self._start: float | None = None
        self._count = 0

    async def _tick(self) -> int:
        if self._start is None:
            self._start = time.monotonic()
        else:
            self._count += 1
            delay = self._start + self._count * self._period - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        return self._count


class MovingPicture(_Paced):
    """A bright block moving over a textured background, ``fps`` frames a second."""

    kind = "video"

    def __init__(
        self, width: int = 320, height: int = 180, fps: int = 30, distinct: int = 30
    ) -> None:
        super().__init__(fps)
        self._fps = fps
        self._frames: list[tuple[bytes, bytes, bytes]] = []
        background = bytes((x * 7 + y * 3) % 200 for y in range(height) for x in range(width))
        chroma = bytes([128]) * ((width // 2) * (height // 2))
        block = min(width, height) // 4
        for i in range(distinct):
            luma = bytearray(background)
            x0 = (i * (width - block)) // max(1, distinct - 1)
            y0 = (height - block) // 2
            for y in range(y0, y0 + block):
                luma[y * width + x0 : y * width + x0 + block] = b"\xeb" * block
            self._frames.append((bytes(luma), chroma, chroma))
        self.width, self.height = width, height

    async def recv(self) -> VideoFrame:
        n = await self._tick()
        frame = VideoFrame(width=self.width, height=self.height, format="yuv420p")
        for plane, data in zip(frame.planes, self._frames[n % len(self._frames)], strict=True):
            if plane.line_size == plane.width:
                plane.update(data)
            else:  # padded rows
                rows = [data[r * plane.width : (r + 1) * plane.width] for r in range(plane.height)]
                pad = bytes(plane.line_size - plane.width)
                plane.update(b"".join(row + pad for row in rows))
        frame.pts = n * (VIDEO_CLOCK // self._fps)
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        return frame


class Tone(_Paced):
    """A sine tone (``amplitude`` 0 for silence), 20 ms frames of 48 kHz mono.

    With ``dtx``, silence is sent as one frame per 400 ms, as an Opus encoder with
    discontinuous transmission does.
    """

    kind = "audio"
    DTX_EVERY = 20

    def __init__(
        self, frequency: float = 440.0, amplitude: float = 0.3, *, dtx: bool = False
    ) -> None:
        super().__init__(1 / AUDIO_PTIME)
        self.amplitude = amplitude
        self.dtx = dtx
        samples = int(AUDIO_RATE * AUDIO_PTIME)
        # One second holds a whole number of cycles of an integer frequency: loop over it.
        second = [
            int(32767 * math.sin(2 * math.pi * frequency * i / AUDIO_RATE))
            for i in range(AUDIO_RATE)
        ]
        self._loud = [
            struct.pack(f"<{samples}h", *second[k * samples : (k + 1) * samples])
            for k in range(AUDIO_RATE // samples)
        ]
        self._scaled = self._scale(amplitude)
        self._silence = bytes(2 * samples)
        self._samples = samples

    def _scale(self, amplitude: float) -> list[bytes]:
        if amplitude >= 1.0:
            return self._loud
        out = []
        for chunk in self._loud:
            values = struct.unpack(f"<{len(chunk) // 2}h", chunk)
            out.append(struct.pack(f"<{len(values)}h", *(int(v * amplitude) for v in values)))
        return out

    def set_amplitude(self, amplitude: float) -> None:
        self.amplitude = amplitude
        self._scaled = self._scale(amplitude)

    async def recv(self) -> AudioFrame:
        n = await self._tick()
        while self.dtx and self.amplitude <= 0 and n % self.DTX_EVERY:
            n = await self._tick()
        frame = AudioFrame(format="s16", layout="mono", samples=self._samples)
        data = self._silence if self.amplitude <= 0 else self._scaled[n % len(self._scaled)]
        frame.planes[0].update(data)
        frame.pts = n * self._samples
        frame.sample_rate = AUDIO_RATE
        frame.time_base = fractions.Fraction(1, AUDIO_RATE)
        return frame
