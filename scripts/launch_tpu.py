"""Launch `etam train` on a Cloud TPU VM slice: create or reuse, install, run on every host.

    python scripts/launch_tpu.py --name etam-v5p --zone us-east5-a --accelerator-type v5p-32 \\
        --config experiments/configs/NAME.py --workdir gs://BUCKET/runs/NAME [--dry-run]
    python scripts/launch_tpu.py --name etam-v5p --zone us-east5-a --delete

Steps: ``describe`` the slice (reused if it exists with the same accelerator
type, created otherwise); copy the repository (``git archive HEAD``, or
``git clone --repo-url``) to every worker and install it with ``jax[tpu]`` in
``~/etam-venv`` (Python 3.11 through uv: TPU VM images ship 3.10); start the
same ``etam train`` command on all hosts at once (``--worker=0-N``), which
streams each worker's output to ``LOGS_DIR/NAME/<worker>.log`` (gcloud's
``--output-directory``). On TPU, ``jax.distributed.initialize()`` finds the
coordinator itself, so no address is passed; ``--coordinator_address`` /
``--num_processes`` / ``--process_id`` exist for GPU and CPU clusters.
``--detach`` starts training under nohup instead; ``--collect-logs`` copies
the workers' ``~/etam-train.log`` back later. ``--dry-run`` prints every
command and runs none. Commands are built by pure functions (tested in
``tests/scripts/test_launch_tpu.py``).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runs from a bare checkout: these two modules need no JAX

from etam_jax.errors import EtamError
from etam_jax.training.tpu_slices import RUNTIME_VERSIONS, TpuSlice, tpu_slice

REMOTE_REPO = "~/etam-jax"
REMOTE_VENV = "~/etam-venv"
REMOTE_LOG = "~/etam-train.log"
TARBALL = "etam-jax.tar.gz"
GCLOUD_TPU_VM = ("gcloud", "compute", "tpus", "tpu-vm")
GCSFUSE_ROOT = "/mnt/gcs"  # --gcsfuse BUCKET is mounted at /mnt/gcs/BUCKET on every worker


@dataclasses.dataclass(frozen=True)
class LaunchOptions:
    """What to launch where (the command-line flags)."""

    name: str
    zone: str
    accelerator_type: str = ""
    config: str = ""
    workdir: str = ""
    project: str | None = None
    runtime_version: str | None = None
    spot: bool = False
    repo_url: str | None = None
    ref: str = "main"
    jax_version: str = ""
    logs_dir: str = "logs"
    mesh_preset: str | None = None
    detach: bool = False
    gcsfuse: tuple[str, ...] = ()
    train_args: tuple[str, ...] = ()


def gcloud(opts: LaunchOptions, verb: str, *args: str, paths: tuple[str, ...] = ()) -> list[str]:
    """``gcloud compute tpus tpu-vm VERB NAME --zone=ZONE [--project=P] ARGS``.

    ``scp`` names the slice inside its ``paths`` (``NAME:FILE``) instead of alone.
    """
    project = [f"--project={opts.project}"] if opts.project else []
    where = list(paths) or [opts.name]
    return [*GCLOUD_TPU_VM, verb, *where, f"--zone={opts.zone}", *project, *args]


def describe_command(opts: LaunchOptions) -> list[str]:
    """Prints ``TYPE<tab>STATE`` of an existing slice; fails if there is none."""
    return gcloud(opts, "describe", "--format=value(acceleratorType,state)")


def create_command(opts: LaunchOptions) -> list[str]:
    """Create the slice (all its TPU VM workers)."""
    version = opts.runtime_version or RUNTIME_VERSIONS[tpu_slice(opts.accelerator_type).generation]
    spot = ["--spot"] if opts.spot else []
    return gcloud(
        opts, "create", f"--accelerator-type={opts.accelerator_type}", f"--version={version}", *spot
    )


def delete_command(opts: LaunchOptions) -> list[str]:
    """Delete the slice without a prompt."""
    return gcloud(opts, "delete", "--quiet")


def ssh_command(opts: LaunchOptions, workers: str, remote: str, *extra: str) -> list[str]:
    """Run the shell command ``remote`` on ``workers`` (``all``, ``0``, ``0-3``) concurrently."""
    return gcloud(opts, "ssh", f"--worker={workers}", f"--command={remote}", *extra)


def fetch_code_commands(opts: LaunchOptions) -> tuple[list[list[str]], str]:
    """Local commands shipping the code, and the remote shell that unpacks it into REMOTE_REPO."""
    if opts.repo_url:
        clone = f"git clone {shlex.quote(opts.repo_url)} {REMOTE_REPO}"
        checkout = f"git -C {REMOTE_REPO} checkout {shlex.quote(opts.ref)}"
        return [], f"rm -rf {REMOTE_REPO} && {clone} && {checkout}"
    local = f"/tmp/{opts.name}-{TARBALL}"
    archive = ["git", "-C", str(ROOT), "archive", "--format=tar.gz", "--prefix=etam-jax/"]
    archive += ["-o", local, "HEAD"]
    upload = gcloud(opts, "scp", "--worker=all", paths=(local, f"{opts.name}:{TARBALL}"))
    return [archive, upload], f"rm -rf {REMOTE_REPO} && tar -xzf ~/{TARBALL} -C ~"


def install_script(jax_version: str) -> str:
    """Remote shell: uv, a Python 3.11 venv, the repository in editable mode and jax[tpu].

    gcsfs: without TensorFlow, ``etils.epath`` (Orbax) reaches ``gs://`` through fsspec.
    """
    uv = "~/.local/bin/uv"
    return " && ".join(
        [
            f"(test -x {uv} || curl -LsSf https://astral.sh/uv/install.sh | sh)",
            f"{uv} venv --allow-existing --python 3.11 {REMOTE_VENV}",
            f"{uv} pip install --python {REMOTE_VENV}/bin/python -e {REMOTE_REPO} "
            + shlex.quote(f"jax[tpu]=={jax_version}")
            + " gcsfs",
        ]
    )


def gcsfuse_script(buckets: tuple[str, ...]) -> str:
    """Remote shell: install gcsfuse (Google's apt repository) and mount each bucket.

    The data readers open local paths (ArrayRecord files through ``pathlib``),
    so data on GCS is read through a gcsfuse mount, as MaxText does for Grain.
    """
    keyring = "/usr/share/keyrings/cloud.google.asc"
    repo = f"deb [signed-by={keyring}] https://packages.cloud.google.com/apt"
    install = (
        f'(command -v gcsfuse || (echo "{repo} gcsfuse-$(lsb_release -c -s) main"'
        " | sudo tee /etc/apt/sources.list.d/gcsfuse.list"
        " && curl -fsSL https://packages.cloud.google.com/apt/doc/apt-key.gpg"
        f" | sudo tee {keyring} > /dev/null"
        " && sudo apt-get update -q && sudo apt-get install -y -q gcsfuse))"
    )
    mounts = [
        f"sudo mkdir -p {GCSFUSE_ROOT}/{b} && sudo chown $USER {GCSFUSE_ROOT}/{b}"
        f" && (mountpoint -q {GCSFUSE_ROOT}/{b} || gcsfuse --implicit-dirs {b} {GCSFUSE_ROOT}/{b})"
        for b in buckets
    ]
    return " && ".join([install, *mounts])


def train_script(opts: LaunchOptions, tpu: TpuSlice) -> str:
    """Remote shell running `etam train` (identical on every host; JAX finds its peers)."""
    argv = [f"{REMOTE_VENV}/bin/etam", "train", "--config", opts.config, "--workdir", opts.workdir]
    argv += [f"--config.mesh.preset={opts.mesh_preset or tpu.mesh_preset}", *opts.train_args]
    train = " ".join(a if a.startswith(f"{REMOTE_VENV}/") else shlex.quote(a) for a in argv)
    if opts.detach:
        return f"cd {REMOTE_REPO} && nohup {train} > {REMOTE_LOG} 2>&1 < /dev/null &"
    return f"set -o pipefail; cd {REMOTE_REPO} && {train} 2>&1 | tee {REMOTE_LOG}"


def logs_dir(opts: LaunchOptions) -> str:
    """Local folder of the per-worker logs ``<worker>.log``."""
    return f"{opts.logs_dir}/{opts.name}"


def launch_commands(opts: LaunchOptions, existing_type: str | None) -> list[list[str]]:
    """Every command after ``describe``, in order.

    Args:
      opts: the launch.
      existing_type: the accelerator type ``describe`` printed, None if the slice is absent.

    Raises:
      EtamError: a multi-host slice without a ``gs://`` workdir, or an existing
        slice of another accelerator type.
    """
    tpu = tpu_slice(opts.accelerator_type)
    if tpu.hosts > 1 and not opts.workdir.startswith("gs://"):
        raise EtamError(
            f"--workdir must be shared by the {tpu.hosts} hosts of {tpu.accelerator_type} "
            f"(gs://BUCKET/...), found {opts.workdir!r}"
        )
    if existing_type not in (None, opts.accelerator_type):
        raise EtamError(
            f"TPU {opts.name!r} exists as {existing_type}, not --accelerator-type "
            f"{opts.accelerator_type}; --delete it or choose another --name"
        )
    create = [create_command(opts)] if existing_type is None else []
    local, unpack = fetch_code_commands(opts)
    setup = [unpack, install_script(opts.jax_version)]
    setup += [gcsfuse_script(opts.gcsfuse)] if opts.gcsfuse else []
    install = ssh_command(opts, "all", " && ".join(setup))
    output = [] if opts.detach else [f"--output-directory={logs_dir(opts)}"]
    mkdir = [] if opts.detach else [["mkdir", "-p", logs_dir(opts)]]
    train = ssh_command(opts, tpu.workers, train_script(opts, tpu), *output)
    return [*create, *local, install, *mkdir, train]


def collect_logs_commands(opts: LaunchOptions) -> list[list[str]]:
    """Copy each worker's ``~/etam-train.log`` to ``LOGS_DIR/NAME/<worker>.log``."""
    commands = [["mkdir", "-p", logs_dir(opts)]]
    for worker in range(tpu_slice(opts.accelerator_type).hosts):
        paths = (f"{opts.name}:{REMOTE_LOG.removeprefix('~/')}", f"{logs_dir(opts)}/{worker}.log")
        commands.append(gcloud(opts, "scp", f"--worker={worker}", paths=paths))
    return commands


def _local_jax_version() -> str:
    try:
        return importlib.metadata.version("jax")
    except importlib.metadata.PackageNotFoundError:
        return ""


def build_parser() -> argparse.ArgumentParser:
    """The launcher's flags (``LaunchOptions`` fields plus the actions)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--name", required=True, help="TPU VM (slice) name")
    p.add_argument("--zone", required=True)
    p.add_argument("--project", help="Google Cloud project (default: gcloud's)")
    p.add_argument("--accelerator-type", default="", help="v4-8, v5p-32, v5litepod-16, ...")
    p.add_argument("--runtime-version", help="TPU VM image (default per generation)")
    p.add_argument("--spot", action="store_true", help="create a Spot slice")
    p.add_argument("--config", default="", help="experiment config, relative to the repository")
    p.add_argument("--workdir", default="", help="gs://BUCKET/... (checkpoints, logs)")
    p.add_argument("--mesh-preset", help="override the preset matching the slice")
    p.add_argument(
        "--repo-url",
        help="git clone this on the workers (default: ship `git archive HEAD`: commit first)",
    )
    p.add_argument("--ref", default="main", help="branch/commit to check out with --repo-url")
    p.add_argument(
        "--jax-version", default=_local_jax_version(), help="jax[tpu] version (default: local jax)"
    )
    p.add_argument(
        "--logs-dir", default="logs", help="local folder; logs go to DIR/NAME/<worker>.log"
    )
    p.add_argument(
        "--gcsfuse",
        action="append",
        default=[],
        metavar="BUCKET",
        help=f"mount gs://BUCKET at {GCSFUSE_ROOT}/BUCKET on every worker (for data paths)",
    )
    p.add_argument(
        "--detach", action="store_true", help="run under nohup; fetch logs with --collect-logs"
    )
    p.add_argument(
        "--collect-logs", action="store_true", help="copy the workers' logs here and exit"
    )
    p.add_argument("--delete", action="store_true", help="delete the slice and exit")
    p.add_argument("--dry-run", action="store_true", help="print the commands, run none")
    return p


def parse_args(argv: list[str]) -> tuple[LaunchOptions, argparse.Namespace]:
    """The flags; everything after ``--`` goes to `etam train` unchanged."""
    argv, train_args = (
        (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    )
    args = build_parser().parse_args(argv)
    fields = {f.name for f in dataclasses.fields(LaunchOptions)}
    given = {
        k: tuple(v) if isinstance(v, list) else v for k, v in vars(args).items() if k in fields
    }
    return LaunchOptions(**given, train_args=tuple(train_args)), args


def run(command: list[str], dry_run: bool, **kwargs) -> subprocess.CompletedProcess | None:
    """Print ``$ command`` and run it (check=True unless given); only print on a dry run."""
    print("$", shlex.join(command), flush=True)
    if dry_run:
        return None
    check = kwargs.pop("check", True)
    return subprocess.run(command, check=check, **kwargs)


def existing_accelerator_type(opts: LaunchOptions, dry_run: bool) -> str | None:
    """``describe`` the slice: its accelerator type, or None when it does not exist."""
    result = run(describe_command(opts), dry_run, check=False, capture_output=True, text=True)
    if dry_run:
        print("# dry run: assuming the slice does not exist (it is reused when describe succeeds)")
        return None
    if result.returncode != 0:
        return None
    accelerator_type, state = (result.stdout.split() + ["", ""])[:2]
    if state != "READY":  # e.g. a preempted Spot slice: delete and create again
        raise EtamError(
            f"TPU {opts.name!r} exists but is {state or 'in no state'}, not READY; --delete it"
        )
    return accelerator_type


def main(argv: list[str] | None = None) -> int:
    opts, args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.delete:
            commands = [delete_command(opts)]
        elif args.collect_logs:
            commands = collect_logs_commands(opts)
        else:
            tpu_slice(opts.accelerator_type)  # a bad type fails before any gcloud call
            if not (opts.config and opts.workdir and opts.jax_version):
                raise EtamError("launching needs --config, --workdir and --jax-version")
            commands = launch_commands(opts, existing_accelerator_type(opts, args.dry_run))
    except EtamError as e:
        print(f"launch_tpu: error: {e}", file=sys.stderr)
        return 1
    for command in commands:
        try:
            run(command, args.dry_run)
        except subprocess.CalledProcessError as e:
            print(
                f"launch_tpu: error: exit {e.returncode} from: {shlex.join(command)}",
                file=sys.stderr,
            )
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
