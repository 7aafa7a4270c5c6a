"""Protocol relays between a browser WebSocket and a backend, one module per relay kind.

Each module registers its entry point in :data:`RELAYS` at import (``relays/registry.py``).
"""
