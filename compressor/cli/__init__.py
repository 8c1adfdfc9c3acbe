"""The click application. One module per command; rich is used only in this package."""
