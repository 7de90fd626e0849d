"""The daemons built on netcore: one sub-package each."""
