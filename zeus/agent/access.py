"""Who may lease GPUs: local processes the agent can see, on the allow-list (root always)."""

from __future__ import annotations

from zeus.agent.peer import Peer


class Access:
    """The allow-list. Empty (no uids, no groups): whoever can open the socket may lease, so the
    socket's mode and group are the only gate."""

    def __init__(self, uids: frozenset[int] = frozenset(), gids: frozenset[int] = frozenset()):
        self.uids = uids
        self.gids = gids

    def refusal(self, peer: Peer | None) -> str | None:
        """Why ``peer`` may not lease or change GPUs; None when it may."""
        if peer is None:
            return (
                "changes need the agent's UNIX socket, where the agent sees the calling process; "
                "TCP is read-only"
            )
        if peer.process is None:
            return (
                f"the agent cannot see the calling process (pid {peer.pid} in its pid namespace): "
                "run the agent in the host's pid namespace (Kubernetes: hostPID: true)"
            )
        if peer.uid == 0 or not (self.uids or self.gids):
            return None
        if peer.uid in self.uids or peer.groups & self.gids:
            return None
        uids = ", ".join(map(str, sorted(self.uids))) or "none"
        gids = ", ".join(map(str, sorted(self.gids))) or "none"
        return (
            f"uid {peer.uid} may not lease GPUs on this node (allowed: uids {uids}; members of "
            f"groups {gids}; agent settings allow_uids, allow_groups)"
        )
