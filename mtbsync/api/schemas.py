"""The API's request and response bodies (pydantic), shared by every data source.

Times are float seconds from the start of each video, as everywhere in mtbsync.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

# The life of a run as the dashboard shows it.
RunState = Literal["queued", "ingesting", "aligning", "ready", "needs review", "not aligned", "failed"]


class MediaOut(BaseModel):
    """A video the browser can fetch (by id, never by path)."""

    id: str
    url: str
    duration: float
    fps: float
    width: int
    height: int
    codec: str


class RunOut(BaseModel):
    """One run: a recording aligned (or being aligned) to its trail's reference run."""

    id: str
    name: str
    trail: str | None = None
    reference_id: str | None = Field(None, description="The reference run's id (None for a reference run).")
    state: RunState
    reason: str = Field("", description="Why a run failed or is not aligned.")
    is_reference: bool = False
    duration: float | None = None
    markers: int = 0
    needs_review: int = 0
    coverage: float | None = None
    media: MediaOut | None = None
    reference_media: MediaOut | None = None
    updated_at: float | None = None


class CurveOut(BaseModel):
    """The warp sampled densely: for the time-delta curve and for keeping two players in step."""

    t_new: list[float]
    t_ref: list[float]
    delta: list[float] = Field(description="t_new - t_ref: seconds the new rider is behind (+) or ahead (-).")
    confidence: list[float]


class HistogramOut(BaseModel):
    """Confidence of the warp knots in bins from 0 to 1."""

    edges: list[float]
    counts: list[int]


class AnchorOut(BaseModel):
    """A pair of moments a user pinned the warp to."""

    t_new: float
    t_ref: float


class AlignmentOut(BaseModel):
    """The warp of a run and its quality."""

    run_id: str
    ok: bool
    reason: str
    new_range: tuple[float, float] | None
    ref_range: tuple[float, float] | None
    coverage: float | None = Field(None, description="Covered fraction of the new run.")
    metrics: dict[str, Any]
    gates: dict[str, Any]
    residuals_ms: dict[str, float] = Field(default_factory=dict)
    histogram: HistogramOut
    forward: CurveOut = Field(description="to_ref sampled evenly over the new run's covered part.")
    inverse: CurveOut = Field(description="to_new sampled evenly over the reference's covered part.")
    low_confidence: list[tuple[float, float]] = Field(
        default_factory=list,
        description="New-run stretches (start, end) whose confidence is under the review threshold.",
    )
    anchors: list[AnchorOut] = Field(default_factory=list)
    review_threshold: float


class MarkerOut(BaseModel):
    """A marker of the new run (transferred from the reference, or moved by hand)."""

    id: int
    name: str
    t_ref: float
    t_new: float | None
    confidence: float
    needs_review: bool
    reviewed: bool = False
    moved: bool = Field(False, description="Placed by hand; re-transfers keep it where it is.")
    colour: str = ""
    comment: str = ""


class ReferenceMarkerOut(BaseModel):
    """A marker of the reference run."""

    name: str
    t_ref: float
    colour: str = ""


class SplitOut(BaseModel):
    """Time between two consecutive placed markers, in the new run and in the reference."""

    start: str
    end: str
    new_s: float
    ref_s: float
    delta_s: float = Field(description="new - reference: negative is faster than the reference.")


class MarkersOut(BaseModel):
    """A run's markers, the reference's markers and the split times between them."""

    run_id: str
    markers: list[MarkerOut]
    reference_markers: list[ReferenceMarkerOut]
    splits: list[SplitOut]


class MarkerPatch(BaseModel):
    """A change to one marker: move it, and/or mark it reviewed."""

    model_config = {"extra": "forbid"}

    t_new: float | None = Field(None, ge=0, le=1e6, description="New time in the new run (s).")
    reviewed: bool | None = None


class MarkerIn(BaseModel):
    """A marker to add to a trail's reference run at ``t`` seconds of it."""

    model_config = {"extra": "forbid"}

    name: str = Field(min_length=1, max_length=200)
    t: float = Field(ge=0, le=1e6, description="Seconds from the start of the reference run.")


class AnchorIn(BaseModel):
    """Pin the warp: the new run's moment ``t_new`` is the reference's ``t_ref``."""

    model_config = {"extra": "forbid"}

    t_new: float = Field(ge=0, le=1e6)
    t_ref: float = Field(ge=0, le=1e6)


class SqlIn(BaseModel):
    """A read-only SQL query on the catalog."""

    model_config = {"extra": "forbid"}

    sql: str = Field(min_length=1, max_length=10_000)
    max_rows: int = Field(1000, ge=1, le=10_000)
    timeout_s: float | None = Field(
        None, gt=0, le=3600, description="Seconds the query may run (at most the server's budget)."
    )


class SqlOut(BaseModel):
    """A query's columns and rows (at most ``max_rows``; ``truncated``: there were more)."""

    columns: list[str]
    rows: list[list[Any]]
    truncated: bool = False


class HealthOut(BaseModel):
    """Whether the service is up, and how it runs."""

    status: Literal["ok"]
    mode: Literal["preview", "library"]
    version: str
    runs: int


class ErrorOut(BaseModel):
    """Every error answer (4xx and 500): a short code and one line a user can act on."""

    error: str = Field(description="What kind of error: a library error's name or an HTTP one's.")
    detail: str = Field(description="One line saying what went wrong and what to do.")


class SessionIn(BaseModel):
    """The write token, traded for the dashboard's session cookie (or send it as Bearer instead)."""

    model_config = {"extra": "forbid"}

    token: str = Field(min_length=1, max_length=200)


class SessionOut(BaseModel):
    """Whether this client may write (it sent the token or carries the session cookie)."""

    write: bool
