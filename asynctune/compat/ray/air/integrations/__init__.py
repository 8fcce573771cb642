"""Ray AIR's experiment-tracking integrations: not mirrored."""
