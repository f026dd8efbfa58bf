"""The read side: pure query functions over a SQLAlchemy ``Connection`` (no HTTP here),
one module per resource; ``api/routes/`` turns their answers into responses."""
