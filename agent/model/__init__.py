"""Value types and constants shared by every layer (api, services, drivers): plain
data, no I/O, no imports from the layers above or below."""
