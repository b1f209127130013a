"""Corrections and approvals of a replica's replies, kept private in its run folder and learned by `from_run=`."""
