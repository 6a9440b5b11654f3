"""The doctor inside other people's training loops (issue 23): `nnrecipe.integrations.lightning.Doctor`, a
Lightning Callback, and `nnrecipe.integrations.transformers.Doctor`, a Hugging Face TrainerCallback. Their
shared logic is in `core`. Nothing here is imported by `import nnrecipe`; each host's package is imported
only by its own module (docs/integrations.md)."""
