"""Network plane use cases (service.py is the entry point; the other modules are its parts)."""
