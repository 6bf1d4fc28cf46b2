"""``tollway demo``: the main job on a fresh machine, no API keys needed.

``setup`` chooses the provider and writes the demo's tollway.yaml; ``story`` runs the
agents; ``show`` prints the progress and the tables.
"""
