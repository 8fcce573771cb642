"""Ray AIR's experiment-tracking integrations (`ray.air.integrations.mlflow`, `.wandb`): thin
adapters over asynctune.integrations.mlflow and .wandb, importing their tracker only when used."""
