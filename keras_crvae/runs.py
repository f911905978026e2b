"""Alias of `keras_crvae.jobs.runs` (the run-folder rules moved into the jobs package)."""

from keras_crvae.jobs.runs import (  # noqa: F401
    ARTIFACT_PREFIXES, ARTIFACTS, BACKUP_DIR, RUN_FILE, RunConflictError, RunPlan, backup_epoch,
    clear_run, default_output_dir, epochs_text, finished_run_metrics,
    fit_keeping_only_resumable_state, plan_run, read_run, removed_unless_resumable, run_settings,
    setting_differences, total_epochs, write_run)
