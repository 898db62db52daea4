"""Analysis tools that need a model (attention maps, embedding norms)."""
