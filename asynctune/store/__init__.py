"""The experiment directory's store: what asynctune writes there and how it reads it back."""
