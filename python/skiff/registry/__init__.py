"""The registry client: the OCI distribution protocol, as Docker speaks it.

- ``transport``  HTTP(S) on the standard library: endpoints, keep-alive connections per
  thread, redirects, retries with backoff
- ``auth``       ``WWW-Authenticate`` challenges (Bearer tokens, Basic), credentials from
  a docker ``config.json``
- ``client``     one repository on one registry: requests with auth and error mapping
- ``pull`` / ``push``  images between a registry and the image store
- ``progress``   Docker's JSON progress messages

Import the submodules directly; this package imports nothing.
"""
