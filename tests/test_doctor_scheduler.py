"""`tether doctor` knows each scheduler: its commands on the login host, its options, the pod.

Slurm runs against the REAL Slurm of the testbed (munged, slurmctld, slurmd on compute01, see
tests/testbed/slurm.py): `sbatch --test-only` validates the workspace's options and no job is ever
made. No PBS server or Kubernetes API server can run here: PBS goes through STAND-IN
qsub/qstat/qdel and Kubernetes through a STAND-IN kubectl (tests/fixtures/standins/standin.py),
which replay captured-format output (tests/fixtures/pbs, tests/fixtures/kube; each file's header
names its source); the shell script, its quoting and the parsing are the real ones.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from standins import FIXTURES, KUBE_TOOLS, PBS_TOOLS, LocalLoginShell, StandIns, install_standins
from testbed.slurm import SlurmCluster
from workspaces import load_test_workspace, write_workspace

from tui.checks import Check
from tui.cli import main
from tui.config.scheduler import KubeOptions, PbsOptions, SlurmOptions
from tui.doctor import run_doctor
from tui.doctor_scheduler import (
    Probe,
    ProbeReport,
    kube_checks,
    parse_probe,
    parse_qstat_queues,
    pbs_checks,
    probe_script,
    queue_check,
    refusal_keys,
    sbatch_test_argv,
    sbatch_verdict,
)
from tui.session import Session
from tui.state import SessionRecord

SLURM = '[scheduler]\nkind = "slurm"\npartition = "debug"\ntime = "00:10:00"\nmem = "100M"\n'


def checks_named(checks: list[Check], name: str) -> list[Check]:
    return [check for check in checks if check.name == name]


def one(checks: list[Check], name: str) -> Check:
    found = checks_named(checks, name)
    assert len(found) == 1, [c.render() for c in checks]
    return found[0]


# --- Slurm, against the real Slurm ----------------------------------------------------------------


@pytest.mark.needs_netns
def test_a_good_slurm_workspace_passes_and_submits_nothing(
    slurm: SlurmCluster, tether_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    config = write_workspace(tmp_path / "ws", slurm.testbed, node="", extra=SLURM)

    code = main(["-c", str(config), "doctor"])

    out = capsys.readouterr().out
    assert code == 0, out
    assert "[ok  ] slurm commands: sbatch, squeue, scancel, srun on the login host" in out
    options = next(line for line in out.splitlines() if "] slurm options:" in line)
    assert options.startswith("[ok  ] slurm options: sbatch --test-only accepts the holder job (it would start at 20")
    assert options.endswith("on compute01 in partition debug); nothing was submitted"), options
    assert "[ok  ] node: no slurm job is held now: the node is checked once `tether up` holds one" in out
    assert "all checks passed" in out
    assert slurm.jobs() == []  # a doctor never takes a node


@pytest.mark.needs_netns
@pytest.mark.parametrize(
    ("option", "said", "fix"),
    [
        (
            'partition = "nosuch"',
            "sbatch: error: invalid partition specified: nosuch; allocation failure: Invalid partition name specified",
            'change partition (now "nosuch") under [scheduler] in tether.toml: `sinfo -s`',
        ),
        (  # the testbed's node has no GPU
            "gpus = 1",
            "sbatch: error: Invalid generic resource (gres) specification",
            'change gpus (now "1") under [scheduler] in tether.toml: `sinfo -o',
        ),
    ],
)
def test_options_slurm_refuses_fail_with_the_key_to_change(
    slurm: SlurmCluster,
    tether_home: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    option: str,
    said: str,
    fix: str,
):
    extra = '[scheduler]\nkind = "slurm"\ntime = "00:10:00"\n' + option + "\n"
    config = write_workspace(tmp_path / "ws", slurm.testbed, node="", extra=extra)

    code = main(["-c", str(config), "doctor"])

    out = capsys.readouterr().out
    assert code == 1, out
    lines = out.splitlines()
    at = next(i for i, line in enumerate(lines) if "] slurm options:" in line)
    assert lines[at] == f"[FAIL] slurm options: sbatch --test-only refused the holder job: {said}"
    assert lines[at + 1].startswith(f"       fix: {fix}"), lines[at + 1]
    assert "] node:" not in out  # the scheduler is a hop: the doctor stops there
    assert slurm.jobs() == []


@pytest.mark.needs_netns
async def test_a_held_job_is_found_and_its_node_checked_without_a_second_job(
    slurm: SlurmCluster, tether_home: Path, tmp_path: Path
):
    workspace = load_test_workspace(tmp_path / "ws", slurm.testbed, node="", extra=SLURM)
    holder = Session(workspace)
    login = holder.login_master()
    await login.start()
    try:
        allocation = await holder.scheduler.allocate(lambda event: None)
        # What `tether up` records once its job runs.
        holder.route.store.save(
            SessionRecord(
                workspace=workspace.name,
                config_path=str(workspace.config_path),
                login=workspace.connection.login.text,
                node=allocation.node,
                scheduler="slurm",
                job_id=allocation.job_id,
            )
        )
        checks: list[Check] = []

        passed = await run_doctor(workspace, checks.append)

        assert passed, [c.render() for c in checks]
        assert one(checks, "node").detail.startswith("compute01 reachable through login")
        assert one(checks, "slurm options").ok and one(checks, "tmux (node)").ok
        assert slurm.jobs() == [allocation.job_id]  # the same job, nothing submitted next to it
    finally:
        slurm.cancel_all()
        await login.stop()


@pytest.mark.needs_netns
async def test_a_recorded_job_that_ended_is_not_replaced(slurm: SlurmCluster, tether_home: Path, tmp_path: Path):
    workspace = load_test_workspace(tmp_path / "ws", slurm.testbed, node="", extra=SLURM)
    Session(workspace).route.store.save(
        SessionRecord(workspace.name, str(workspace.config_path), workspace.connection.login.text, "compute01",
                      scheduler="slurm", job_id="999999")
    )  # fmt: skip
    checks: list[Check] = []

    assert await run_doctor(workspace, checks.append)

    assert one(checks, "node").detail == "no slurm job is held now: the node is checked once `tether up` holds one"
    assert slurm.jobs() == []


# --- Slurm, pure ----------------------------------------------------------------------------------


def test_the_test_only_argv_is_the_holders_with_test_only():
    options = SlurmOptions(partition="gpu", account="proj", time="04:00:00", gres="gpu:1")
    assert sbatch_test_argv(options, "demo") == [
        "env", "SLURM_TIME_FORMAT=standard", "sbatch", "--test-only", "--parsable", "--job-name=tether-demo",
        "--output=/dev/null", "--partition=gpu", "--account=proj", "--time=04:00:00", "--gres=gpu:1", "--nodes=1",
    ]  # fmt: skip


def report(status: int, *said: str, **found: str) -> ProbeReport:
    return ProbeReport(found=dict(found), status={"test_only": status}, said={"test_only": list(said)})


@pytest.mark.parametrize(
    ("said", "accepted"),
    [
        # The three forms Slurm's job_will_run reply takes (libslurm's "Job %u to start at %s ...").
        ("sbatch: Job 7 to start at 2024-03-04T09:13:00 using 2 processors on nodes gpu[01-02] in partition gpu",
         "it would start at 2024-03-04T09:13:00 on gpu[01-02] in partition gpu"),
        ("sbatch: Job 7 to start at 2024-03-04T09:13:00 on cluster east using 2 processors on nodes gpu01 in partition gpu",
         "it would start at 2024-03-04T09:13:00 on gpu01 in partition gpu"),
        ("sbatch: Job 7 to start at 2024-03-04T09:13:00 using 4 processors on gpu01",
         "it would start at 2024-03-04T09:13:00 on gpu01"),
    ],
)  # fmt: skip
def test_test_only_acceptance_is_read(said: str, accepted: str):
    check = sbatch_verdict(report(0, said), SlurmOptions(), "tether.toml")
    assert check is not None and check.ok
    assert check.detail == f"sbatch --test-only accepts the holder job ({accepted}); nothing was submitted"


# What sbatch --test-only prints for a refused option: "allocation failure: " and Slurm's message
# (slurm_errno.c; these are the strings of Slurm 22.05's libslurmfull).
@pytest.mark.parametrize(
    ("options", "said", "keys"),
    [
        (SlurmOptions(account="nope", partition="gpu"),
         "allocation failure: Invalid account or account/partition combination specified", ("account", "partition")),
        (SlurmOptions(qos="nope"), "allocation failure: Invalid qos specification", ("qos",)),
        (SlurmOptions(time="99:00:00", qos="short"),
         "allocation failure: Job violates accounting/QOS policy (job submit limit, user's size and/or time limits)",
         ("time", "qos")),
        (SlurmOptions(time="99:00:00"),
         "allocation failure: Requested time limit is invalid (missing or exceeds some limit)", ("time",)),
        (SlurmOptions(partition="gpu"), "allocation failure: User's group not permitted to use this partition",
         ("partition",)),
        (SlurmOptions(constraint="h100"), "allocation failure: Invalid feature specification", ("constraint",)),
        (SlurmOptions(mem="2T", cpus_per_task=512),
         "allocation failure: Requested node configuration is not available", ("cpus_per_task", "mem")),
        (SlurmOptions(partition="gpu", extra=("--exclusive",)), "sbatch: error: something new", ("partition", "extra")),
        (SlurmOptions(partition="gpu"), "allocation failure: Invalid account or account/partition combination specified",
         ("account", "partition")),  # the default account: account is named though not set
        (SlurmOptions(gres="gpu:a100:1"), "sbatch: error: Invalid generic resource (gres) specification", ("gres",)),
    ],
)  # fmt: skip
def test_a_refusal_names_the_keys_that_cause_it(options: SlurmOptions, said: str, keys: tuple[str, ...]):
    assert refusal_keys(said, options)[0] == keys
    check = sbatch_verdict(report(1, said), options, "tether.toml")
    assert check is not None and not check.ok
    assert check.detail == f"sbatch --test-only refused the holder job: {said}"  # Slurm's words, whole
    assert check.fix.startswith(f"change {keys[0]}")


def test_an_unknown_refusal_with_every_option_left_default_still_says_what_to_change():
    check = sbatch_verdict(report(1, "sbatch: error: something new"), SlurmOptions(), "tether.toml")
    assert check is not None and check.fix.startswith("change the options under [scheduler] in tether.toml")


def test_no_verdict_when_sbatch_did_not_run():
    assert sbatch_verdict(ProbeReport(found={"sbatch": ""}), SlurmOptions(), "tether.toml") is None


async def test_the_probe_runs_in_sh_and_keeps_every_line(tmp_path: Path):
    # A STAND-IN "sbatch" (a two-line refusal on stderr, exit 1) proves the script's quoting,
    # prefixing and status passing with the local /bin/sh, as sshd runs it on a login host.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "sbatch"
    fake.write_text("#!/bin/sh\n# STAND-IN sbatch\ncat >/dev/null\necho \"sbatch: error: it's $1\" >&2\n"
                    "echo 'allocation failure: x=y' >&2\nexit 1\n")  # fmt: skip
    fake.chmod(0o755)
    shell = LocalLoginShell(StandIns(bin_dir, tmp_path))
    script = probe_script(
        ["sbatch", "nosuchtool"], [Probe("t", "sbatch", "sbatch --a='b c'"), Probe("u", "nosuchtool", "x")]
    )
    result = await shell.run(script, input_bytes=b"#!/bin/sh\n")
    parsed = parse_probe("motd: welcome\n" + result.stdout)
    assert parsed.found == {"sbatch": str(fake), "nosuchtool": ""}
    assert parsed.status == {"t": 1}  # "u" did not run: its tool is missing
    assert parsed.said["t"] == ["sbatch: error: it's --a=b c", "allocation failure: x=y"]
    assert parsed.output("t") == "sbatch: error: it's --a=b c; allocation failure: x=y"


# --- PBS, through STAND-IN commands ---------------------------------------------------------------


@pytest.fixture
def pbs_standins(tmp_path: Path) -> StandIns:
    return install_standins(tmp_path, PBS_TOOLS, "PBS")


async def test_pbs_commands_and_a_queue_that_takes_jobs(pbs_standins: StandIns):
    pbs_standins.replay = {"QSTAT": "pbs/qstat_Q_pbspro.txt"}
    checks = await pbs_checks(LocalLoginShell(pbs_standins), PbsOptions(queue="gpu"), "tether.toml")
    assert [c.render() for c in checks] == [
        "[ok  ] pbs commands: qsub, qstat, qdel on the login host",
        "[ok  ] pbs queue: queue gpu takes jobs and starts them",
    ]
    assert [c["argv"] for c in pbs_standins.calls()] == [["-Q", "gpu"]]  # only qstat: nothing submitted


async def test_an_unknown_pbs_queue_names_the_key(pbs_standins: StandIns):
    pbs_standins.replay = {"QSTAT": "pbs/qstat_Q_unknown_queue.txt"}
    checks = await pbs_checks(LocalLoginShell(pbs_standins), PbsOptions(queue="nosuch"), "tether.toml")
    queue = one(checks, "pbs queue")
    assert (queue.ok, queue.detail) == (False, "qstat -Q nosuch: qstat: Unknown queue nosuch")
    assert queue.fix == 'change queue (now "nosuch") under [scheduler] in tether.toml: `qstat -Q` lists the queues'


@pytest.mark.parametrize(
    ("fixture", "detail"),
    [
        ("pbs/qstat_Q_pbspro_disabled.txt", "queue gpu is disabled: qsub refuses jobs for it"),
        ("pbs/qstat_Q_torque_stopped.txt", "queue gpu is stopped: jobs wait in it but do not start"),
    ],
)
async def test_a_closed_pbs_queue_fails(pbs_standins: StandIns, fixture: str, detail: str):
    pbs_standins.replay = {"QSTAT": fixture}
    checks = await pbs_checks(LocalLoginShell(pbs_standins), PbsOptions(queue="gpu"), "tether.toml")
    assert (one(checks, "pbs queue").ok, one(checks, "pbs queue").detail) == (False, detail)


async def test_a_missing_pbs_command_is_named(pbs_standins: StandIns):
    (pbs_standins.bin / "qdel").unlink()
    pbs_standins.system_path = "/usr/bin:/bin"
    checks = await pbs_checks(LocalLoginShell(pbs_standins), PbsOptions(), "tether.toml")
    assert [(c.name, c.ok, c.detail) for c in checks] == [("pbs commands", False, "not found on the login host: qdel")]
    assert "non-interactive shells" in checks[0].fix


def test_qstat_queue_tables_of_both_families():
    pbspro = (FIXTURES / "pbs" / "qstat_Q_pbspro_disabled.txt").read_text()
    torque = (FIXTURES / "pbs" / "qstat_Q_torque_stopped.txt").read_text()
    assert [(q.name, q.enabled, q.started, q.kind) for q in parse_qstat_queues(pbspro)] == [
        ("gpu", False, False, "Exe*")
    ]
    assert [(q.name, q.enabled, q.started, q.kind) for q in parse_qstat_queues(torque)] == [("gpu", True, False, "E")]


def test_a_pbs_server_that_does_not_answer_is_not_blamed_on_the_queue():
    # qstat.c: "qstat: cannot connect to server %s (errno=%d)"
    said = ["qstat: cannot connect to server pbs-server (errno=15010)"]
    check = queue_check(ProbeReport(status={"queue": 1}, said={"queue": said}), "gpu", "tether.toml")
    assert check is not None and not check.ok
    assert check.fix == "run `qstat -Q gpu` on the login host to see why"


# --- Kubernetes, through a STAND-IN kubectl -------------------------------------------------------


@pytest.fixture
def kube_standins(tmp_path: Path) -> StandIns:
    return install_standins(tmp_path, KUBE_TOOLS, "the real CLI")


FORBIDDEN = (
    'namespace ml (context lab): kubectl could not get pod train-0: Error from server (Forbidden): pods "train-0" '
    'is forbidden: User "alice" cannot get resource "pods" in API group "" in the namespace "ml"'
)
POD = KubeOptions(namespace="ml", pod="train-0", context="lab")
SELECTOR = KubeOptions(namespace="ml", selector="app=train", context="lab")


@pytest.mark.parametrize(
    ("options", "fixture", "expected"),
    [
        (POD, "kube/pod_running.json", [
            ("namespace", True, "namespace ml (context lab) answers"),
            ("pod", True, "train-0 is Running"),
        ]),
        (SELECTOR, "kube/pods_selector.json", [
            ("namespace", True, "namespace ml (context lab) answers"),
            ("pod", True, "train-b is Running (picked by selector app=train)"),
        ]),
        (POD, "kube/pod_not_found.txt", [
            ("namespace", True, "namespace ml (context lab) answers"),
            ("pod", False, "pod train-0 does not exist in namespace ml"),
        ]),
        (POD, "kube/get_forbidden.txt", [
            ("namespace", False, FORBIDDEN),
        ]),
    ],
)  # fmt: skip
async def test_kube_namespace_and_pod(kube_standins: StandIns, options: KubeOptions, fixture: str, expected: list):
    kube_standins.replay = {"KUBECTL_GET": fixture}
    checks = await kube_checks(options, env=kube_standins.env())
    assert checks[0] == Check("kubectl (laptop)", True, str(kube_standins.bin / "kubectl"))
    assert [(c.name, c.ok, c.detail) for c in checks[1:]] == expected
    assert all(c.fix for c in checks if not c.ok)
    assert len(kube_standins.calls()) == 1  # one API call: the same lookup KubeScheduler makes


@pytest.mark.parametrize(
    ("fixture", "detail", "fix"),
    [
        ("kube/pod_pending_unschedulable.json", "train-0 is Pending: Unschedulable: 0/3 nodes are available",
         "`tether up` waits for it to run; see why it does not with `kubectl --context lab -n ml describe pod train-0`"),
        ("kube/pod_crashloop.json", "pod train-0: container main is in CrashLoopBackOff",
         "see why with `kubectl --context lab -n ml logs train-0 -c main --previous`"),
    ],
)  # fmt: skip
async def test_a_pod_that_is_not_running_fails_with_what_to_do(
    kube_standins: StandIns, fixture: str, detail: str, fix: str
):
    kube_standins.replay = {"KUBECTL_GET": fixture}
    pod = one(await kube_checks(POD, env=kube_standins.env()), "pod")
    assert not pod.ok and pod.detail.startswith(detail) and pod.fix.startswith(fix), pod.render()


async def test_a_missing_cli_is_reported(tmp_path: Path):
    checks = await kube_checks(KubeOptions(cli="oc", pod="train-0"), env={"PATH": str(tmp_path)})
    assert [c.render() for c in checks] == [
        '[FAIL] oc (laptop): not found on PATH\n       fix: install oc, or set cli = "kubectl" or "oc" under [scheduler]'
    ]


@pytest.mark.skipif(shutil.which("ssh") is None, reason="the doctor's remote part needs the ssh client")
def test_doctor_on_a_kube_workspace(
    kube_standins: StandIns, tether_home: Path, tmp_path: Path, monkeypatch, capsys: pytest.CaptureFixture[str]
):
    kube_standins.replay = {"KUBECTL_GET": "kube/pod_running.json"}
    for key, value in kube_standins.env().items():
        monkeypatch.setenv(key, value)
    config = tmp_path / "tether.toml"
    config.write_text(
        '[workspace]\nremote_root = "~/w"\n[connection]\nlogin = "cluster"\n'
        '[scheduler]\nkind = "kube"\nnamespace = "ml"\ncontext = "lab"\npod = "train-0"\n'
    )

    main(["-c", str(config), "doctor"])  # its verdict depends on this machine's python (debugpy or not)

    out = capsys.readouterr().out
    assert f"[ok  ] kubectl (laptop): {kube_standins.bin / 'kubectl'}" in out
    assert "[ok  ] namespace: namespace ml (context lab) answers" in out
    assert "[ok  ] pod: train-0 is Running" in out
    # Then the node's tools, checked inside the pod through kubectl exec (the STAND-IN runs it
    # here): no ssh, no login host.
    assert "tmux (node)" in out and "python (agent)" in out, out
    assert any(call["argv"][0] == "exec" and "train-0" in call["argv"] for call in kube_standins.calls("kubectl"))
    assert "login host" not in out
