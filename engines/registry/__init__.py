"""The model registry: which bytes of which model are live, where they came from, who changed that.

State lives in one SQLite database (registry/registry.db, all SQL in db.py); artifacts are
copied under registry/artifacts/ and addressed by their sha256. See docs/formats.md.
"""
