"""Native model classes for agent frameworks; each imports its framework only when used."""
