"""The FastAPI app: one router per resource, SSE events, the dashboard's static files.

``create_app(source, token=..., host=...)`` builds it over a `RunSource` (see `mtbsync.api.source`):
`PreviewSource` for one pair of files today, a catalog-backed source for ``mtbsync serve`` later.
"""

from mtbsync.api.app import create_app, dashboard_dir
from mtbsync.api.events import EventBroker
from mtbsync.api.preview import PreviewFiles, PreviewSource
from mtbsync.api.source import RunSource

__all__ = ["EventBroker", "PreviewFiles", "PreviewSource", "RunSource", "create_app", "dashboard_dir"]
