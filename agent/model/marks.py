"""The agent's ownership marks: the one place their keys and values are spelled.

An object is ours only when it carries OWNER as the value of its owner key
(OVSDB external_ids OWNER_KEY, ZFS property P_OWNER, the netdev ifalias
prefix, the cgroup xattr); everything else is never changed or removed.
"""
from __future__ import annotations

OWNER = "devcloud-agent"                 # the owner value of every mark

# OVN Northbound / local Open_vSwitch external_ids keys
OWNER_KEY = "devcloud-owner"
KIND_KEY = "devcloud-kind"               # network | port | ...
NETWORK_KEY = "devcloud-network"
NODE_KEY = "devcloud-node"               # the node (agent) a port is bound to
PORT_KEY = "devcloud-port"
INSTANCE_KEY = "devcloud-instance"
NIC_KEY = "devcloud-nic"                 # veth | tap
NETDEV_KEY = "devcloud-netdev"
PG_KEY = "devcloud-port-group"
ACL_KEY = "devcloud-acl"
ADDR_KEY = "devcloud-addresses"          # LSP: "mac ip..." as created; a changed addresses column is drift
SUBNET4_KEY = "devcloud-subnet4"
SUBNET6_KEY = "devcloud-subnet6"
GATEWAY4_KEY = "devcloud-gateway4"
MTU_KEY = "devcloud-mtu"
DNS_KEY = "devcloud-dns"
ALLOW_KEY = "devcloud-allow"
EGRESS_KEY = "devcloud-egress"           # switch: "uplink,external_ip4,uplink_gateway4" of its gateway ("" = none)
EXTERNAL_IDS_PREFIX = "devcloud-"        # every key above starts with it: a row's keys of ours
# KIND_KEY values (NB rows)
KIND_NETWORK = "network"                 # Logical_Switch of a team network
KIND_PORT_GROUP = "port-group"
KIND_DHCP4 = "dhcp4"
KIND_ACL = "acl"
KIND_PORT = "port"                       # Logical_Switch_Port of a NIC
# a team network's egress gateway (drivers/ovsdb/nb_router.py)
KIND_ROUTER = "router"                   # Logical_Router
KIND_ROUTER_PORT = "router-port"         # Logical_Router_Port (lan, wan)
KIND_ROUTER_LSP = "router-lsp"           # router-type Logical_Switch_Port facing a router port
KIND_UPLINK_SWITCH = "uplink-switch"     # Logical_Switch with the localnet port
KIND_LOCALNET = "localnet"               # its localnet Logical_Switch_Port
KIND_SNAT = "snat"                       # NAT
KIND_ROUTE = "route"                     # Logical_Router_Static_Route (the default route)
KIND_HA_GROUP = "ha-group"               # HA_Chassis_Group (the gateway chassis)
KIND_HA_CHASSIS = "ha-chassis"           # HA_Chassis

# ZFS user properties
P_OWNER = "devcloud:owner"               # always OWNER
P_TYPE = "devcloud:type"                 # TYPE_*: dir | image | variant | volume | tmp | snapshot
P_KIND = "devcloud:kind"                 # volumes: root | filesystem | block | disk_file
P_TEAM = "devcloud:team"
P_NAME = "devcloud:name"                 # volume name (within the team) / image id
P_INSTANCE = "devcloud:instance"         # optional instance id the volume belongs to
P_IMAGE = "devcloud:image"               # root volumes: the image id they were cloned from; images: their id
P_SHA256 = "devcloud:sha256"             # images: sha256 of the tarball they were imported from
P_FORMAT = "devcloud:format"             # images: rootfs-tarball | lxd-unified | lxd-split
P_ROOTFS = "devcloud:rootfs"             # images, variants, root volumes: the rootfs subdirectory ("" = the root)
P_METADATA = "devcloud:metadata"         # images of the LXD formats: metadata.yaml's fields as JSON
P_IDMAP = "devcloud:idmap"               # variants, root volumes: the uid/gid map ("u100000:g100000:n65536")
P_IDMAP_MODE = "devcloud:idmap-mode"     # root volumes: shifted | mount
# P_TYPE values
TYPE_DIR = "dir"                         # the fixed and per-team directory datasets
TYPE_IMAGE = "image"
TYPE_TMP = "tmp"                         # an image (or a variant) being made
TYPE_VARIANT = "variant"                 # an image shifted into a uid/gid map
TYPE_VOLUME = "volume"
TYPE_SNAPSHOT = "snapshot"

# netdev ifalias: "devcloud owner=... kind=... net=... port=... inst=..."
IFALIAS_PREFIX = "devcloud"

# cgroup xattrs: the mark "owner=devcloud-agent kind=scope team=t instance=i" on every slice/scope, and the
# intent recorded on the parent before a mkdir (the child's name follows the prefix)
CGROUP_MARK_XATTR = "user.devcloud.owner"
CGROUP_PENDING_XATTR = "user.devcloud.pending."
