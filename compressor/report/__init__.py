"""Rendering of results: plain tables, the versioned JSON envelope, Markdown. No terminal code here."""
