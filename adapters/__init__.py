"""Everything platform-specific: one module or package per chat platform."""
