"""The ``sector`` command: every Sector tool as a subcommand."""
