"""The operator's TOML configuration: schema, loading with located errors."""
