"""How lakesync runs: embedded servers for development and tests, plus deployment assets."""
