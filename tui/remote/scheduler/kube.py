"""The ``kube`` kind: a running pod is the node, reached with ``kubectl``/``oc`` from the laptop.

No login host is involved: the CLI runs here with the user's kube config (``--context`` and ``-n``
from [scheduler]), so whatever authenticates their ``kubectl`` (OIDC, cloud plugins, ``oc login``)
works unchanged. The pod is not ours: Tether waits for it to run and uses it, but never creates or
deletes it, so ``release`` does nothing.

Besides the Scheduler interface this module builds what the rest of the console needs to use a pod:
``exec_argv`` (commands, the agent channel), ``rsync_shell`` (sync through ``kubectl exec``) and
``PortForward`` (a ``kubectl port-forward`` kept alive across drops).
"""

from __future__ import annotations

import asyncio
import json
import shlex
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from itertools import repeat
from typing import Any

from tui.config.scheduler import KubeOptions
from tui.events import EventSink, Progress
from tui.remote.scheduler.base import Allocation, Scheduler, format_elapsed, poll
from tui.remote.scheduler.kube_forward import KubeError, PortForward
from tui.remote.ssh import CommandResult, run_argv

Pod = dict[str, Any]
Sleep = Callable[[float], Awaitable[None]]

# Waiting reasons that do not get better by waiting: the user has to change something.
FATAL_WAITING = frozenset({"CrashLoopBackOff", "InvalidImageName", "ErrImageNeverPull"})
POD_PREFIX = "pod/"


class KubectlFailed(KubeError):
    """kubectl could not talk to the cluster this time (API server, network, login): worth a retry."""


# --- reading pod JSON (pure) ------------------------------------------------------------------


def pod_name(pod: Pod) -> str:
    return str(pod.get("metadata", {}).get("name", "?"))


def bare_name(pod: str) -> str:
    """``pod/train-0`` or ``train-0`` -> ``train-0``."""
    return pod.removeprefix(POD_PREFIX)


def container_names(pod: Pod) -> list[str]:
    return [str(c.get("name")) for c in pod.get("spec", {}).get("containers", [])]


def target_container(pod: Pod, container: str | None) -> str | None:
    """The container commands will run in: the configured one, else the one kubectl exec picks."""
    if container:
        return container
    annotations = pod.get("metadata", {}).get("annotations") or {}
    default = annotations.get("kubectl.kubernetes.io/default-container")
    names = container_names(pod)
    return default or (names[0] if names else None)


def container_statuses(pod: Pod, *, init: bool = False) -> list[dict[str, Any]]:
    key = "initContainerStatuses" if init else "containerStatuses"
    return list(pod.get("status", {}).get(key) or [])


def waiting(status: Mapping[str, Any]) -> tuple[str, str] | None:
    """(reason, message) of a waiting container, None when it is not waiting."""
    state = status.get("state", {}).get("waiting")
    if state is None:
        return None
    return str(state.get("reason", "Waiting")), str(state.get("message", ""))


def last_exit(status: Mapping[str, Any]) -> str:
    """``last exit: Error, code 1`` from lastState.terminated, or ""."""
    terminated = status.get("lastState", {}).get("terminated")
    if not terminated:
        return ""
    return f"last exit: {terminated.get('reason', 'terminated')}, code {terminated.get('exitCode', '?')}"


def unscheduled_reason(pod: Pod) -> str | None:
    """``Unschedulable: 0/3 nodes are available: ...`` from the PodScheduled condition."""
    for condition in pod.get("status", {}).get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            reason, message = condition.get("reason", "not scheduled"), condition.get("message", "")
            return f"{reason}: {message}" if message else str(reason)
    return None


def pod_ends_at(pod: Pod) -> float | None:
    """When ``spec.activeDeadlineSeconds`` ends the pod (epoch seconds); None for most pods."""
    deadline = pod.get("spec", {}).get("activeDeadlineSeconds")
    started = pod.get("status", {}).get("startTime")
    if not deadline or not started:
        return None
    # RFC 3339 with "Z"; fromisoformat only learnt "Z" in Python 3.11.
    return datetime.fromisoformat(str(started).replace("Z", "+00:00")).timestamp() + float(deadline)


@dataclass(frozen=True)
class PodView:
    """What a pod means for Tether: usable now, worth waiting for (``detail``), or ``fatal``."""

    name: str
    phase: str
    usable: bool
    detail: str = ""
    fatal: KubeError | None = None


def assess_pod(pod: Pod, container: str | None, logs_hint: str = "kubectl logs") -> PodView:
    """Decide from ``kubectl get pod -o json`` whether the pod can be used, waited for, or not."""
    name = pod_name(pod)
    phase = str(pod.get("status", {}).get("phase") or "Pending")
    if pod.get("metadata", {}).get("deletionTimestamp"):
        return PodView(name, phase, False, "terminating")
    target = target_container(pod, container)
    if container and container not in container_names(pod):
        return PodView(name, phase, False, fatal=_no_such_container(name, container, container_names(pod)))
    fatal = _fatal_container(pod, name, target, logs_hint)
    if fatal is not None:
        return PodView(name, phase, False, fatal=fatal)
    if phase in ("Failed", "Succeeded"):
        return PodView(name, phase, False, fatal=_pod_ended(pod, name, phase))
    if phase == "Running":
        return _running_view(pod, name, target)
    if phase == "Unknown":
        return PodView(name, phase, False, "Unknown: the pod's node is not reporting")
    return PodView(name, phase, False, _pending_detail(pod, target))


def _fatal_container(pod: Pod, name: str, target: str | None, logs_hint: str) -> KubeError | None:
    """A container stuck in a state that waiting will not fix (init containers block the pod)."""
    candidates = container_statuses(pod, init=True) + [s for s in container_statuses(pod) if s.get("name") == target]
    for status in candidates:
        reason = waiting(status)
        if reason is None or reason[0] not in FATAL_WAITING:
            continue
        container = str(status.get("name"))
        restarts = status.get("restartCount", 0)
        detail = "; ".join(p for p in (last_exit(status), reason[1]) if p)
        return KubeError(
            f"pod {name}: container {container} is in {reason[0]} ({restarts} restarts)"
            + (f": {detail}" if detail else ""),
            fix=f"see why with `{logs_hint} {name} -c {container} --previous`; fix the image or "
            "command, or point [scheduler] at a healthy pod",
        )
    return None


def _pod_ended(pod: Pod, name: str, phase: str) -> KubeError:
    status = pod.get("status", {})
    why = ": ".join(str(p) for p in (status.get("reason"), status.get("message")) if p)
    return KubeError(
        f"pod {name} has {'failed' if phase == 'Failed' else 'finished'} ({phase}{', ' + why if why else ''})",
        fix="delete it so its controller makes a new one, or point [scheduler] at a running pod",
    )


def _no_such_container(name: str, container: str, names: list[str]) -> KubeError:
    return KubeError(
        f"pod {name} has no container {container!r} (it has: {', '.join(names) or 'none'})",
        fix=f'set container = "{names[0]}" under [scheduler]' if names else "check the pod's spec",
    )


def _running_view(pod: Pod, name: str, target: str | None) -> PodView:
    status = next((s for s in container_statuses(pod) if s.get("name") == target), None)
    if status is not None and "running" in status.get("state", {}):
        return PodView(name, "Running", True)
    if status is None:
        return PodView(name, "Running", False, f"container {target} has no status yet")
    reason = waiting(status)
    if reason is not None:
        return PodView(name, "Running", False, _reason_text(f"container {target}", *reason))
    terminated = status.get("state", {}).get("terminated", {})
    return PodView(name, "Running", False, f"container {target} exited ({terminated.get('reason', 'terminated')})")


def _pending_detail(pod: Pod, target: str | None) -> str:
    """Why a Pending pod is not running yet: init containers, then the target container first."""
    for status in container_statuses(pod, init=True):
        if "running" in status.get("state", {}):
            return f"Init: container {status.get('name')} running"
        reason = waiting(status)
        if reason is not None and reason[0] != "PodInitializing":
            return _reason_text(f"Init: container {status.get('name')}", *reason)
    statuses = sorted(container_statuses(pod), key=lambda s: s.get("name") != target)
    for status in statuses:
        reason = waiting(status)
        if reason is not None:
            return _reason_text(f"container {status.get('name')}", *reason)
    return unscheduled_reason(pod) or "Pending"


def _reason_text(subject: str, reason: str, message: str) -> str:
    return f"{subject}: {reason}" + (f" ({message})" if message else "")


def pick_pod(items: list[Pod], container: str | None) -> Pod | None:
    """From a selector's pods (sorted by name): the first usable one, else the first worth waiting for.

    Returns a pod with a fatal state only when every pod has one, so its error can be shown.
    """
    pods = sorted(items, key=pod_name)
    views = [(pod, assess_pod(pod, container)) for pod in pods]
    live = [(pod, view) for pod, view in views if view.detail != "terminating"]
    for pod, view in live:
        if view.usable:
            return pod
    for pod, view in live:
        if view.fatal is None:
            return pod
    return live[0][0] if live else (pods[0] if pods else None)


# --- the scheduler ----------------------------------------------------------------------------


class KubeScheduler(Scheduler):
    """The configured pod (or the first running pod of a selector) is the node. Runs kubectl locally."""

    kind = "kube"

    def __init__(
        self,
        options: KubeOptions,
        *,
        poll_interval: float = 2.0,
        env: Mapping[str, str] | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if not options.pod and not options.selector:
            raise KubeError(
                'kind = "kube" needs the pod to use',
                fix='add pod = "train-0" or selector = "app=train" under [scheduler]',
            )
        self.options = options
        self._poll_interval = poll_interval
        self._env = dict(env) if env is not None else None
        self._sleep = sleep

    @property
    def env(self) -> dict[str, str] | None:
        """The environment kubectl runs with; None: this process's own."""
        return self._env

    # argv builders (pure)

    def base_argv(self) -> list[str]:
        """The CLI with the configured context and namespace; subcommands follow."""
        argv = [self.options.cli]
        if self.options.context:
            argv += ["--context", self.options.context]
        if self.options.namespace:
            argv += ["-n", self.options.namespace]
        return argv

    def exec_prefix(self) -> list[str]:
        """``kubectl exec -i [-c C] [-n NS] [--context X]``; the pod and ``-- command`` follow."""
        argv = [self.options.cli, "exec", "-i"]
        if self.options.container:
            argv += ["-c", self.options.container]
        if self.options.namespace:
            argv += ["-n", self.options.namespace]
        if self.options.context:
            argv += ["--context", self.options.context]
        return argv

    def exec_argv(self, pod: str, command: str) -> list[str]:
        """argv running a shell command in the pod (stdin attached, no tty)."""
        return [*self.exec_prefix(), bare_name(pod), "--", "sh", "-c", command]

    def rsync_shell(self) -> str:
        """The ``rsync -e`` value that carries rsync over ``kubectl exec``.

        rsync runs its remote shell as ``SHELL HOST rsync --server ...``, but ``kubectl exec`` wants
        ``POD -- COMMAND``; the small ``sh -c`` wrapper puts the ``--`` between them ($0 is the
        host rsync passes, i.e. the pod). Use it as::

            rsync --blocking-io --rsync-path=rsync -e "$(rsync_shell)" -a src/ POD:/path/

        with a bare pod name before the colon (``pod/NAME:`` would read as a local path to rsync).
        ``--blocking-io`` because kubectl's pipes are not a socket; ``--rsync-path`` names rsync in
        the container (it must be installed there).
        """
        script = "exec " + shlex.join(self.exec_prefix()) + ' "$0" -- "$@"'
        return "sh -c " + shlex.quote(script)

    def rsync_options(self) -> list[str]:
        """rsync options for syncing with a pod; the destination is ``rsync_destination``."""
        return ["--blocking-io", "--rsync-path=rsync", "-e", self.rsync_shell()]

    @staticmethod
    def rsync_destination(pod: str, path: str) -> str:
        return f"{bare_name(pod)}:{path}"

    def port_forward(self, pod: str, local_port: int, remote_port: int, **kwargs: Any) -> PortForward:
        """A kept-alive ``port-forward`` from 127.0.0.1:local_port to the pod's remote_port."""
        target = POD_PREFIX + bare_name(pod)
        return PortForward(self.base_argv(), target, local_port, remote_port, env=self._env, **kwargs)

    # talking to the API server

    async def kubectl(self, *args: str, timeout: float = 30) -> CommandResult:
        argv = [*self.base_argv(), *args]
        try:
            return await run_argv(argv, timeout=timeout, env=self._env)
        except FileNotFoundError:
            raise KubeError(
                f"{self.options.cli} was not found on this computer",
                fix=f'install {self.options.cli} (or set cli = "kubectl"/"oc" under [scheduler])',
            ) from None
        except asyncio.TimeoutError:
            raise KubectlFailed(
                f"`{shlex.join(argv)}` did not answer in {timeout:.0f}s",
                fix=f"check that `{shlex.join(self.base_argv())} get pods` works in your terminal",
            ) from None

    def _failed(self, result: CommandResult, what: str) -> KubectlFailed:
        lines = [line for line in (result.stderr or result.stdout).splitlines() if line.strip()]
        return KubectlFailed(
            f"{self.options.cli} could not {what}: {lines[-1] if lines else 'no output'}",
            fix=f"check that `{shlex.join(self.base_argv())} get pods` works in your terminal "
            "(context, namespace, login)",
        )

    async def get_pod(self, name: str) -> Pod | None:
        """The pod's JSON, None when it does not exist."""
        result = await self.kubectl("get", "pod", name, "-o", "json")
        if not result.ok and "(NotFound)" in result.stderr:
            return None
        if not result.ok:
            raise self._failed(result, f"get pod {name}")
        return self._json(result, f"pod {name}")

    async def list_pods(self) -> list[Pod]:
        """The pods matching the selector."""
        selector = self.options.selector or ""
        result = await self.kubectl("get", "pods", "-l", selector, "-o", "json")
        if not result.ok:
            raise self._failed(result, f"list pods with selector {selector}")
        return list(self._json(result, f"pods {selector}").get("items") or [])

    def _json(self, result: CommandResult, what: str) -> Pod:
        try:
            return dict(json.loads(result.stdout))
        except (ValueError, TypeError):
            raise KubeError(
                f"{self.options.cli} printed something that is not JSON for {what}",
                fix="check for a kubectl wrapper or plugin that prints extra text",
            ) from None

    async def current_pod(self) -> Pod:
        """The configured pod, or the pick among the selector's pods; errors when there is none."""
        ns = f" in namespace {self.options.namespace}" if self.options.namespace else ""
        if self.options.pod:
            pod = await self.get_pod(self.options.pod)
            if pod is None:
                raise KubeError(
                    f"pod {self.options.pod} does not exist{ns}",
                    fix=f"check the name with `{shlex.join(self.base_argv())} get pods`, "
                    "and the namespace/context under [scheduler]",
                )
            return pod
        picked = pick_pod(await self.list_pods(), self.options.container)
        if picked is None:
            raise KubeError(
                f"no pod matches selector {self.options.selector!r}{ns}",
                fix=f"check it with `{shlex.join(self.base_argv())} get pods -l {self.options.selector}`",
            )
        return picked

    def _allocation(self, pod: Pod) -> Allocation:
        return Allocation(node=POD_PREFIX + pod_name(pod), job_id=None, ends_at=pod_ends_at(pod))

    def _logs_hint(self) -> str:
        return shlex.join([*self.base_argv(), "logs"])

    # the Scheduler interface

    async def allocate(self, progress: EventSink) -> Allocation:
        """Wait (reporting why) until the pod runs; fail at once when it cannot get better."""
        started = time.monotonic()
        # Only a failed kubectl is worth another try: a pod that cannot run raises at once.
        delays = repeat(self._poll_interval)
        async for pod in poll(self.current_pod, progress, self._sleep, delays, retry_on=KubectlFailed):
            view = assess_pod(pod, self.options.container, self._logs_hint())
            if view.fatal is not None:
                raise view.fatal
            if view.usable:
                progress(Progress("node", f"using pod {view.name}", 1.0))
                return self._allocation(pod)
            elapsed = format_elapsed(time.monotonic() - started)
            progress(Progress("node", f"pod {view.name} {view.phase} for {elapsed}: {view.detail}"))
        raise AssertionError("unreachable: poll() never ends by itself")

    async def find(self, recorded: Allocation | None) -> Allocation | None:
        """The pod to reattach to when it still runs.

        A configured pod name wins over a recorded one (the user may have edited tether.toml); with
        a selector the recorded pod is kept while it still matches and runs, because the
        workspace's tmux server lives in it.
        """
        if self.options.pod:
            pod = await self.get_pod(self.options.pod)
        elif recorded is not None and recorded.node.startswith(POD_PREFIX):
            wanted = bare_name(recorded.node)
            pod = next((p for p in await self.list_pods() if pod_name(p) == wanted), None)
        else:
            return None
        if pod is None or not assess_pod(pod, self.options.container).usable:
            return None
        return self._allocation(pod)

    async def release(self, allocation: Allocation) -> None:
        """Nothing: the pod belongs to its controller (or the user), not to Tether."""
