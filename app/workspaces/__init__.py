"""The three workspaces: Continue, Interpolate, Morph."""
