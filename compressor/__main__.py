"""``python -m compressor``."""

from compressor.cli.main import run_main

run_main()
