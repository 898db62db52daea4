"""Model-free analysis tools over lmms-eval outputs and traces (tune, compare, table, curves, check).

Nothing here imports torch, transformers or ``model_wrappers``: these tools read files and reuse
the tasks' own scoring code (``adaptvis_tasks.whatsup``, ``adaptvis_tasks.vsr``).
"""
