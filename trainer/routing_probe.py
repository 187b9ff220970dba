"""The routing probe moved to capsviz.model.routing_probe: the model registry names it as CapsNet's after-epoch probe
(capsviz.model.registry), and capsviz never imports trainer. Kept so that `trainer.routing_probe` still imports."""
from capsviz.model.routing_probe import PROBE_BATCH, PROBE_DIGITS, ROUTING_KEY, routing_probe, routing_rows  # noqa: F401
