"""``semiostream publish``: stream a recording (or a synthetic bed) to a scorer as a camera would."""

from __future__ import annotations

import argparse
import threading

from ..errors import UserError
from .watch import add_client_security_args, client_security

ORDER = 51


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "publish",
        help="send a recording or a synthetic bed to a scorer, like a live IR camera",
        description=(
            "Publishes 16-bit frames of one bed to a scorer's frame endpoint at the recording's frame "
            "rate (or --fast). Any format semiostream reads works: Azure Kinect .mkv, FFV1 .mkv, .npy, "
            "folders of 16-bit PNG/TIFF, 8-bit video. With --synthetic it sends a SYNTHETIC bed (not "
            "patient data) for demos and tests. Never blocks on a slow scorer: frames that cannot be "
            "queued are dropped and show up as sequence gaps at the scorer."
        ),
    )
    p.add_argument("source", nargs="?", help="recording to publish (omit with --synthetic)")
    p.add_argument("--bed", required=True, help="bed id, e.g. bed-07 (letters, digits, _ . -)")
    p.add_argument("--endpoint", default="tcp://127.0.0.1:5555", help="scorer frame endpoint")
    p.add_argument("--stream", default="ir", choices=["ir", "depth"], help="Azure Kinect track (default ir)")
    p.add_argument("--fps", type=float, default=None, help="frame rate (default: the recording's, or 30)")
    p.add_argument("--fast", action="store_true", help="send as fast as possible instead of in real time")
    p.add_argument("--loop", action="store_true", help="start again at the end (default: send once)")
    p.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    p.add_argument("--roi", type=int, nargs=4, metavar=("X0", "Y0", "X1", "Y1"),
                   help="static crop sent with every frame (default: the scorer decides)")
    p.add_argument("--synthetic", choices=["FLE", "TLE"], help="publish a synthetic bed with this movement class")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic bed")
    add_client_security_args(p)
    p.set_defaults(handler=_publish)


def _publish(args: argparse.Namespace) -> int:
    from semiostream.bus.publisher import Publisher, source_frames, synthetic_frames
    from semiostream.bus.security import SecurityError
    from semiostream.dali_pipes.readers import SourceError, open_source

    if (args.source is None) == (args.synthetic is None):
        raise UserError("give either a SOURCE recording or --synthetic FLE|TLE")
    fps = args.fps
    try:
        if args.synthetic:
            fps = fps or 30.0
            frames = synthetic_frames(args.synthetic, args.seed, fps=fps, loop=args.loop)
        else:
            with open_source(args.source, stream=args.stream) as src:
                fps = fps or src.fps or 30.0
            frames = source_frames(args.source, args.stream, loop=args.loop)
        pub = Publisher(args.endpoint, args.bed, client_security(args), fps=fps,
                        roi=tuple(args.roi) if args.roi else None)
    except (SourceError, SecurityError, ValueError) as e:
        raise UserError(str(e)) from e
    stop = threading.Event()
    print(f"publishing bed {args.bed} to {args.endpoint} at {'max' if args.fast else f'{fps:g}'} fps "
          "(Ctrl-C to stop)")
    try:
        stats = pub.run(frames, realtime=not args.fast, stop=stop, max_frames=args.max_frames)
    except KeyboardInterrupt:
        stop.set()
        stats = pub.stats
    except SourceError as e:
        raise UserError(str(e)) from e
    finally:
        pub.close()
    print(f"sent {stats.sent} frames, {stats.dropped} could not be queued")
    return 0
