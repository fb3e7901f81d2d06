"""The image store: references, content, metadata, manifests and platforms.

- ``reference``  Docker's reference grammar and normalization
- ``content``    content-addressed blobs under ``<data root>/content/``
- ``metadata``   images, tags, layers, leases over ``skiff.db``
- ``manifest``   OCI / Docker schema 2 manifests, indexes, image configs, chain IDs
- ``platform``   ``os/arch/variant`` and choosing a manifest from an index
- ``rootfs``     container root filesystems: overlays of the image's snapshots

Import the submodules directly; this package imports nothing so ``import skiff.image``
stays cheap on the CLI path.
"""
