"""Stand-in of the ``univention`` namespace (tests only); see ../README.md."""
