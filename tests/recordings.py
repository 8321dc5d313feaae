"""Recordings in other containers than WAV (FLAC, Opus, AAC, MP3), encoded with PyAV, for the reader's tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def encode(path: Path, samples: np.ndarray, rate: int, codec: str) -> Path:
    """`samples` (frames, channels) in [-1, 1] written with `codec` (its container from the suffix)."""
    import av

    channels = samples.shape[1]
    layout = "mono" if channels == 1 else "stereo"
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.layout = layout
        fmt = stream.codec_context.format
        block = stream.codec_context.frame_size or 1024
        for start in range(0, len(samples), block):
            part = samples[start : start + block]
            if fmt.name.startswith("s16"):
                part = np.round(part * 32767).astype(np.int16)
            elif fmt.name.startswith("s32"):
                part = np.round(part * (2**31 - 256)).astype(np.int32)
            else:
                part = part.astype(np.float32)
            data = part.T if fmt.is_planar else part.reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format=fmt.name, layout=layout)
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path
