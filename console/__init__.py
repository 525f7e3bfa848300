"""The Textual console: app, panes, widgets, the workspace watcher and the CLI."""
