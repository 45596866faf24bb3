"""Ingest: SD-card dumps (DCIM, chapters, LRV/THM), GoPro GPMF telemetry, GPX/FIT tracks, the watch-folder."""
