//! The bond configuration: one flat TOML file per bond, keys spelled as the
//! kernel's bonding options, plus xbond's own keys (`name`, `slaves`, `queues`,
//! ...). Validation names the key, the value and what would be valid. Kernel
//! option strings and ifupdown `bond-*` stanzas import into the same model.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use crate::options::{
    FailOverMac, HashFunction, HashPolicy, LinkWatchPolicy, MacAddr, Mode, PrimaryReselect,
};

/// Default `miimon` in ms. The kernel leaves it at 0 (no failover at all) in
/// most modes; xbond monitors links unless told otherwise.
pub const DEFAULT_MIIMON_MS: u32 = 100;

/// A validated bond configuration. Field names are the TOML keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// Queues on the upper port = worker threads.
    pub queues: u32,
    /// Per-slave priority (`prio`) by slave name; higher wins. TOML: `[prio]` table.
    pub prio: BTreeMap<String, i32>,
}

// The helper-written implementation follows: parsing (`BondConfig::from_toml_str`),
// validation and import live below.
