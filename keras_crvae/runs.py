"""Alias of `keras_crvae.jobs.runs` (the run-folder rules moved into the jobs package)."""

from keras_crvae.jobs.runs import (  # noqa: F401
    ARTIFACT_PREFIXES, ARTIFACTS, BACKUP_DIR, LOCK_FILE, PREVIOUS_DIR, RUN_FILE, OutputLock,
    RunConflictError, RunLockedError, RunPlan, backup_epoch, clear_run, default_output_dir,
    discard_previous, epochs_text, finished_run_metrics, fit_keeping_only_resumable_state,
    has_previous, kept_or_restored, output_lock, plan_run, read_run, release_locks,
    removed_unless_resumable, restore_previous, run_settings, set_aside, setting_differences,
    total_epochs, write_run)
