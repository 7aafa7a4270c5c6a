"""Cross-cutting building blocks that know no product domain."""
