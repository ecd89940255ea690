"""edgekit tests, a package: shared helpers import by name (``tests.export.export_helpers``), never via sys.path."""
