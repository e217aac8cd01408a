"""``python -m worker`` is ``ticklake``."""

from worker.cli import main

main()
