# What the node and the head-end must agree on (docs/control.md, DESIGN
# sections 5 and 6), written once. Pure: the node's control plane, its play
# commands and rules, and the host's controller, broker ACLs, head-end and CLI
# all import this module; nothing here allocates beyond its constants.

# Priorities, lowest first (DESIGN section 6): a higher one preempts a lower
# one, the same one goes to the newer request.
PRIORITIES = ("test", "normal", "priority", "emergency")
# What a broadcast, a rules window or a schedule item may carry: an emergency
# has its own command.
BROADCAST_PRIORITIES = PRIORITIES[:-1]
# What a play is, as the rules judge it (docs/rules.md): a tone only from the
# schedule or an emergency.
KINDS = ("live", "file", "relay", "tone")
PLAY_KINDS = KINDS[:-1]  # what a play command may name
SCHEDULE_KINDS = KINDS[1:]  # what a schedule item plays

# Topics: PREFIX/COMMUNE/node/NODE_ID/CHANNEL (PREFIX: config topic_prefix,
# config.TOPIC_PREFIX unless set). Nothing is sent to a zone or
# to the commune as such: every node gets its own message, signed with its own
# key. A node reads its own NODE_READS and publishes on its own NODE_WRITES
# (status retained; its will is an offline status).
CMD, RULES, STATUS, EVENT = "cmd", "rules", "status", "event"
NODE_READS = (CMD, RULES)
NODE_WRITES = (STATUS, EVENT)
# A node publishes its status at least this often; the head-end counts a node
# silent for longer than that (with margin) as offline.
HEARTBEAT_S = 60


def node_topic(prefix, commune, node_id, channel=""):
    """A node's topic; node_id "+" for every node's (a subscription), "%u" for
    the node the broker's ACL pattern is applied to; no channel: the folder."""
    return "%s/%s/node/%s/%s" % (prefix, commune, node_id, channel)
