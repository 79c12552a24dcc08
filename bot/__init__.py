"""Platform-neutral behaviour: models, handler, store, server wiring, config, CLI."""
