"""Generative models: GANs for query synthesis, VAEs for task-agnostic features."""
