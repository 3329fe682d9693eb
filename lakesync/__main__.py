"""`python -m lakesync` is the `lakesync` command."""

from lakesync.cli import main

main()
