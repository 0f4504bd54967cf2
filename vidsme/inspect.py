"""``vidsme-inspect``: sample one video as the workflow would and print what it sees, as JSON.

    python -m vidsme.inspect VIDEO --frames 16 [--resize N]

prints ``{path, n_decoded, declared_frames, indices, k1, k3, height, width, fps}`` (plus
``method``: how N was counted). A bad file exits with code 2 and one line on stderr naming the
file and the reason.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from vidsme.frames import VideoError, sample_frames
from vidsme.logs import origin
from vidsme.stats import illumination_k3, motion_k1


def _positive(text: str) -> int:
    v = int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


def main(argv: Sequence[str] | None = None, prog: str = "vidsme-inspect") -> int:
    """Sample one video as the workflow would; print its frame count, indices, k1 and k3 (JSON).

    Returns the exit code (0 ok, 2 bad video or bad arguments)."""
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--version", action="version", version=origin())
    ap.add_argument("video", help="video file")
    ap.add_argument("--frames", type=_positive, default=16, help="frames to sample (default 16)")
    ap.add_argument("--resize", type=_positive, default=None, help="max side for the optical flow (default native)")
    args = ap.parse_args(argv)
    try:
        s = sample_frames(args.video, args.frames)
        k1 = motion_k1(s.frames, args.resize)
    except (VideoError, ValueError) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    out = {
        "path": args.video,
        "n_decoded": s.n_decoded,
        "declared_frames": s.declared_frames,
        "indices": s.indices.tolist(),
        "k1": k1,
        "k3": illumination_k3(s.frames),
        "height": s.height,
        "width": s.width,
        "fps": s.fps,
        "method": s.method,
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
