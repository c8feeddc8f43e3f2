"""A small shop that shows pixel_middleware end to end: pages, login, consent, what was sent."""
