"""Upload state (offsets, lengths, metadata, expiry) in any SQLAlchemy async database; SQLite by default."""
