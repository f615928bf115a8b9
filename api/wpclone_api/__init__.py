"""wpclone REST facade: maps the v2 and legacy v1 endpoints onto custom resources."""
