"""Integrations with training frameworks and experiment trackers, each behind its own extra.

Nothing here is imported until you import its module, so asynctune needs none of these libraries:

    asynctune.integrations.xgboost       TuneReportCheckpointCallback   pip install 'asynctune[xgboost]'
    asynctune.integrations.lightgbm      TuneReportCheckpointCallback   pip install 'asynctune[lightgbm]'
    asynctune.integrations.lightning     TuneReportCheckpointCallback   pip install 'asynctune[lightning]'
    asynctune.integrations.transformers  TuneReportCallback, get_checkpoint_path  pip install 'asynctune[transformers]'
    asynctune.integrations.keras         TuneReportCheckpointCallback   pip install 'asynctune[keras]'
    asynctune.integrations.mlflow        MLflowLoggerCallback, setup_mlflow  pip install 'asynctune[mlflow]'
    asynctune.integrations.wandb         WandbLoggerCallback, setup_wandb    pip install 'asynctune[wandb]'

docs/integrations.md has a short example for each.
"""
