"""wpclone's command line: the REST API from a terminal or a script (see __main__)."""
