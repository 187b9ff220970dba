"""The run store: the run directory, the one contract between the trainer (writes) and the dashboard,
the scripts and the tests (read). Import from here.

    <run>/run.json         config, environment, status, epochs done, final and best test error
    <run>/history.csv      one row per finished epoch (HISTORY_COLUMNS)
    <run>/model.pt         latest weights: {"format", "model", "model_config", "dtype", "state_dict"}; float16
                           on disk by default, restored to float32 on load. Shipped runs are compact
                           ("compact" set, compact_weights): int8 with per-channel scales, dequantised on load
    <run>/state.pt         resume state (fp32 weights, optimizer, schedule, RNG, history); not shipped
    <run>/routing.csv      CapsNet runs: Figure A.1's routing statistics per epoch and iteration
                           (ROUTING_COLUMNS); derived from state.pt's history rows like history.csv
    <run>/evaluation.json  optional: tests beyond the training set's (trainer.robustness)
    <run>/dimensions.npz   optional: the capsule dimensions' measured meanings, keyed by the weights' digest

Every file is replaced atomically. state.pt is written first at the end of an epoch and is the
commit point: history.csv, routing.csv, model.pt and run.json are derived from it, and --resume
rewrites them from it.

run.json is strict JSON (no NaN or Infinity: a non-finite number is written as null) and is checked
field by field on load (run_info_problem, CONFIG_RULES), so that a damaged or hand-edited file is one
RunError naming the file and the field, never a crash further on. While training, the trainer rewrites
it at least every HEARTBEAT_SECONDS with its pid, host and the time (heartbeat_at): a run marked
running whose trainer is gone reads back with the status "stale" (effective_status).

Every file is read through one reader (capsviz.store.files): confined to the runs root, and no code
runs from a run's files (JSON, CSV, torch.load(weights_only=True), np.load(allow_pickle=False)).

The modules, from the bottom up: format (names, columns, RunError), checks (value tests),
paths (roots, listing, confinement), files (the reader and the shared writers), config_rules (the
training settings' rules), liveness (is the trainer there), run_json, histories (history.csv,
routing.csv), weights (model.pt, state.pt, int8 compaction), evaluation, dimensions, run (Run, load_run).
"""
from .checks import show_value
from .config_rules import CONFIG_RULES, LEGACY_SETTINGS, config_problems, with_legacy_settings
from .dimensions import read_dimensions, write_dimensions
from .evaluation import evaluation_problem, read_evaluation, write_evaluation
from .files import finite_or_null, read_bytes, read_csv, read_json, write_csv, write_json
from .format import (
    DIMENSIONS,
    EVALUATION,
    FORMAT_VERSION,
    HISTORY_COLUMNS,
    HISTORY_CSV,
    IMPORTED,
    ROUTING_COLUMNS,
    ROUTING_CSV,
    RUN_JSON,
    SIZE_LIMITS,
    STALE,
    STATE,
    STATUSES,
    TEMPORARY_PATTERNS,
    WEIGHTS,
    RunError,
)
from .histories import PROBE_FILES, read_history, read_routing, write_history, write_probe_rows, write_routing
from .liveness import (
    HEARTBEAT_SECONDS,
    STALE_AFTER_SECONDS,
    effective_status,
    heartbeat_age,
    process_alive,
    trainer_gone,
    trainer_identity,
)
from .paths import (
    PROJECT_ROOT,
    RUNS_ROOT_ENV,
    check_inside_root,
    default_runs_root,
    is_inside,
    list_runs,
    remove_temporary_files,
    run_name,
    runs_roots_from_environment,
)
from .run import Run, load_capsule_run, load_run
from .run_json import INFO_RULES, read_run_json, run_info_problem, summarize, upgrade_config, write_run_json
from .weights import (
    COMPACT_MIN_ELEMENTS,
    DIGIT_WEIGHT,
    committed_epochs,
    compact_tensor,
    compact_weights,
    expanded_state_dict,
    load_weights,
    quantise_int8,
    read_state,
    write_state,
    write_weights,
)

__all__ = [
    # the run directory's names and format
    "DIMENSIONS", "EVALUATION", "FORMAT_VERSION", "HISTORY_COLUMNS", "HISTORY_CSV", "IMPORTED", "ROUTING_COLUMNS",
    "ROUTING_CSV", "RUN_JSON", "SIZE_LIMITS", "STALE", "STATE", "STATUSES", "TEMPORARY_PATTERNS", "WEIGHTS", "RunError",
    # where runs are
    "PROJECT_ROOT", "RUNS_ROOT_ENV", "check_inside_root", "default_runs_root", "is_inside", "list_runs",
    "remove_temporary_files", "run_name", "runs_roots_from_environment",
    # reading a run
    "Run", "load_run", "load_capsule_run", "read_run_json", "read_history", "read_routing", "read_evaluation", "read_dimensions",
    "load_weights", "read_state", "committed_epochs", "expanded_state_dict",
    # writing a run (the trainer)
    "write_run_json", "write_history", "write_routing", "write_probe_rows", "PROBE_FILES", "write_evaluation",
    "write_dimensions", "write_weights", "write_state", "compact_weights", "compact_tensor", "quantise_int8",
    "COMPACT_MIN_ELEMENTS", "DIGIT_WEIGHT", "summarize",
    # the checks
    "CONFIG_RULES", "LEGACY_SETTINGS", "INFO_RULES", "config_problems", "with_legacy_settings", "run_info_problem",
    "upgrade_config", "show_value", "evaluation_problem",
    # is the trainer there
    "HEARTBEAT_SECONDS", "STALE_AFTER_SECONDS", "trainer_identity", "process_alive", "heartbeat_age", "trainer_gone",
    "effective_status",
    # the one reader and the shared writers
    "read_bytes", "read_json", "read_csv", "finite_or_null", "write_json", "write_csv",
]
