"""The ingest write path: store, migrations, consumer, import, CLI."""
