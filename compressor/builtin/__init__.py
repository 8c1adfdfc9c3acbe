"""The core's built-in plugins. They register through the same hooks as external plugins."""
