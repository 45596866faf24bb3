"""The FastAPI app: one router per resource, SSE events, the dashboard's static files."""
