"""Sub-commands of the ``latbench`` CLI: one module per command group, each with ``register``."""
