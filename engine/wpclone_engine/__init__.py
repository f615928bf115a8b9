"""The copy engine: a WordPress site read and written through its migrator plugin, streamed, rewritten
and imported. Plain Python with no Kubernetes in it, so the operator, the tests and a CLI use it alike."""
