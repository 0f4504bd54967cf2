"""Frame sampling: F frames at ``linspace(0, N-1, F)`` (truncated), RGB uint8, native resolution.

Decoder: PyAV (FFmpeg bindings). It gives what the stage needs and OpenCV's ``VideoCapture``
does not: per-packet demuxing without decoding (a cheap frame count), the stream's metadata
(declared frame count, time base, keyframe flags), seeking by timestamp to the keyframe at or
before a target, and presentation timestamps on every decoded frame, so a frame is identified
by its timestamp rather than by trusting a seek to land on it (frame-accurate).

Counting N (headers lie: a clip may claim 444 frames and decode 68). Two paths:

* ``seek`` (default, cheap): demux every packet of the stream *without decoding*; N is the
  number of non-empty packets, their sorted presentation timestamps name frames 0..N-1. The
  wanted frames are then decoded by seeking to the keyframe before each target and decoding
  forward (no seek when the target lies in the GOP already being decoded). The path is accepted
  only if every wanted frame, the last frame N-1 included, decodes at exactly its timestamp;
  otherwise (truncated tail, corrupt packet, missing or duplicate timestamps, packets that are not
  one frame each, N < F) it falls back to:
* ``decode`` (exact): decode the whole stream once and count the frames that come out (a packet
  that fails to decode is skipped, decoding goes on), then decode again and keep the wanted ones.

Known limit of ``seek``: a corrupt packet *between* wanted frames is not noticed, so N may
count it. Pass ``count="decode"`` to always count by decoding.

Bad input (missing, empty, not a video, no video stream, truncated beyond use, fewer than F
decodable frames) raises :class:`VideoError` naming the file and the reason. Rotation metadata and
non-square sample aspect ratios are ignored: frames are returned as stored.

Container facts (resolution, fps, declared frame count, duration, file size, bit rate, codec, pixel
format) are read while the container is open anyway and recorded in the shard manifest after its
first five columns (:data:`CONTAINER_COLUMNS`); the blind baseline (`vidsme.blind`) uses them, so
nothing downstream opens a video a second time.

About 400 lines, one idea: opening, counting and sampling one video, with every way that can fail
named (most of the module is the error paths and the two counting strategies).
"""

from __future__ import annotations

import csv
import os
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import av
import numpy as np

from vidsme.atomic import atomic_path, write_text

__all__ = [
    "VideoError",
    "SampledVideo",
    "ManifestRow",
    "sample_indices",
    "sample_frames",
    "extract_shard",
    "load_frames",
    "read_manifest",
    "MANIFEST_COLUMNS",
    "CONTAINER_COLUMNS",
]

MANIFEST_COLUMNS = ("video_id", "n_decoded", "indices", "status", "reason")
# Container facts, after MANIFEST_COLUMNS in the manifest (empty for a skipped video or a fact the
# container does not declare).
CONTAINER_COLUMNS = ("width", "height", "fps", "declared_frames", "duration_s", "file_bytes", "bit_rate", "codec", "pix_fmt")


class VideoError(ValueError):
    """A video that cannot be sampled; ``str()`` is one line naming the file and the reason."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = str(path)
        self.reason = " ".join(str(reason).split())  # one line, no tabs
        super().__init__(f"{self.path}: {self.reason}")


@dataclass(frozen=True)
class SampledVideo:
    """F sampled frames of one video and what is known about it."""

    frames: np.ndarray  # uint8 (F, H, W, 3) RGB
    indices: np.ndarray  # int64 (F,), into the N decodable frames
    n_decoded: int  # N: frames that really decode
    declared_frames: int | None  # the container's claim (None when it declares nothing)
    fps: float | None
    height: int
    width: int
    method: Literal["seek", "decode"]  # how N was established
    duration_s: float | None = None  # the stream's (else the container's) declared duration
    file_bytes: int | None = None
    bit_rate: int | None = None  # the container's declared bit rate (bits/s)
    codec: str = ""
    pix_fmt: str = ""

    def container_facts(self) -> tuple[object, ...]:
        """The values of :data:`CONTAINER_COLUMNS`, in order."""
        return (self.width, self.height, self.fps, self.declared_frames, self.duration_s, self.file_bytes, self.bit_rate,
                self.codec, self.pix_fmt)


def sample_indices(n: int, num_frames: int) -> np.ndarray:
    """``linspace(0, n-1, num_frames)`` truncated to int64 (first and last frame included)."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if n < num_frames:
        raise ValueError(f"need at least {num_frames} frames, got {n}")
    return np.linspace(0, n - 1, num_frames).astype(np.int64)


class _Fallback(Exception):
    """The cheap path could not prove its count; use the exact one."""


def _open(path: Path) -> av.container.InputContainer:
    if not path.exists():
        raise VideoError(path, "file not found")
    if not path.is_file():
        raise VideoError(path, "not a regular file")
    if path.stat().st_size == 0:
        raise VideoError(path, "empty file (0 bytes)")
    try:
        container = av.open(str(path), mode="r")
    except av.error.FFmpegError as e:
        raise VideoError(path, f"not a readable video container ({type(e).__name__}: {e.strerror})") from e
    if not container.streams.video:
        container.close()
        raise VideoError(path, "no video stream")
    return container


def _rgb(frame: av.VideoFrame) -> np.ndarray:
    return frame.to_ndarray(format="rgb24")


def _stack(path: Path, frames: list[np.ndarray]) -> np.ndarray:
    sizes = sorted({f.shape for f in frames})
    if len(sizes) > 1:
        raise VideoError(path, f"frame size changes within the stream ({sizes[0][:2]} and {sizes[-1][:2]})")
    return np.stack(frames)


def _decode_all(container: av.container.InputContainer) -> Iterator[av.VideoFrame]:
    """Every frame that decodes, in presentation order; a packet that fails is skipped."""
    stream = container.streams.video[0]
    try:
        packets = container.demux(stream)
        for packet in packets:  # the last packet (size 0) flushes the decoder
            try:
                yield from packet.decode()
            except av.error.FFmpegError:
                continue
    except av.error.FFmpegError:  # unreadable tail: flush what the decoder holds
        try:
            yield from stream.codec_context.decode(None)
        except av.error.FFmpegError:
            return


def _by_decoding(path: Path, num_frames: int) -> tuple[int, np.ndarray, np.ndarray]:
    with _open(path) as container:
        n = sum(1 for _ in _decode_all(container))
    if n < num_frames:
        raise VideoError(path, f"only {n} decodable frame(s), need {num_frames}")
    indices = sample_indices(n, num_frames)
    wanted = set(indices.tolist())
    frames = []
    with _open(path) as container:
        for i, frame in enumerate(_decode_all(container)):
            if i in wanted:
                frames.append(_rgb(frame))
                if len(frames) == num_frames:
                    break
    if len(frames) != num_frames:  # decoding is deterministic; this is a broken decoder
        raise VideoError(path, f"second decode pass gave {len(frames)} of {num_frames} frames")
    return n, indices, _stack(path, frames)


def _by_seeking(path: Path, container: av.container.InputContainer, num_frames: int) -> tuple[int, np.ndarray, np.ndarray]:
    stream = container.streams.video[0]
    pts: list[int] = []
    keys: list[int] = []
    try:
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            if packet.pts is None:
                raise _Fallback
            pts.append(packet.pts)
            if packet.is_keyframe:
                keys.append(packet.pts)
    except av.error.FFmpegError as e:
        raise _Fallback from e
    n = len(pts)
    spts = np.sort(np.asarray(pts, dtype=np.int64))
    if n < num_frames or (n > 1 and np.any(np.diff(spts) == 0)) or not keys:
        raise _Fallback
    indices = sample_indices(n, num_frames)
    targets = spts[indices]
    skeys = np.sort(np.asarray(keys, dtype=np.int64))
    frames: list[np.ndarray] = []
    decoder: Iterator[av.VideoFrame] | None = None
    last = None  # pts of the last decoded frame
    try:
        for t in targets.tolist():
            # seek unless t is ahead in the GOP being decoded (no keyframe in (last, t])
            key_before = skeys[np.searchsorted(skeys, t, side="right") - 1] if skeys[0] <= t else None
            if decoder is None or last is None or t <= last or (key_before is not None and key_before > last):
                container.seek(int(t), stream=stream, backward=True, any_frame=False)
                decoder = container.decode(stream)
            for frame in decoder:
                if frame.pts is None:
                    raise _Fallback
                last = frame.pts
                if frame.pts == t:
                    frames.append(_rgb(frame))
                    break
                if frame.pts > t:
                    raise _Fallback  # target missing from the decoded stream
            else:
                raise _Fallback  # stream ended before the target
    except av.error.FFmpegError as e:
        raise _Fallback from e
    return n, indices, _stack(path, frames)


def sample_frames(
    path: str | os.PathLike[str], num_frames: int, *, count: Literal["auto", "decode"] = "auto"
) -> SampledVideo:
    """Sample ``num_frames`` RGB frames at ``linspace(0, N-1, F)`` (N = decodable frames).

    ``count="auto"`` tries the demux-count + seek path and falls back to decoding everything;
    ``count="decode"`` always counts by decoding. Raises :class:`VideoError` on bad input.
    """
    if not isinstance(num_frames, (int, np.integer)) or isinstance(num_frames, bool) or num_frames < 1:
        raise ValueError(f"num_frames must be a positive int, got {num_frames!r}")
    if count not in ("auto", "decode"):
        raise ValueError(f"count must be 'auto' or 'decode', got {count!r}")
    num_frames = int(num_frames)
    p = Path(path)
    try:
        return _sample(p, num_frames, count)
    except VideoError:
        raise
    except (av.error.FFmpegError, OSError, ValueError, RuntimeError, MemoryError) as e:
        raise VideoError(p, f"decoding failed ({type(e).__name__}: {e})") from e


def _declared(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> dict[str, object]:
    """What the container says about itself (no decoding): duration, bit rate, codec, pixel format."""
    if stream.duration is not None and stream.time_base:
        duration: float | None = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / av.time_base
    else:
        duration = None
    ctx = stream.codec_context
    return {"duration_s": duration, "bit_rate": int(container.bit_rate) if container.bit_rate else None,
            "codec": ctx.name or "", "pix_fmt": ctx.pix_fmt or ""}


def _sample(p: Path, num_frames: int, count: str) -> SampledVideo:
    with _open(p) as container:
        stream = container.streams.video[0]
        declared = int(stream.frames) or None
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else None
        facts = _declared(container, stream)
        method: Literal["seek", "decode"] = "seek"
        try:
            if count == "decode":
                raise _Fallback
            n, indices, frames = _by_seeking(p, container, num_frames)
        except _Fallback:
            method = "decode"
    if method == "decode":
        n, indices, frames = _by_decoding(p, num_frames)
    return SampledVideo(
        frames=np.ascontiguousarray(frames, dtype=np.uint8),
        indices=indices,
        n_decoded=n,
        declared_frames=declared,
        fps=fps,
        height=int(frames.shape[1]),
        width=int(frames.shape[2]),
        method=method,
        file_bytes=p.stat().st_size,
        **facts,  # type: ignore[arg-type]
    )


# --------------------------------------------------------------------------- shards


@dataclass(frozen=True)
class ManifestRow:
    video_id: str
    n_decoded: int | None
    indices: tuple[int, ...]
    status: Literal["ok", "skipped"]
    reason: str
    container: dict[str, str] | None = None  # columns after MANIFEST_COLUMNS, as written (None: none)


class _NpzWriter:
    """Write arrays one at a time into an ``.npz`` (the layout ``np.load`` reads).

    Only one video's frames are in memory at a time; ``compress`` uses zlib level 1 (about as
    small as level 6 on video frames, faster). Use it on a path from ``vidsme.atomic.atomic_path``.
    """

    def __init__(self, path: Path, compress: bool) -> None:
        self._file = os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), "wb")
        method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        self._zip = zipfile.ZipFile(self._file, "w", compression=method, compresslevel=1 if compress else None, allowZip64=True)

    def add(self, key: str, array: np.ndarray) -> None:
        with self._zip.open(f"{key}.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array(f, np.asanyarray(array), allow_pickle=False)

    def __enter__(self) -> "_NpzWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self._zip.close()
        self._file.close()


def _tsv(rows: Sequence[Sequence[object]], columns: Sequence[str]) -> str:
    lines = ["\t".join(columns)]
    for row in rows:
        cells = ["" if v is None else " ".join(str(v).split()) for v in row]
        lines.append("\t".join(cells))
    return "\n".join(lines) + "\n"


def extract_shard(
    rows: Sequence[tuple[str, str | os.PathLike[str]]],
    num_frames: int,
    out_npz: str | os.PathLike[str],
    out_manifest: str | os.PathLike[str],
    on_error: Literal["skip", "fail"] = "skip",
    *,
    compress: bool = True,
) -> list[ManifestRow]:
    """Sample every ``(video_id, path)`` of a shard; write frames (npz) and a manifest (TSV).

    npz keys are video ids (uint8 ``(F, H, W, 3)`` arrays, no pickle). Manifest columns:
    ``video_id, n_decoded, indices, status, reason`` (``indices`` comma-separated), then the
    container facts :data:`CONTAINER_COLUMNS` (empty for a skipped video). With
    ``on_error="skip"`` a bad video is listed as ``skipped`` with its reason and left out of the
    npz; with ``"fail"`` its :class:`VideoError` is raised and nothing is written. Both files are
    written atomically.
    """
    if on_error not in ("skip", "fail"):
        raise ValueError(f"on_error must be 'skip' or 'fail', got {on_error!r}")
    seen: set[str] = set()
    for vid, _ in rows:
        if not vid or vid in seen:
            raise ValueError(f"empty or duplicate video_id {vid!r} in shard")
        seen.add(vid)
    manifest: list[ManifestRow] = []
    facts: list[tuple[object, ...]] = []
    with atomic_path(out_npz) as tmp, _NpzWriter(tmp, compress) as npz:
        for vid, path in rows:
            try:
                s = sample_frames(path, num_frames)
            except VideoError as e:
                if on_error == "fail":
                    raise
                manifest.append(ManifestRow(vid, None, (), "skipped", e.reason))
                facts.append((None,) * len(CONTAINER_COLUMNS))
                continue
            npz.add(vid, s.frames)
            manifest.append(ManifestRow(vid, s.n_decoded, tuple(s.indices.tolist()), "ok", ""))
            facts.append(s.container_facts())
    table = [(m.video_id, m.n_decoded, ",".join(map(str, m.indices)), m.status, m.reason, *f) for m, f in zip(manifest, facts)]
    write_text(out_manifest, _tsv(table, MANIFEST_COLUMNS + CONTAINER_COLUMNS))
    return manifest


def load_frames(npz_path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """All frame arrays of a shard npz, keyed by video id (``allow_pickle=False``)."""
    with np.load(npz_path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def read_manifest(path: str | os.PathLike[str]) -> list[ManifestRow]:
    """Parse a manifest TSV written by :func:`extract_shard`.

    Its first columns must be :data:`MANIFEST_COLUMNS`; the columns after them (the container facts,
    :data:`CONTAINER_COLUMNS`) go to ``container`` as text (``None`` for a manifest without them)."""
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        names = tuple(reader.fieldnames or ())
        if names[: len(MANIFEST_COLUMNS)] != MANIFEST_COLUMNS:
            raise ValueError(f"{path}: manifest columns {reader.fieldnames}, expected {list(MANIFEST_COLUMNS)} first")
        extra = names[len(MANIFEST_COLUMNS):]
        out = []
        for line, r in enumerate(reader, start=2):
            status = r["status"]
            if status not in ("ok", "skipped"):
                raise ValueError(f"{path}:{line}: bad status {status!r}")
            n = int(r["n_decoded"]) if r["n_decoded"] else None
            idx = tuple(int(i) for i in r["indices"].split(",")) if r["indices"] else ()
            facts = {c: r[c] or "" for c in extra} if extra else None
            out.append(ManifestRow(r["video_id"], n, idx, status, r["reason"] or "", facts))  # type: ignore[arg-type]
    return out
