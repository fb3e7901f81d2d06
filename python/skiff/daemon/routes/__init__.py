"""One module per Engine API resource; each has ``routes(daemon)`` returning its
``(method, pattern, handler)`` triples."""
