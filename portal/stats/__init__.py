"""Public statistics gathered from the domains that provide them."""
