"""``semiostream publish``: stream a live camera, a recording or a synthetic bed to a scorer."""

from __future__ import annotations

import argparse
import sys
import threading

from semiostream.core.errors import UserError

from .watch import add_client_security_args, client_security

ORDER = 51

LIVE_HELP = """\
live sources:
  rtsp://HOST[:PORT]/PATH   IP camera (RTSP over TCP; --transport udp); rtsps:// over TLS
  udp://0.0.0.0:PORT, rtp://...   a camera that sends to this machine
  srt://HOST:PORT, tcp://HOST:PORT, http(s)://..., rtmp://...   other streams FFmpeg reads
  genicam://[DEVICE_ID]     GenICam camera in Mono16 through Aravis (genicam://Fake_1: simulated)
  k4a://[INDEX]             Azure Kinect (IR, or --stream depth)
  orbbec://[INDEX]          Orbbec Femto (IR, or --stream depth)

A live source runs until Ctrl-C (or --seconds / --max-frames): it reconnects with backoff when the
camera drops or stalls, and the frames lost meanwhile show up at the scorer as a gap in the bed's
sequence numbers. Camera logins never go on the command line: put `user:password` (SRT: the
passphrase) in a file only you can read (--credentials-file) or in an environment variable
(--credentials-env). Addresses are logged with their login redacted.

exit status: 0 when the frames went to a scorer; 2 when no scorer accepted this publisher within
--connect-timeout (without --wait), or the source cannot be opened.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "publish",
        help="send a live camera, a recording or a synthetic bed to a scorer",
        description=(
            "Publishes 16-bit frames of one bed to a scorer's frame endpoint: from a live camera or stream "
            "(SOURCE is an address, see below), from a recording at its frame rate (or --fast: any format "
            "semiostream reads), or a SYNTHETIC bed (--synthetic; not patient data) for demos and tests. "
            "Never blocks on a slow scorer: frames that cannot be queued are dropped and show up as sequence "
            "gaps at the scorer. Says within --connect-timeout seconds when no scorer listens at the endpoint "
            "or the scorer refuses this camera's key."
        ),
        epilog=LIVE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("source", nargs="?", help="live source address or recording (omit with --synthetic)")
    p.add_argument("--bed", required=True, help="bed id, e.g. bed-07 (letters, digits, _ . -)")
    p.add_argument("--endpoint", default="tcp://127.0.0.1:5555", help="scorer frame endpoint (tcp://HOST:PORT)")
    p.add_argument("--stream", default="ir", choices=["ir", "depth"],
                   help="Azure Kinect / Orbbec image (default ir)")
    p.add_argument("--fps", type=float, default=None,
                   help="frame rate (default: the recording's or stream's, or 30)")
    p.add_argument("--fast", action="store_true", help="recordings: send as fast as possible, not in real time")
    p.add_argument("--loop", action="store_true", help="recordings: start again at the end (default: send once)")
    p.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    p.add_argument("--seconds", type=float, default=None, help="live sources: stop after this many seconds")
    p.add_argument("--roi", type=int, nargs=4, metavar=("X0", "Y0", "X1", "Y1"),
                   help="static crop sent with every frame (default: the scorer decides)")
    p.add_argument("--synthetic", choices=["FLE", "TLE"], help="publish a synthetic bed with this movement class")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic bed")
    g = p.add_argument_group("live sources")
    g.add_argument("--credentials-env", metavar="NAME",
                   help="environment variable holding the camera login `user:password`")
    g.add_argument("--credentials-file", metavar="FILE",
                   help="file (mode 600) holding the camera login `user:password` on its first line")
    g.add_argument("--transport", choices=["tcp", "udp"], default="tcp", help="RTSP transport (default tcp)")
    g.add_argument("--listen", action="store_true",
                   help="wait for a camera that pushes to the address (RTSP, TCP, SRT, RTMP, HTTP)")
    g.add_argument("--read-timeout", type=float, default=5.0,
                   help="seconds without a frame before the camera counts as stalled and is reconnected")
    c = p.add_argument_group("scorer connection")
    c.add_argument("--connect-timeout", type=float, default=5.0,
                   help="seconds to wait for the scorer to accept this camera (default 5)")
    c.add_argument("--wait", action="store_true",
                   help="keep publishing when no scorer accepts it yet (a publisher started before its scorer)")
    add_client_security_args(p)
    p.set_defaults(handler=_publish)


def _publish(args: argparse.Namespace) -> int:
    import zmq

    from semiostream.bus.publisher import Publisher, source_frames, synthetic_frames
    from semiostream.bus.security import SecurityError
    from semiostream.sources.cameras import live_scheme, open_live
    from semiostream.sources.live_urls import CredentialError, load_credentials, redact
    from semiostream.sources.readers import SourceError, open_source

    if (args.source is None) == (args.synthetic is None):
        raise UserError("give either a SOURCE (live address or recording) or --synthetic FLE|TLE")
    live = args.source is not None and live_scheme(args.source) is not None
    if args.source is not None and not live and "://" in args.source:
        raise UserError(f"{redact(args.source)} is not a live source semiostream knows; see `semiostream publish "
                        "--help` for the addresses it reads")
    if not live and (args.credentials_env or args.credentials_file or args.listen or args.seconds is not None):
        raise UserError("--credentials-*, --listen and --seconds are for live sources (rtsp://, genicam:// ...)")
    source = frames = None
    fps = args.fps
    context = zmq.Context()  # terminated at the end: waits (bounded) for the last frames to leave
    try:
        if live:
            creds = load_credentials(args.credentials_env, args.credentials_file)
            source = open_live(args.source, stream=args.stream, fps=args.fps, credentials=creds,
                               transport=args.transport, listen=args.listen, read_timeout_s=args.read_timeout)
            fps = fps or 30.0  # sizes the send queue only; the source reports its own rate
            what = source.source_id
        elif args.synthetic:
            fps = fps or 30.0
            frames = synthetic_frames(args.synthetic, args.seed, fps=fps, loop=args.loop)
            what = f"a synthetic {args.synthetic} bed"
        else:
            with open_source(args.source, stream=args.stream) as src:
                fps = fps or src.fps or 30.0
            frames = source_frames(args.source, args.stream, loop=args.loop)
            what = args.source
        pub = Publisher(args.endpoint, args.bed, client_security(args), fps=fps,
                        roi=tuple(args.roi) if args.roi else None, context=context)
    except (SourceError, SecurityError, CredentialError, ValueError) as e:
        context.term()
        raise UserError(redact(str(e))) from None
    stop = threading.Event()
    try:
        problem = pub.wait_for_scorer(args.connect_timeout)
        if problem is not None and not args.wait:
            raise UserError(f"{problem}; nothing was sent (--wait publishes anyway and keeps trying)")
        if problem is not None:
            print(f"warning: {problem}; publishing anyway (--wait)", file=sys.stderr)
        rate = "the camera's rate" if live else ("max" if args.fast else f"{fps:g} fps")
        print(f"publishing bed {args.bed} from {what} to {args.endpoint} at {rate} (Ctrl-C to stop)", flush=True)
        try:
            if live:
                stats = pub.run_live(source, stop=stop, max_frames=args.max_frames, seconds=args.seconds)
            else:
                stats = pub.run(frames, realtime=not args.fast, stop=stop, max_frames=args.max_frames)
        except KeyboardInterrupt:
            stop.set()
            stats = pub.stats
        except SourceError as e:
            raise UserError(redact(str(e))) from None
        problem = pub.problem()
    finally:
        if source is not None:
            source.close()
        pub.close()
        context.term()
    print(f"sent {stats.sent} frames; {stats.undelivered} while no scorer was connected (discarded), "
          f"{stats.dropped} could not be queued")
    if source is not None:
        st = source.stats
        outages = f", longest {max(st.outages):.1f} s" if st.outages else ""
        print(f"{source.source_id}: {st.frames} frames, {st.connections} connection(s), {len(st.outages)} "
              f"reconnection(s){outages}, about {st.lost} frames lost")
    if stats.sent == 0 and problem is not None:
        print(f"semiostream publish: error: {problem}", file=sys.stderr)
        return 2
    return 0
