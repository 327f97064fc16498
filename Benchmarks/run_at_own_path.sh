# Sourced by replicate_rl.sh and sweep_rl_dev.sh. A resumed stage refuses changed input paths;
# checkpoints keep the paths inside their run relative to it since commit c38d7c3, so a copy of
# a newer run would resume as well, but one written before keeps absolute paths and resumes only
# where it was made. So a variant of a finished pipeline run in $run runs at $run's own path: `set_aside` moves the run to $run.kept and starts an empty $run,
# `put_back OUT` moves the variant to OUT and the original back. A trap puts the original back
# if the script stops early; after a SIGKILL, the next call refuses to start and names $run.kept.
kept="$run.kept"
[[ ! -e "$kept" ]] || { echo "error: $kept exists: an earlier run of this script was interrupted; move it back to $run first" >&2; exit 1; }
restore() { if [[ -d "$kept" ]]; then rm -rf "$run"; mv "$kept" "$run"; fi; }
trap restore EXIT
set_aside() { mv "$run" "$kept"; mkdir -p "$run"; }
put_back() { mv "$run" "$1"; mv "$kept" "$run"; }
