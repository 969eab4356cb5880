"""The [scheduler] section: where the node comes from, with typed options per scheduler kind.

Each kind accepts only its own keys; a key of another kind (``partition`` with kind = "pbs") is
reported as such, so a user who switches schedulers sees what to change. Stdlib only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from tui.config.rules import RuleError, check_memory, check_pbs_walltime, check_slurm_time
from tui.config.schema import MISSING, ProblemLog, TableReader, suggest, toml_value

SCHEDULER_KINDS = ("direct", "slurm", "pbs", "kube")
# Kinds that hand out a node: with them, connection.node = "" means "the node the scheduler gives".
NODE_GIVING_KINDS = ("slurm", "pbs", "kube")


@dataclass(frozen=True)
class SlurmOptions:
    """sbatch options of the holder job; None = not given (Slurm's own default applies)."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    time: str | None = None
    gpus: str | None = None
    gres: str | None = None
    cpus_per_task: int | None = None
    mem: str | None = None
    constraint: str | None = None
    nodes: int = 1
    extra: tuple[str, ...] = ()  # raw options such as "--exclusive"
    job_name: str | None = None
    # How commands reach the job's node: "ssh" through the login host (sites with pam_slurm_adopt),
    # "srun" as steps of the job run from the login host (nodes that take no ssh), "auto": ssh,
    # falling back to srun when the node refuses it.
    node_access: str = "auto"


NODE_ACCESS_CHOICES = ("auto", "ssh", "srun")


@dataclass(frozen=True)
class PbsOptions:
    """qsub options of the holder job; None = not given."""

    queue: str | None = None
    resources: str | None = None  # the -l list, e.g. "nodes=1:ppn=4:gpus=2"
    walltime: str | None = None
    account: str | None = None
    extra: tuple[str, ...] = ()


@dataclass(frozen=True)
class KubeOptions:
    """Which pod to use; exactly one of ``pod`` and ``selector`` is set."""

    cli: str = "kubectl"  # "kubectl" or "oc"
    namespace: str | None = None
    pod: str | None = None
    selector: str | None = None
    context: str | None = None
    container: str | None = None


@dataclass(frozen=True)
class SchedulerConfig:
    """``kind`` plus the options of that kind (None for "direct")."""

    kind: str = "direct"
    options: SlurmOptions | PbsOptions | KubeOptions | None = None

    @property
    def slurm(self) -> SlurmOptions | None:
        return self.options if isinstance(self.options, SlurmOptions) else None

    @property
    def pbs(self) -> PbsOptions | None:
        return self.options if isinstance(self.options, PbsOptions) else None

    @property
    def kube(self) -> KubeOptions | None:
        return self.options if isinstance(self.options, KubeOptions) else None

    @property
    def gives_node(self) -> bool:
        return self.kind in NODE_GIVING_KINDS


KEYS_BY_KIND: dict[str, tuple[str, ...]] = {
    "direct": (),
    "slurm": (
        "partition",
        "account",
        "qos",
        "time",
        "gpus",
        "gres",
        "cpus_per_task",
        "mem",
        "constraint",
        "nodes",
        "extra",
        "job_name",
        "node_access",
    ),
    "pbs": ("queue", "resources", "walltime", "account", "extra"),
    "kube": ("cli", "namespace", "pod", "selector", "context", "container"),
}
ALL_KEYS = ("kind", *sorted({key for keys in KEYS_BY_KIND.values() for key in keys}))


def read_scheduler(log: ProblemLog, table: Mapping[str, object]) -> SchedulerConfig:
    section = TableReader(log, ("scheduler",), table, ("kind",))
    kind = section.choice("kind", "direct", SCHEDULER_KINDS)
    if section.get("kind") not in (MISSING, *SCHEDULER_KINDS):
        return SchedulerConfig(kind=kind)  # the kind is wrong: checking its options would only add noise
    section.known = ("kind", *KEYS_BY_KIND[kind])
    _report_keys_of_other_kinds(section, kind)
    readers: dict[str, Callable[[TableReader], SlurmOptions | PbsOptions | KubeOptions]] = {
        "slurm": _read_slurm,
        "pbs": _read_pbs,
        "kube": _read_kube,
    }
    options = readers[kind](section) if kind in readers else None
    return SchedulerConfig(kind=kind, options=options)


def _report_keys_of_other_kinds(section: TableReader, kind: str) -> None:
    foreign = {key for key in section.table if key not in section.known and key in ALL_KEYS}
    for key in sorted(foreign):
        owners = [name for name, keys in KEYS_BY_KIND.items() if key in keys]
        section.problem(
            key,
            f"'{key}' is a {' and '.join(owners)} option, but scheduler.kind is {toml_value(kind)}",
            f'set kind = "{owners[0]}", or remove {key}',
        )
    for key in section.table:
        if key in section.known or key in foreign:
            continue
        guess = suggest(key, ALL_KEYS)
        if guess is None or guess in section.known:
            hint = f"did you mean '{guess}'?" if guess else "known keys: " + ", ".join(section.known)
        else:
            owner = next(name for name, keys in KEYS_BY_KIND.items() if guess in keys)
            hint = f"did you mean '{guess}'? it is a {owner} option (kind = \"{owner}\")"
        section.problem(key, f"unknown key '{key}' in [scheduler]", hint)


def _checked(
    section: TableReader, key: str, rule: Callable[[str], str], *, example: str, allow_int: bool = False
) -> str | None:
    """An optional string option that must follow ``rule``; integers too where Slurm takes them."""
    value = section.get(key)
    if allow_int and isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return str(value)
    text = section.optional_string(key, example=example)
    if text is None:
        return None
    try:
        return rule(text)
    except RuleError as error:
        section.problem(key, error.message, error.hint)
        return None


def _extra_options(section: TableReader, example: str) -> tuple[str, ...]:
    """Raw scheduler options; each must be an option ("--exclusive"), not a "#SBATCH" line."""
    options = section.strings("extra", example=example)
    for index, option in enumerate(options):
        if not option.startswith("-"):
            section.log.add(
                section.path + ("extra", index),
                f"{option!r} is not an option",
                f"write options as they follow the directive, e.g. {toml_value([example])}",
            )
    return tuple(option for option in options if option.startswith("-"))


def _read_slurm(section: TableReader) -> SlurmOptions:
    return SlurmOptions(
        partition=section.optional_string("partition", example="gpu"),
        account=section.optional_string("account", example="my-project"),
        qos=section.optional_string("qos", example="normal"),
        time=_checked(section, "time", check_slurm_time, example="04:00:00", allow_int=True),
        gpus=_checked(section, "gpus", _non_empty, example="a100:2", allow_int=True),
        gres=section.optional_string("gres", example="gpu:1"),
        cpus_per_task=section.optional_integer("cpus_per_task", minimum=1, example=8),
        mem=_checked(section, "mem", check_memory, example="32G", allow_int=True),
        constraint=section.optional_string("constraint", example="a100"),
        nodes=section.integer("nodes", 1, minimum=1),
        extra=_extra_options(section, "--exclusive"),
        job_name=section.optional_string("job_name", example="tether"),
        node_access=section.choice("node_access", "auto", NODE_ACCESS_CHOICES),
    )


def _read_pbs(section: TableReader) -> PbsOptions:
    return PbsOptions(
        queue=section.optional_string("queue", example="gpu"),
        resources=section.optional_string("resources", example="nodes=1:ppn=4:gpus=2"),
        walltime=_checked(section, "walltime", check_pbs_walltime, example="04:00:00"),
        account=section.optional_string("account", example="my-project"),
        extra=_extra_options(section, "-V"),
    )


def _read_kube(section: TableReader) -> KubeOptions:
    options = KubeOptions(
        cli=section.choice("cli", "kubectl", ("kubectl", "oc")),
        namespace=section.optional_string("namespace", example="my-team"),
        pod=section.optional_string("pod", example="train-0"),
        selector=section.optional_string("selector", example="app=train"),
        context=section.optional_string("context", example="my-cluster"),
        container=section.optional_string("container", example="main"),
    )
    pod_given, selector_given = "pod" in section.table, "selector" in section.table
    if pod_given and selector_given:
        section.problem("selector", "give either pod or selector, not both", "remove one of them")
    elif not pod_given and not selector_given:
        section.log.add(
            section.path,
            'kind = "kube" needs the pod to use',
            'add pod = "train-0" or selector = "app=train" under [scheduler]',
        )
    return options


def _non_empty(text: str) -> str:
    if not text.strip():
        raise RuleError("is empty", 'write it like gpus = "a100:2" or gpus = 2')
    return text
