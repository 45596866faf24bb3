"""`mtbsync serve`: the watch-folder, the worker pool and the uvicorn server in one process."""
