"""Persistent daemon state in SQLite (``<data root>/skiff.db``): see ``skiff.store.db``."""
