//! `<interface>`: guest NICs. The data types are here; parsing and
//! formatting are in `interface_xml.rs`.

use crate::xml::Element;
use crate::xml_enum;

use super::super::util::MacAddr;
use super::address::Address;
use super::chardev::Reconnect;
use super::info::DeviceInfo;
use super::virtio::VirtioOptions;

xml_enum! {
    /// `<interface type=>`.
    pub enum NetType {
        User = "user", Ethernet = "ethernet", VhostUser = "vhostuser", Server = "server",
        Client = "client", Mcast = "mcast", Network = "network", Bridge = "bridge",
        Internal = "internal", Direct = "direct", Hostdev = "hostdev", Udp = "udp",
        Vdpa = "vdpa", Null = "null", Vds = "vds",
    }
}

xml_enum! {
    /// The socket interface types.
    pub enum SocketKind { Server = "server", Client = "client", Mcast = "mcast", Udp = "udp" }
}

xml_enum! {
    /// `<source mode=>` of a direct (macvtap) interface.
    pub enum MacvtapMode { Vepa = "vepa", Private = "private", Bridge = "bridge", Passthrough = "passthrough" }
}

xml_enum! {
    /// `<mac type=>`.
    pub enum MacType { Generated = "generated", Static = "static" }
}

xml_enum! {
    /// `<link state=>`.
    pub enum LinkState { Up = "up", Down = "down" }
}

xml_enum! {
    /// `<driver name=>` of a virtio NIC.
    pub enum NetDriverName { Qemu = "qemu", Vhost = "vhost" }
}

xml_enum! {
    /// `<driver txmode=>`.
    pub enum TxMode { Iothread = "iothread", Timer = "timer" }
}

xml_enum! {
    /// `<backend type=>`.
    pub enum NetBackendType { Default = "default", Passt = "passt" }
}

xml_enum! {
    /// `<teaming type=>`.
    pub enum TeamingType { Persistent = "persistent", Transient = "transient" }
}

xml_enum! {
    /// `<tag nativeMode=>`.
    pub enum VlanNativeMode { Tagged = "tagged", Untagged = "untagged" }
}

/// Where the NIC connects (per `type=`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetSource {
    /// `type='user'`: `<source dev=>` with the passt backend.
    User {
        /// `dev=`.
        dev: Option<String>,
    },
    /// `type='ethernet'`.
    Ethernet,
    /// `type='vhostuser'`: a UNIX socket.
    VhostUser {
        /// `path=`.
        path: Option<String>,
        /// `mode='server'`.
        server: bool,
        /// `<reconnect>`.
        reconnect: Option<Reconnect>,
    },
    /// `server`, `client`, `mcast` and `udp` sockets.
    Socket {
        /// Which of the four.
        kind: SocketKind,
        /// `address=`.
        address: Option<String>,
        /// `port=`.
        port: u32,
        /// `<local address= port=>` (udp).
        local: Option<(Option<String>, u32)>,
    },
    /// `type='network'`.
    Network {
        /// `network=`.
        network: String,
        /// `portgroup=`.
        portgroup: Option<String>,
        /// `portid=` (live).
        portid: Option<String>,
    },
    /// `type='bridge'`.
    Bridge {
        /// `bridge=`.
        bridge: Option<String>,
    },
    /// `type='internal'`.
    Internal {
        /// `name=`.
        name: Option<String>,
    },
    /// `type='direct'` (macvtap).
    Direct {
        /// `dev=`.
        dev: String,
        /// `mode=`.
        mode: MacvtapMode,
    },
    /// `type='hostdev'`: the host device's address.
    Hostdev {
        /// `managed=` on `<interface>`.
        managed: bool,
        /// `<source><address>`.
        address: Option<Address>,
    },
    /// `type='vdpa'`.
    Vdpa {
        /// `dev=`.
        dev: Option<String>,
    },
    /// `type='null'`.
    Null,
    /// `type='vds'`: attributes kept as written.
    Vds {
        /// `<source>` attributes.
        attrs: Vec<(String, String)>,
    },
}

/// `<vlan>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Vlan {
    /// `trunk=`.
    pub trunk: Option<bool>,
    /// `<tag id= nativeMode=>`.
    pub tags: Vec<(u32, Option<VlanNativeMode>)>,
}

/// `<virtualport>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VirtualPort {
    /// `type=`.
    pub kind: Option<String>,
    /// `<parameters>` attributes in order.
    pub parameters: Vec<(String, String)>,
}

/// `<inbound>`/`<outbound>` of `<bandwidth>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BandwidthRate {
    /// `average=` (KiB/s).
    pub average: Option<u64>,
    /// `peak=`.
    pub peak: Option<u64>,
    /// `floor=` (inbound only).
    pub floor: Option<u64>,
    /// `burst=` (KiB).
    pub burst: Option<u64>,
}

/// `<bandwidth>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bandwidth {
    /// `<inbound>`.
    pub inbound: Option<BandwidthRate>,
    /// `<outbound>`.
    pub outbound: Option<BandwidthRate>,
}

/// `<ip>` of an interface.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetIp {
    /// `address=`.
    pub address: String,
    /// `family=`.
    pub family: Option<String>,
    /// `prefix=`.
    pub prefix: Option<u32>,
    /// `peer=`.
    pub peer: Option<String>,
}

/// `<driver>` of a virtio NIC.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetDriver {
    /// `name=`.
    pub name: Option<NetDriverName>,
    /// `txmode=`.
    pub txmode: Option<TxMode>,
    /// `ioeventfd=`.
    pub ioeventfd: Option<bool>,
    /// `event_idx=`.
    pub event_idx: Option<bool>,
    /// `queues=`.
    pub queues: Option<u32>,
    /// `rx_queue_size=`.
    pub rx_queue_size: Option<u32>,
    /// `tx_queue_size=`.
    pub tx_queue_size: Option<u32>,
    /// `rss=`.
    pub rss: Option<bool>,
    /// `rss_hash_report=`.
    pub rss_hash_report: Option<bool>,
    /// virtio options.
    pub virtio: VirtioOptions,
    /// `<host>` offload switches (name, on/off) in libvirt's order.
    pub host: Vec<(String, bool)>,
    /// `<guest>` offload switches.
    pub guest: Vec<(String, bool)>,
}

/// `<backend>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetBackend {
    /// `type=`.
    pub kind: Option<NetBackendType>,
    /// `tap=`.
    pub tap: Option<String>,
    /// `vhost=`.
    pub vhost: Option<String>,
    /// `logFile=`.
    pub log_file: Option<String>,
}

/// A network interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    /// Where it connects.
    pub source: NetSource,
    /// `<mac address=>`.
    pub mac: MacAddr,
    /// The MAC was generated (not written by the user).
    pub mac_generated: bool,
    /// `<mac type=>`.
    pub mac_type: Option<MacType>,
    /// `<mac check=>`.
    pub mac_check: Option<bool>,
    /// `trustGuestRxFilters=`.
    pub trust_guest_rx_filters: Option<bool>,
    /// Host-side `<source><ip>`s.
    pub host_ips: Vec<NetIp>,
    /// Host-side `<source><route>`s (attributes in order).
    pub host_routes: Vec<Vec<(String, String)>>,
    /// `<vlan>`.
    pub vlan: Option<Vlan>,
    /// `<virtualport>`.
    pub virtualport: Option<VirtualPort>,
    /// `<bandwidth>`.
    pub bandwidth: Option<Bandwidth>,
    /// `<port isolated=>`.
    pub isolated: Option<bool>,
    /// Guest-side `<ip>`s.
    pub guest_ips: Vec<NetIp>,
    /// Guest-side `<route>`s (attributes in order).
    pub guest_routes: Vec<Vec<(String, String)>>,
    /// `<portForward>`s (passt), kept as written.
    pub port_forwards: Vec<Element>,
    /// `<script path=>`.
    pub script: Option<String>,
    /// `<downscript path=>`.
    pub downscript: Option<String>,
    /// `<backenddomain name=>`.
    pub backend_domain: Option<String>,
    /// `<target dev=>`.
    pub target_dev: Option<String>,
    /// `<target managed=>`.
    pub target_managed: Option<bool>,
    /// `<guest dev=>`.
    pub guest_dev: Option<String>,
    /// `<guest actual=>` (live).
    pub guest_actual: Option<String>,
    /// `<model type=>`.
    pub model: Option<String>,
    /// `<driver>`.
    pub driver: NetDriver,
    /// `<backend>`.
    pub backend: NetBackend,
    /// `<filterref filter=>` and its `<parameter name= value=>`s.
    pub filterref: Option<(String, Vec<(String, String)>)>,
    /// `<tune><sndbuf>`.
    pub sndbuf: Option<u64>,
    /// `<teaming type= persistent=>`.
    pub teaming: Option<(TeamingType, Option<String>)>,
    /// `<link state=>`.
    pub link_state: Option<LinkState>,
    /// `<mtu size=>`.
    pub mtu: Option<u32>,
    /// `<coalesce><rx><frames max=>`.
    pub coalesce_rx_frames: Option<u32>,
    /// Address, alias, boot order, ROM, ACPI index.
    pub info: DeviceInfo,
}

impl Interface {
    /// The `type=` value.
    pub fn net_type(&self) -> NetType {
        match &self.source {
            NetSource::User { .. } => NetType::User,
            NetSource::Ethernet => NetType::Ethernet,
            NetSource::VhostUser { .. } => NetType::VhostUser,
            NetSource::Socket { kind, .. } => match kind {
                SocketKind::Server => NetType::Server,
                SocketKind::Client => NetType::Client,
                SocketKind::Mcast => NetType::Mcast,
                SocketKind::Udp => NetType::Udp,
            },
            NetSource::Network { .. } => NetType::Network,
            NetSource::Bridge { .. } => NetType::Bridge,
            NetSource::Internal { .. } => NetType::Internal,
            NetSource::Direct { .. } => NetType::Direct,
            NetSource::Hostdev { .. } => NetType::Hostdev,
            NetSource::Vdpa { .. } => NetType::Vdpa,
            NetSource::Null => NetType::Null,
            NetSource::Vds { .. } => NetType::Vds,
        }
    }

    /// Whether the model is a virtio one.
    pub fn is_virtio(&self) -> bool {
        matches!(
            self.model.as_deref(),
            Some("virtio" | "virtio-transitional" | "virtio-non-transitional")
        )
    }
}
