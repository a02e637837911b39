"""Command-line tools (train, eval, export) in the PaddleDetection `tools/` style."""
