"""What ``edgenode filter`` and ``edgenode function`` share: project manifests, template
trees, and a real node started on this machine for an author's module."""
