# Loads edgenode's pytest plugin: the `filter` fixture (configured by filter.toml).
pytest_plugins = ["edgenode.filterdev.pytest_plugin"]
