//! The configuration model: [`BondConfig`] with its defaults, and the
//! kernel enums that only the configuration uses (`lacp_rate`, `ad_select`,
//! `arp_validate`, `arp_all_targets`).

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

// `fmt`, `FromStr`, `BadValue` and the serde derives are what `kernel_enum!`
// expands to; the enums are serialised in the JSON status.
use serde::{Deserialize, Serialize};

use super::{DEFAULT_MIIMON_MS, SOCKET_DIR};
use crate::options::UmemLayout;
use crate::options::{
    BadValue, FailOverMac, HashFunction, HashPolicy, LinkWatchPolicy, MacAddr, Mode,
    PrimaryReselect,
};

/// How many queues of each slave xbond serves (`queues`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Queues {
    /// Every RX queue the slaves have (they must have the same number), so
    /// that no frame RSS spreads lands on a queue without a socket.
    #[default]
    Auto,
    /// Exactly this many; a slave with more RX queues is refused (its other
    /// queues would drop frames), one with fewer too.
    Count(u32),
}

impl fmt::Display for Queues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Queues::Auto => f.write_str("auto"),
            Queues::Count(n) => write!(f, "{n}"),
        }
    }
}

crate::options::kernel_enum! {
    /// How often the partner is asked to send LACPDUs (`lacp_rate`).
    LacpRate {
        /// Every 30 s (long timeout, 90 s).
        Slow = ("slow", 0),
        /// Every 1 s (short timeout, 3 s).
        Fast = ("fast", 1),
    }
}

crate::options::kernel_enum! {
    /// How the active aggregator is chosen (`ad_select`).
    AdSelect {
        /// Keep the active aggregator while it has a usable port.
        Stable = ("stable", 0),
        /// The aggregator with the highest total bandwidth.
        Bandwidth = ("bandwidth", 1),
        /// The aggregator with the most ports.
        Count = ("count", 2),
        /// The aggregator with the best sum of actor port priorities.
        ActorPortPrio = ("actor_port_prio", 3),
    }
}

crate::options::kernel_enum! {
    /// Which slaves the ARP monitor validates replies on (`arp_validate`).
    ArpValidate {
        /// No validation: any traffic counts.
        None = ("none", 0),
        /// Validate on the active slave only.
        Active = ("active", 1),
        /// Validate on backup slaves only.
        Backup = ("backup", 2),
        /// Validate on every slave.
        All = ("all", 3),
        /// Count only ARP traffic, validate nothing.
        Filter = ("filter", 4),
        /// Count only ARP traffic, validate on the active slave.
        FilterActive = ("filter_active", 5),
        /// Count only ARP traffic, validate on backup slaves.
        FilterBackup = ("filter_backup", 6),
    }
}

crate::options::kernel_enum! {
    /// How many ARP targets must answer for a slave to be up (`arp_all_targets`).
    ArpAllTargets {
        /// Any one target.
        Any = ("any", 0),
        /// Every target.
        All = ("all", 1),
    }
}

/// A bond configuration. Field names are the TOML keys; [`BondConfig::new`]
/// gives the defaults, [`BondConfig::validate`] the rules, and
/// [`BondConfig::from_toml_str`] / [`BondConfig::to_toml`] the file.
#[derive(Debug, Clone, PartialEq)]
pub struct BondConfig {
    /// Host-facing interface xbond creates (`bond0`).
    pub name: String,
    /// Data-plane side of the upper veth pair; default `xb-<name>`.
    pub peer_name: String,
    /// Slave interfaces, in order.
    pub slaves: Vec<String>,
    /// Bonding mode.
    pub mode: Mode,
    /// Link (carrier) poll interval in ms; 0 disables polling.
    pub miimon: u32,
    /// Delay before a link that came up is used, ms (multiple of miimon).
    pub updelay: u32,
    /// Delay before a link that went down is disabled, ms (multiple of miimon).
    pub downdelay: u32,
    /// Preferred slave (active-backup, balance-tlb, balance-alb).
    pub primary: Option<String>,
    /// When the primary takes the active role back.
    pub primary_reselect: PrimaryReselect,
    /// MAC handling on failover (active-backup).
    pub fail_over_mac: FailOverMac,
    /// Transmit hash policy (balance-xor, 802.3ad).
    pub xmit_hash_policy: HashPolicy,
    /// Hash function over the policy's fields (xbond option).
    pub xmit_hash_function: HashFunction,
    /// Frames per slave before moving on in balance-rr (0 = random slave).
    pub packets_per_slave: u32,
    /// Gratuitous ARPs sent after a failover (0-255).
    pub num_grat_arp: u8,
    /// Unsolicited IPv6 neighbour advertisements after a failover (0-255).
    pub num_unsol_na: u8,
    /// Delay between peer notifications, ms (0 = miimon).
    pub peer_notif_delay: u32,
    /// Deliver frames received on inactive slaves too.
    pub all_slaves_active: bool,
    /// ARP monitor interval, ms (0 = off).
    pub arp_interval: u32,
    /// ARP monitor targets (up to 16).
    pub arp_ip_target: Vec<Ipv4Addr>,
    /// IPv6 NS monitor targets (up to 16).
    pub ns_ip6_target: Vec<Ipv6Addr>,
    /// How monitors combine; `None` (explicit) turns all monitoring off.
    /// Unset means: the single configured monitor decides.
    pub link_watch_policy: Option<LinkWatchPolicy>,
    /// Minimum number of usable links for the bond's carrier to be up.
    pub min_links: u32,
    /// Bond MAC; default: the first slave's permanent MAC.
    pub mac: Option<MacAddr>,
    /// Queues served per slave and on the upper port (`"auto"`: every RX
    /// queue the slaves have).
    pub queues: Queues,
    /// Whether a queue's AF_XDP sockets share one UMEM (xbond option).
    pub umem_layout: UmemLayout,
    /// Per-slave priority (`prio`) by slave name; higher wins. TOML: `[prio]` table.
    pub prio: BTreeMap<String, i32>,
    /// LACP port priority per slave (`ad_actor_port_prio`, 802.3ad; lower is
    /// preferred, default 255). TOML: `[ad_actor_port_prio]` table.
    pub ad_actor_port_prio: BTreeMap<String, u16>,
    /// Rate at which the partner is asked to send LACPDUs (802.3ad).
    pub lacp_rate: LacpRate,
    /// Send LACPDUs unprompted (`lacp_active on`); off = passive (802.3ad).
    pub lacp_active: bool,
    /// Aggregator selection policy (802.3ad).
    pub ad_select: AdSelect,
    /// System MAC in LACPDUs; default: the bond MAC (802.3ad).
    pub ad_actor_system: Option<MacAddr>,
    /// System priority in LACPDUs, 1-65535 (802.3ad).
    pub ad_actor_sys_prio: u16,
    /// Upper 10 bits of the port key, 0-1023 (802.3ad).
    pub ad_user_port_key: u16,
    /// Coupled Mux control (collecting and distributing together); false =
    /// independent control (802.3ad).
    pub coupled_control: bool,
    /// Mode to fall back to while no LACP partner answers (xbond option,
    /// 802.3ad; only active-backup). `None` = no fallback, as the kernel.
    pub lacp_fallback: Option<Mode>,
    /// Which slaves the ARP monitor validates replies on.
    pub arp_validate: ArpValidate,
    /// Whether any or all ARP targets must answer.
    pub arp_all_targets: ArpAllTargets,
    /// ARP monitor intervals missed before a slave is down, 1-255.
    pub arp_missed_max: u8,
    /// Rebalance transmit by load (balance-tlb/alb); false = by hash only.
    pub tlb_dynamic_lb: bool,
    /// Seconds between learning packets to the switch (balance-tlb/alb).
    pub lp_interval: u32,
    /// balance-xor and 802.3ad: seconds between rebalancing the hash
    /// buckets over the slaves by load (0: never, the kernel's fixed
    /// `hash % slaves`). Moving a bucket can reorder its flows once.
    pub rebalance_interval: u32,
    /// IGMP membership reports sent after a failover (0-255).
    pub resend_igmp: u8,
    /// Take link state from the carrier (true, the kernel's default).
    pub use_carrier: bool,
    /// Path of the daemon's unix control socket; `None` means
    /// `/run/xbond/<name>.sock` (see [`BondConfig::socket_path`]).
    pub control_socket: Option<String>,
    /// A group whose members may read the status over the control socket
    /// (mode 0660 then); `None`: root only.
    pub control_group: Option<String>,
    /// Where the Prometheus metrics are served (`127.0.0.1:9741`); `None`:
    /// not served.
    pub metrics_listen: Option<String>,
    /// The root under which the status is kept as
    /// `proc/net/bonding/<name>`-style text: `PROC_ROOT/net/bonding/<name>`
    /// (for tools that read /proc/net/bonding under another root, such as
    /// Telegraf's `host_proc`). `None`: `proc` beside the control socket,
    /// `/run/xbond/proc` by default.
    pub proc_root: Option<String>,
}

impl BondConfig {
    /// A configuration with every default: the kernel's, except `miimon`
    /// ([`DEFAULT_MIIMON_MS`]), and xbond's own options (`peer_name` =
    /// `xb-<name>`, one queue, `xmit_hash_function = "xxh3"`).
    pub fn new(name: &str, slaves: Vec<String>) -> BondConfig {
        BondConfig {
            name: name.to_string(),
            peer_name: default_peer_name(name),
            slaves,
            mode: Mode::BalanceRr,
            miimon: DEFAULT_MIIMON_MS,
            updelay: 0,
            downdelay: 0,
            primary: None,
            primary_reselect: PrimaryReselect::Always,
            fail_over_mac: FailOverMac::None,
            xmit_hash_policy: HashPolicy::Layer2,
            xmit_hash_function: HashFunction::Xxh3,
            packets_per_slave: 1,
            num_grat_arp: 1,
            num_unsol_na: 1,
            peer_notif_delay: 0,
            all_slaves_active: false,
            arp_interval: 0,
            arp_ip_target: Vec::new(),
            ns_ip6_target: Vec::new(),
            link_watch_policy: None,
            min_links: 0,
            mac: None,
            queues: Queues::Auto,
            umem_layout: UmemLayout::Auto,
            prio: BTreeMap::new(),
            ad_actor_port_prio: BTreeMap::new(),
            lacp_rate: LacpRate::Slow,
            lacp_active: true,
            ad_select: AdSelect::Stable,
            ad_actor_system: None,
            ad_actor_sys_prio: 65535,
            ad_user_port_key: 0,
            coupled_control: true,
            lacp_fallback: None,
            arp_validate: ArpValidate::None,
            arp_all_targets: ArpAllTargets::Any,
            arp_missed_max: 2,
            tlb_dynamic_lb: true,
            lp_interval: 1,
            rebalance_interval: 0,
            resend_igmp: 1,
            use_carrier: true,
            control_socket: None,
            control_group: None,
            metrics_listen: None,
            proc_root: None,
        }
    }

    /// Renames the bond; `peer_name` follows if it was the default `xb-<name>`.
    pub fn set_name(&mut self, name: &str) {
        if self.peer_name == default_peer_name(&self.name) {
            self.peer_name = default_peer_name(name);
        }
        self.name = name.to_string();
    }

    /// True if link monitoring was turned off on purpose
    /// (`link_watch_policy = "none"`): the bond never fails over.
    pub fn monitoring_off(&self) -> bool {
        self.link_watch_policy == Some(LinkWatchPolicy::None)
    }

    /// `rebalance_interval` as a period (`None`: 0, off).
    pub fn rebalance_every(&self) -> Option<std::time::Duration> {
        (self.rebalance_interval > 0)
            .then(|| std::time::Duration::from_secs(u64::from(self.rebalance_interval)))
    }

    /// Where the procfs-style status file goes:
    /// `<proc_root>/net/bonding/<name>`.
    pub fn proc_file(&self) -> String {
        let root = self.proc_root.clone().unwrap_or_else(|| {
            let sock = self.socket_path();
            let dir = sock.rsplit_once('/').map_or("/run/xbond", |(d, _)| d);
            format!("{dir}/proc")
        });
        format!("{}/net/bonding/{}", root.trim_end_matches('/'), self.name)
    }

    /// The daemon's control socket: `control_socket`, or
    /// `/run/xbond/<name>.sock`.
    pub fn socket_path(&self) -> String {
        match &self.control_socket {
            Some(p) => p.clone(),
            None => format!("{SOCKET_DIR}/{}.sock", self.name),
        }
    }
}

pub(super) fn default_peer_name(name: &str) -> String {
    format!("xb-{name}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::*;

    #[test]
    fn defaults_are_the_kernels_except_miimon() {
        let c = BondConfig::new("bond0", two());
        assert_eq!(c.mode, Mode::BalanceRr);
        assert_eq!(c.miimon, DEFAULT_MIIMON_MS);
        assert_eq!(c.peer_name, "xb-bond0");
        assert_eq!(c.queues, Queues::Auto);
        assert_eq!((c.num_grat_arp, c.num_unsol_na), (1, 1));
        assert_eq!(c.packets_per_slave, 1);
        assert_eq!(c.xmit_hash_policy, HashPolicy::Layer2);
        assert_eq!(c.xmit_hash_function, HashFunction::Xxh3);
        assert_eq!(c.primary_reselect, PrimaryReselect::Always);
        assert_eq!(c.fail_over_mac, FailOverMac::None);
        assert_eq!(c.lacp_rate, LacpRate::Slow);
        assert!(c.lacp_active && c.coupled_control && c.tlb_dynamic_lb && c.use_carrier);
        assert_eq!(c.ad_select, AdSelect::Stable);
        assert_eq!((c.ad_actor_sys_prio, c.ad_user_port_key), (65535, 0));
        assert_eq!(c.ad_actor_system, None);
        assert_eq!(c.lacp_fallback, None);
        assert_eq!(c.arp_validate, ArpValidate::None);
        assert_eq!(c.arp_all_targets, ArpAllTargets::Any);
        assert_eq!(c.arp_missed_max, 2);
        assert_eq!((c.lp_interval, c.resend_igmp), (1, 1));
        assert_eq!(c.link_watch_policy, None);
        assert_eq!(c.control_socket, None);
        c.validate().unwrap();
        // A minimal file gives exactly the defaults.
        let parsed = BondConfig::from_toml_str(&with_header("")).unwrap();
        assert_eq!(parsed, c);
    }

    #[test]
    fn new_enums_parse_by_name_and_number() {
        assert_eq!("fast".parse::<LacpRate>(), Ok(LacpRate::Fast));
        assert_eq!("1".parse::<LacpRate>(), Ok(LacpRate::Fast));
        assert_eq!(
            "actor_port_prio".parse::<AdSelect>(),
            Ok(AdSelect::ActorPortPrio)
        );
        assert_eq!("6".parse::<ArpValidate>(), Ok(ArpValidate::FilterBackup));
        assert_eq!(ArpValidate::FilterActive.to_string(), "filter_active");
        assert_eq!(ArpValidate::FilterActive.number(), 5);
        assert_eq!("all".parse::<ArpAllTargets>(), Ok(ArpAllTargets::All));
        let e = "medium".parse::<LacpRate>().unwrap_err();
        assert_eq!(e.valid, "slow fast");
        let json = serde_json::to_string(&AdSelect::Count).unwrap();
        assert_eq!(json, "\"count\"");
        assert_eq!(
            serde_json::from_str::<AdSelect>(&json).unwrap(),
            AdSelect::Count
        );
    }
}
