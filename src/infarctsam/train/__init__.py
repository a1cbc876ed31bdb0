"""Two-stage prompt-free fine-tuning (``infarctsam train``): configuration, data, caches, stages, export."""
