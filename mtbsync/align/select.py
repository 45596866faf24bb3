"""The feature cascade's decisions: when ORB's alignment asks for learned features, and which to keep.

``--features auto`` aligns with ORB first. ORB loses most matches when the mount, the lens or the
light changes, at night and on low-resolution footage, and then verifies only a stretch of the
runs: such an alignment is tried again with learned features (XFeat), and the better-supported of
the two is kept.
"""

from __future__ import annotations

import logging

from mtbsync.align.warp import Warp
from mtbsync.config import SyncConfig

log = logging.getLogger("mtbsync")

# An ORB alignment verified on less of its path than this, or covering less of the runs (or not
# aligned at all) is tried again with learned features.
LEARNED_BELOW_INLIER_FRAC = 0.75
LEARNED_BELOW_COVERAGE = 0.75


def wants_learned_features(warp: Warp, config: SyncConfig) -> bool:
    """Whether the cascade should align again with learned features (``--features auto`` only).

    Args:
        warp: The ORB alignment's warp.
        config: Parameters (``config.features.kind``).

    Returns:
        True when ORB verified too little of the path or covered too little of the runs, and
        learned features are installed (a warning says so when they are not).
    """
    from mtbsync.features.xfeat import available

    if config.features.kind != "auto" or warp.meta.get("features", "orb") != "orb":
        return False
    coverage = max(
        float(warp.metrics.get("coverage_new") or 0.0), float(warp.metrics.get("coverage_ref") or 0.0)
    )
    weak = (
        not warp.ok
        or float(warp.metrics.get("inlier_frac") or 0.0) < LEARNED_BELOW_INLIER_FRAC
        or coverage < LEARNED_BELOW_COVERAGE
    )
    if weak and not available():
        log.warning("ORB verified too little and learned features are not installed (onnxruntime)")
        return False
    return weak


def better_alignment(candidate: Warp, current: Warp) -> bool:
    """Whether ``candidate`` is the better-supported alignment.

    Args:
        candidate: One warp.
        current: The other.

    Returns:
        True for an aligned candidate over one that is not; between two alike, the larger verified
        share of the path times its coverage.
    """
    if candidate.ok != current.ok:
        return candidate.ok

    def support(warp: Warp) -> float:
        frac = float(warp.metrics.get("inlier_frac") or 0.0)
        coverage = max(float(warp.metrics.get("coverage_new") or 0.0), 0.0)
        return frac * coverage

    return support(candidate) > support(current)


def choose_features(orb: Warp, learned: Warp) -> Warp:
    """Keep the better-supported of the ORB and the learned-feature (XFeat) alignments' warps.

    Args:
        orb: The ORB alignment's warp.
        learned: The learned-feature alignment's warp.

    Returns:
        ``orb`` or ``learned`` itself (`better_alignment`; ORB on a tie), its ``metrics["features"]``
        saying which features were used, which tried, why, and whether the other aligned too; the
        choice is logged.
    """
    chosen, other = (learned, orb) if better_alignment(learned, orb) else (orb, learned)
    why = f"ORB verified {verified_text(orb)}, learned features (XFeat) {verified_text(learned)}"
    chosen.metrics["features"] = {
        "used": chosen.meta.get("features"),
        "tried": ["orb", "xfeat"],
        "why": why,
        "other_ok": bool(other.ok),
    }
    log.info("features: %s; using %s", why, chosen.meta.get("features"))
    return chosen


def verified_text(warp: Warp) -> str:
    """How much of its path a warp verified, for the cascade's note.

    Args:
        warp: A warp.

    Returns:
        E.g. ``"62% of its path (aligned)"``.
    """
    frac = float(warp.metrics.get("inlier_frac") or 0.0)
    state = "aligned" if warp.ok else "not aligned"
    return f"{frac:.0%} of its path ({state})"


def model_name(warp: Warp) -> str:
    """What the warp rests on.

    Args:
        warp: A warp.

    Returns:
        ``vision-orb``, ``vision-xfeat``, ``vision-sequence`` or ``gps``.
    """
    if warp.metrics.get("model") == "gps":
        return "gps"
    if warp.metrics.get("model") == "sequence":
        return "vision-sequence"
    return f"vision-{warp.meta.get('features', 'orb')}"
