"""What crosses a process: message schemas, settings, Redis names. Imports no service."""
