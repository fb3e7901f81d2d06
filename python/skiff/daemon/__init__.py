"""skiffd: the Docker Engine API server.

``http`` is the HTTP/1.1 layer (keep-alive, chunked bodies and streams, connection
hijacking for attach and exec); ``app`` is the route table and version handling;
``routes/`` holds one module per API resource; ``main`` parses dockerd's flags and
runs it all.
"""
