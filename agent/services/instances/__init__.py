"""Instance plane use cases. service.py is the facade (InstanceService); it composes
small objects that each receive what they call by constructor (service.py lists them)."""
