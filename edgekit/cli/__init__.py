"""The ``edgekit`` command line: thin shells over public functions."""
