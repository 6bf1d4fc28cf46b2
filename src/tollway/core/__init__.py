"""tollway's core: canonical types, dialects, transport, routing, cost. Imports no framework."""
