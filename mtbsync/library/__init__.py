"""Catalog-level operations over the pipeline: ingest into the catalog, trails, runs, re-alignment."""
