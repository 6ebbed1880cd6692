"""Cadenza's desktop app and command line."""
