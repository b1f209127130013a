"""Subcommands of the `replica` CLI; each module is imported only when its command runs."""
