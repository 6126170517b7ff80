//! PostgreSQL: migrations, idempotent writes of analyses, coder labels, retention.
