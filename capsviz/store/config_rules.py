"""The training settings' rules as run.json's checks (capsviz.store.run_json) read them: derived from the one
declaration of every setting, capsviz.training.settings."""
from ..training.settings import CONFIG_RULES, LEGACY_SETTINGS, config_problems, with_legacy_settings  # noqa: F401
