"""``python -m mtbsync.samples OUT_DIR``: generate a sample pair with known truth.

Examples::

    python -m mtbsync.samples sample_out --duration 30
    python -m mtbsync.samples big --duration 300 --size 1920x1080 --fps 30
    python -m mtbsync.samples other --different-trail
    python -m mtbsync.samples warped --warp /path/to/clip.mp4
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from mtbsync.errors import MtbsyncError
from mtbsync.io.writer import exact_fps
from mtbsync.samples.conditions import PRESETS, preset
from mtbsync.samples.synth import make_different_trail_pair, make_sample_pair
from mtbsync.samples.warp import make_warped_pair


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r} is not WIDTHxHEIGHT (e.g. 1920x1080)") from None
    return width, height


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m mtbsync.samples", description=__doc__.splitlines()[0])
    p.add_argument("out_dir", type=Path, help="folder for the videos and truth files")
    p.add_argument("--duration", type=float, default=30.0, help="reference duration, s (default 30)")
    p.add_argument("--seed", type=int, default=0, help="seed of the runs (default 0)")
    p.add_argument("--world-seed", type=int, default=None, help="the trail (default: the seed)")
    p.add_argument("--different-trail", action="store_true", help="new run on another trail")
    p.add_argument("--size", type=_size, default=None, help="both videos' size, e.g. 1920x1080")
    p.add_argument("--ref-size", type=_size, default=(640, 360), help="reference size (default 640x360)")
    p.add_argument("--new-size", type=_size, default=(480, 270), help="new-run size (default 480x270)")
    p.add_argument("--fps", type=str, default=None, help="both videos' frame rate, e.g. 30 or 29.97")
    p.add_argument("--ref-fps", type=str, default="30", help="reference frame rate (default 30)")
    p.add_argument("--new-fps", type=str, default="25", help="new-run frame rate (default 25)")
    p.add_argument("--no-stop", action="store_true", help="the new run does not stop")
    p.add_argument("--no-late-start", action="store_true", help="the new run starts where the reference does")
    p.add_argument("--no-early-end", action="store_true", help="the new run ends where the reference does")
    p.add_argument("--gate-wait", type=float, default=2.0, help="standing still at the start, s (default 2)")
    p.add_argument("--crf", type=int, default=23, help="x264 quality (default 23)")
    p.add_argument("--gop", type=int, default=None, help="keyframe interval, frames (default: 0.5 s)")
    p.add_argument("--preset", default=None, help="x264 preset (default: by size)")
    p.add_argument("--fov", type=float, default=110.0, help="horizontal field of view, degrees")
    p.add_argument("--motion-blur", action="store_true", help="blur along the motion (slower)")
    p.add_argument(
        "--conditions",
        default=None,
        metavar="NAME",
        help=f"how the new run differs (camera, light, season, timing): one of {', '.join(PRESETS)}",
    )
    p.add_argument("--force", action="store_true", help="render even if OUT_DIR holds the same pair")
    p.add_argument("--warp", type=Path, default=None, metavar="CLIP", help="warp a real clip instead")
    return p


def _progress(done: int, total: int) -> None:
    if done == total or done % 25 == 0:
        sys.stderr.write(f"\r{done}/{total} frames ({100 * done / max(total, 1):.0f} %)")
        if done == total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv``, make the pair, print where it is; return the exit code."""
    args = _parser().parse_args(argv)
    started = time.perf_counter()
    try:
        if args.warp is not None:
            pair = make_warped_pair(args.warp, args.out_dir, seed=args.seed, progress=_progress)
        else:
            maker = make_different_trail_pair if args.different_trail else make_sample_pair
            pair = maker(
                args.out_dir,
                duration_s=args.duration,
                seed=args.seed,
                world_seed=args.world_seed,
                ref_size=args.size or args.ref_size,
                new_size=args.size or args.new_size,
                ref_fps=exact_fps(args.fps or args.ref_fps),
                new_fps=exact_fps(args.fps or args.new_fps),
                with_stop=not args.no_stop,
                late_start=not args.no_late_start,
                early_end=not args.no_early_end,
                start_gate_wait_s=args.gate_wait,
                crf=args.crf,
                gop=args.gop,
                preset=args.preset,
                hfov_deg=args.fov,
                motion_blur=args.motion_blur,
                conditions=None if args.conditions is None else preset(args.conditions),
                reuse=not args.force,
                progress=_progress,
            )
    except MtbsyncError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return exc.exit_code if exc.exit_code else 1
    elapsed = time.perf_counter() - started
    sys.stdout.write(
        f"reference {pair.reference} ({pair.ref_fps:.3f} fps)\n"
        f"new       {pair.new} ({pair.new_fps:.3f} fps)\n"
        f"truth     {pair.truth_csv}, {pair.truth_markers_csv}\n"
        f"markers   {pair.reference_markers_csv}\n"
        f"took {elapsed:.1f} s\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
