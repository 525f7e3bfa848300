"""Importers that turn other tools' logs into trainledger run folders.

Each importer loads its third-party reader lazily, inside the import function, so the
package imports with only trainledger's own dependencies installed.
"""
