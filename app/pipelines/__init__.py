"""The pipeline language: YAML loading with positions, spec models, validation, CEL expressions."""
