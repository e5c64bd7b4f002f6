//! The bond configuration: one flat TOML file per bond, keys spelled as the
//! kernel's bonding options, plus xbond's own keys (`name`, `slaves`, `queues`,
//! ...). Validation names the key, the value and what would be valid. Kernel
//! option strings and ifupdown `bond-*` stanzas import into the same model.
//!
//! - [`BondConfig::from_toml_str`] parses and validates a bond's TOML file.
//! - [`BondConfig::validate`] checks a configuration built by hand.
//! - [`import_option_string`] reads `mode=active-backup,miimon=100,primary=eno1`
//!   (NetworkManager `bond.options`, modprobe lines, `BONDING_OPTS`).
//! - [`import_ifupdown`] / [`import_ifupdown_named`] read an
//!   `/etc/network/interfaces` text (Debian, Proxmox VE).
//! - [`Import::to_toml`] writes an import back as a TOML file.
//!
//! Where xbond departs from the kernel, the difference is deliberate and is
//! named in the error or warning: link monitoring is on by default
//! (`miimon = 100`), delays that are not multiples of `miimon` are rejected
//! instead of rounded down, and options that do nothing in the chosen mode are
//! errors instead of being silently ignored.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::options::{
    BadValue, FailOverMac, HashFunction, HashPolicy, LinkWatchPolicy, MacAddr, Mode,
    PrimaryReselect,
};
use crate::MAX_SLAVES;

/// Default `miimon` in ms. The kernel leaves it at 0 (no failover at all) in
/// most modes; xbond monitors links unless told otherwise.
pub const DEFAULT_MIIMON_MS: u32 = 100;

/// Most queues (worker threads) one bond may have.
pub const MAX_QUEUES: u32 = 64;

/// Most `arp_ip_target` and, separately, most `ns_ip6_target` entries (the
/// kernel's `BOND_MAX_ARP_TARGETS`).
pub const MAX_TARGETS: usize = 16;

/// Longest interface name in bytes (`IFNAMSIZ - 1`).
pub const MAX_IFNAME_LEN: usize = 15;

/// Directory of the daemons' control sockets when `control_socket` is unset.
pub const SOCKET_DIR: &str = "/run/xbond";

/// Longest control socket path in bytes (`sun_path` holds 108 with the NUL).
const MAX_SOCKET_PATH: usize = 107;

/// The kernel's `INT_MAX` limit for millisecond options.
const INT_MAX: u64 = i32::MAX as u64;

/// Every key a bond's TOML file may hold, in the order [`BondConfig::to_toml`]
/// writes them.
pub const KEYS: &[&str] = &[
    "name",
    "peer_name",
    "slaves",
    "mode",
    "miimon",
    "updelay",
    "downdelay",
    "primary",
    "primary_reselect",
    "fail_over_mac",
    "xmit_hash_policy",
    "xmit_hash_function",
    "packets_per_slave",
    "num_grat_arp",
    "num_unsol_na",
    "peer_notif_delay",
    "all_slaves_active",
    "arp_interval",
    "arp_ip_target",
    "ns_ip6_target",
    "link_watch_policy",
    "min_links",
    "mac",
    "queues",
    "prio",
    "ad_actor_port_prio",
    "lacp_rate",
    "lacp_active",
    "ad_select",
    "ad_actor_system",
    "ad_actor_sys_prio",
    "ad_user_port_key",
    "coupled_control",
    "lacp_fallback",
    "arp_validate",
    "arp_all_targets",
    "arp_missed_max",
    "tlb_dynamic_lb",
    "lp_interval",
    "resend_igmp",
    "use_carrier",
    "control_socket",
    "control_group",
];

/// The kernel bonding options that [`import_option_string`] and
/// [`import_ifupdown`] accept (besides `slaves`).
pub const KERNEL_KEYS: &[&str] = &[
    "mode",
    "miimon",
    "updelay",
    "downdelay",
    "primary",
    "primary_reselect",
    "fail_over_mac",
    "xmit_hash_policy",
    "packets_per_slave",
    "num_grat_arp",
    "num_unsol_na",
    "peer_notif_delay",
    "all_slaves_active",
    "arp_interval",
    "arp_ip_target",
    "ns_ip6_target",
    "min_links",
    "lacp_rate",
    "lacp_active",
    "ad_select",
    "ad_actor_system",
    "ad_actor_sys_prio",
    "ad_user_port_key",
    "coupled_control",
    "arp_validate",
    "arp_all_targets",
    "arp_missed_max",
    "tlb_dynamic_lb",
    "lp_interval",
    "resend_igmp",
    "use_carrier",
];

/// Modes with an active slave: `primary`, `primary_reselect`, `fail_over_mac`, `prio`.
const ACTIVE_SLAVE_MODES: &[Mode] = &[Mode::ActiveBackup, Mode::BalanceTlb, Mode::BalanceAlb];
/// Modes where the ARP / NS monitor may run (the kernel refuses it in 802.3ad, tlb, alb).
const ARP_MODES: &[Mode] = &[
    Mode::BalanceRr,
    Mode::ActiveBackup,
    Mode::BalanceXor,
    Mode::Broadcast,
];
/// The LACP mode.
const LACP_MODES: &[Mode] = &[Mode::Ieee8023ad];
/// The transmit load balancing modes.
const TLB_MODES: &[Mode] = &[Mode::BalanceTlb, Mode::BalanceAlb];
/// Round robin.
const RR_MODES: &[Mode] = &[Mode::BalanceRr];
/// Modes where the kernel turns `miimon = 100` on by itself when no monitor is set.
const KERNEL_MIIMON_MODES: &[Mode] = &[Mode::Ieee8023ad, Mode::BalanceTlb, Mode::BalanceAlb];

const IFNAME_VALID: &str = "an interface name of 1 to 15 bytes from A-Z a-z 0-9 _ . -";
const BOOL_VALID: &str = "true or false (also on/off, yes/no, 1/0)";
const MAC_VALID: &str = "a unicast MAC address such as 02:00:00:00:00:01";
const OPTIONS_VALID: &str =
    "key=value pairs separated by commas or spaces, e.g. mode=active-backup,miimon=100,primary=eno1";

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
/// gives the defaults and [`BondConfig::validate`] the rules.
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
}

/// What went wrong in a configuration. Every message is one line that names
/// the key, the value and what would be valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A key that is not an xbond option.
    #[error("unknown key `{key}`; {}", unknown_key_hint(.key, .suggestion))]
    UnknownKey {
        /// The key as written.
        key: String,
        /// The key probably meant, if one is close.
        suggestion: Option<String>,
    },
    /// A value that does not parse or is out of range.
    #[error("invalid value `{value}` for {key}; valid: {valid}")]
    BadValue {
        /// The key.
        key: String,
        /// The value as written.
        value: String,
        /// What would be valid.
        valid: String,
    },
    /// An option that the chosen mode does not use.
    #[error(
        "option {key} is not valid in mode {mode}; valid in: {}; remove `{key} = {value}` or change mode",
        mode_list(.valid_in)
    )]
    NotInMode {
        /// The option.
        key: String,
        /// Its value.
        value: String,
        /// The configured mode.
        mode: Mode,
        /// The modes that use the option.
        valid_in: &'static [Mode],
    },
    /// A required key is absent.
    #[error("missing key `{key}`: {expected}")]
    MissingKey {
        /// The key.
        key: String,
        /// What it should hold.
        expected: String,
    },
    /// Two settings that cannot be combined.
    #[error("`{key} = {value}` conflicts with `{with}`: {reason}")]
    Conflict {
        /// The key that was rejected.
        key: String,
        /// Its value.
        value: String,
        /// The other setting, as `key = value`.
        with: String,
        /// Why, and how to resolve it.
        reason: String,
    },
    /// A key names an interface that is not one of the slaves.
    #[error("{key} names `{value}`, which is not a slave of this bond; valid: {}", list_or_none(.slaves))]
    UnknownSlave {
        /// The key (`primary`, `prio`).
        key: String,
        /// The interface named.
        value: String,
        /// The configured slaves.
        slaves: Vec<String>,
    },
    /// An option given twice in an imported text.
    #[error("option {key} is given twice (`{first}` and `{second}`); give it once")]
    Duplicate {
        /// The option.
        key: String,
        /// The first value.
        first: String,
        /// The second value.
        second: String,
    },
    /// Text that is not in the expected shape.
    #[error("cannot parse `{text}`: expected {expected}")]
    Syntax {
        /// The offending text.
        text: String,
        /// What was expected.
        expected: String,
    },
    /// An error on one line of an imported file.
    #[error("line {line} `{text}`: {error}")]
    AtLine {
        /// 1-based line number.
        line: usize,
        /// The line's text.
        text: String,
        /// What is wrong with it.
        error: Box<ConfigError>,
    },
    /// No link monitor at all: the bond would never fail over.
    #[error(
        "miimon = 0 with no arp_interval means no link monitor, so the bond never fails over \
         (the classic miimon=0 trap, see the runbook); set miimon = 100, or set \
         link_watch_policy = \"none\" to keep monitoring off deliberately"
    )]
    NoLinkMonitor,
    /// MII and ARP monitors both on, with no rule for combining them.
    #[error(
        "miimon = {miimon} and arp_interval = {arp_interval} are both set, a mix the kernel treats \
         as error-prone; set link_watch_policy = \"all\" (a link is up only if both monitors say so) \
         or \"any\" (either is enough), or set miimon = 0 to use the ARP monitor alone"
    )]
    MonitorMix {
        /// The configured `miimon`.
        miimon: u32,
        /// The configured `arp_interval`.
        arp_interval: u32,
    },
    /// The file is not valid TOML.
    #[error("TOML syntax error: {0}")]
    Toml(String),
}

fn unknown_key_hint(key: &str, suggestion: &Option<String>) -> String {
    match suggestion {
        Some(s) => format!("did you mean `{s}`?"),
        // An ifupdown line: list the options in the form that file uses.
        None if key.starts_with("bond-") || key.starts_with("bond_") => format!(
            "valid: bond-slaves, {}",
            KERNEL_KEYS
                .iter()
                .map(|k| format!("bond-{}", k.replace('_', "-")))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None => format!("valid keys: {}", KEYS.join(", ")),
    }
}

fn mode_list(modes: &[Mode]) -> String {
    modes
        .iter()
        .map(|m| m.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "(no slaves configured)".to_string()
    } else {
        items.join(", ")
    }
}

/// The result of importing a kernel option string or an ifupdown stanza.
#[derive(Debug, Clone, PartialEq)]
pub struct Import {
    /// The imported configuration (validated, except for the keys in `needs`).
    pub config: BondConfig,
    /// Where the import differs from what the kernel would have done, one
    /// sentence each.
    pub warnings: Vec<String>,
    /// Keys the user must still fill in before the config validates (`slaves`).
    pub needs: Vec<String>,
}

impl Import {
    /// The import as a bond TOML file: warnings as `# ` comment lines at the
    /// top, then the keys in the flat format (see [`BondConfig::to_toml`]);
    /// keys listed in `needs` carry a `# fill in` comment.
    pub fn to_toml(&self) -> String {
        let mut out = String::new();
        for w in &self.warnings {
            out.push_str("# ");
            out.push_str(&w.replace(['\n', '\r'], " "));
            out.push('\n');
        }
        if !self.warnings.is_empty() {
            out.push('\n');
        }
        out.push_str(&self.config.write_toml(&self.needs));
        out
    }
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
            queues: 1,
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
            resend_igmp: 1,
            use_carrier: true,
            control_socket: None,
            control_group: None,
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

    /// The daemon's control socket: `control_socket`, or
    /// `/run/xbond/<name>.sock`.
    pub fn socket_path(&self) -> String {
        match &self.control_socket {
            Some(p) => p.clone(),
            None => format!("{SOCKET_DIR}/{}.sock", self.name),
        }
    }

    /// Parses and validates a bond's TOML file (flat, one bond per file, keys
    /// with the kernel's names in underscore form; see [`KEYS`]).
    pub fn from_toml_str(text: &str) -> Result<BondConfig, ConfigError> {
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::Toml(toml_error_text(text, &e)))?;
        let mut cfg = BondConfig::new("", Vec::new());
        for (key, value) in &table {
            set_key(&mut cfg, key, value)?;
        }
        if !table.contains_key("name") {
            return Err(missing_name());
        }
        if !table.contains_key("slaves") {
            return Err(missing_slaves());
        }
        if !table.contains_key("peer_name") {
            cfg.peer_name = default_peer_name(&cfg.name);
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// The configuration as a TOML file that [`BondConfig::from_toml_str`]
    /// reads back to an equal configuration: `name`, `slaves`, `mode` and
    /// `miimon` always, every other key only where it differs from the
    /// default.
    pub fn to_toml(&self) -> String {
        self.write_toml(&[])
    }

    /// Checks every rule; the first broken one is the error.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check(true)
    }

    fn check(&self, require_slaves: bool) -> Result<(), ConfigError> {
        self.check_names(require_slaves)?;
        self.check_ranges()?;
        self.check_values()?;
        self.check_modes()?;
        self.check_slave_refs()?;
        self.check_monitors()?;
        self.check_delays()?;
        Ok(())
    }

    fn check_names(&self, require_slaves: bool) -> Result<(), ConfigError> {
        if self.name.is_empty() {
            return Err(missing_name());
        }
        check_ifname("name", &self.name)?;
        if self.peer_name.len() > MAX_IFNAME_LEN && self.peer_name == default_peer_name(&self.name)
        {
            return Err(bad_with(
                "peer_name",
                &self.peer_name,
                format!(
                    "{IFNAME_VALID}; the default xb-<name> is too long for this name, set peer_name"
                ),
            ));
        }
        check_ifname("peer_name", &self.peer_name)?;
        if self.peer_name == self.name {
            return Err(ConfigError::Conflict {
                key: "peer_name".into(),
                value: clean(&self.peer_name),
                with: format!("name = {}", self.name),
                reason:
                    "the veth peer needs its own interface name; remove peer_name to use xb-<name>"
                        .into(),
            });
        }
        if self.slaves.is_empty() && require_slaves {
            return Err(missing_slaves());
        }
        if self.slaves.len() > MAX_SLAVES {
            return Err(bad_with(
                "slaves",
                render_strings(&self.slaves),
                format!("1 to {MAX_SLAVES} interfaces (got {})", self.slaves.len()),
            ));
        }
        let mut seen = BTreeSet::new();
        for s in &self.slaves {
            check_ifname("slaves", s)?;
            if s == &self.name || s == &self.peer_name {
                let other = if s == &self.name { "name" } else { "peer_name" };
                return Err(ConfigError::Conflict {
                    key: "slaves".into(),
                    value: render_strings(&self.slaves),
                    with: format!("{other} = {s}"),
                    reason: format!("{s} is the bond's own interface and cannot be its slave"),
                });
            }
            if !seen.insert(s.as_str()) {
                return Err(bad_with("slaves", s, "each interface listed once".into()));
            }
        }
        Ok(())
    }

    fn check_ranges(&self) -> Result<(), ConfigError> {
        let values: [(&str, u64); 15] = [
            ("miimon", self.miimon.into()),
            ("updelay", self.updelay.into()),
            ("downdelay", self.downdelay.into()),
            ("peer_notif_delay", self.peer_notif_delay.into()),
            ("arp_interval", self.arp_interval.into()),
            ("packets_per_slave", self.packets_per_slave.into()),
            ("min_links", self.min_links.into()),
            ("queues", self.queues.into()),
            ("ad_actor_sys_prio", self.ad_actor_sys_prio.into()),
            ("ad_user_port_key", self.ad_user_port_key.into()),
            ("arp_missed_max", self.arp_missed_max.into()),
            ("lp_interval", self.lp_interval.into()),
            ("resend_igmp", self.resend_igmp.into()),
            ("num_grat_arp", self.num_grat_arp.into()),
            ("num_unsol_na", self.num_unsol_na.into()),
        ];
        for (key, v) in values {
            if let Some((min, max, _)) = int_range(key) {
                if v < min || v > max {
                    return Err(bad(key, v.to_string()));
                }
            }
        }
        if !self.slaves.is_empty() && self.min_links as usize > self.slaves.len() {
            return Err(bad_with(
                "min_links",
                self.min_links.to_string(),
                format!(
                    "0 to {} (the number of slaves); more would keep the carrier down for good",
                    self.slaves.len()
                ),
            ));
        }
        Ok(())
    }

    fn check_values(&self) -> Result<(), ConfigError> {
        for (key, mac) in [("mac", self.mac), ("ad_actor_system", self.ad_actor_system)] {
            if let Some(m) = mac {
                if m.is_zero() || m.is_multicast() {
                    return Err(bad(key, m.to_string()));
                }
            }
        }
        if let Some(m) = self.lacp_fallback {
            if m != Mode::ActiveBackup {
                return Err(bad("lacp_fallback", m.as_str()));
            }
        }
        if let Some(p) = &self.control_socket {
            if !p.starts_with('/') || p.len() > MAX_SOCKET_PATH || p.contains('\0') {
                return Err(bad("control_socket", p));
            }
        }
        if let Some(g) = &self.control_group {
            let ok = !g.is_empty()
                && g.len() <= 32
                && g.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
            if !ok {
                return Err(bad("control_group", g));
            }
        }
        check_targets("arp_ip_target", &self.arp_ip_target, |a| {
            a.is_unspecified() || a.is_broadcast() || a.is_multicast()
        })?;
        check_targets("ns_ip6_target", &self.ns_ip6_target, |a| {
            a.is_unspecified() || a.is_loopback() || a.is_multicast()
        })?;
        Ok(())
    }

    fn check_modes(&self) -> Result<(), ConfigError> {
        let d = BondConfig::new(&self.name, Vec::new());
        let rules: [(&str, bool, String, &'static [Mode]); 21] = [
            (
                "primary",
                self.primary.is_some(),
                self.primary.clone().unwrap_or_default(),
                ACTIVE_SLAVE_MODES,
            ),
            (
                "primary_reselect",
                self.primary_reselect != d.primary_reselect,
                self.primary_reselect.to_string(),
                ACTIVE_SLAVE_MODES,
            ),
            (
                "fail_over_mac",
                self.fail_over_mac != d.fail_over_mac,
                self.fail_over_mac.to_string(),
                ACTIVE_SLAVE_MODES,
            ),
            (
                "prio",
                !self.prio.is_empty(),
                render_prio(&self.prio),
                ACTIVE_SLAVE_MODES,
            ),
            (
                "packets_per_slave",
                self.packets_per_slave != d.packets_per_slave,
                self.packets_per_slave.to_string(),
                RR_MODES,
            ),
            (
                "lacp_rate",
                self.lacp_rate != d.lacp_rate,
                self.lacp_rate.to_string(),
                LACP_MODES,
            ),
            (
                "lacp_active",
                self.lacp_active != d.lacp_active,
                self.lacp_active.to_string(),
                LACP_MODES,
            ),
            (
                "ad_select",
                self.ad_select != d.ad_select,
                self.ad_select.to_string(),
                LACP_MODES,
            ),
            (
                "ad_actor_system",
                self.ad_actor_system.is_some(),
                self.ad_actor_system
                    .map(|m| m.to_string())
                    .unwrap_or_default(),
                LACP_MODES,
            ),
            (
                "ad_actor_sys_prio",
                self.ad_actor_sys_prio != d.ad_actor_sys_prio,
                self.ad_actor_sys_prio.to_string(),
                LACP_MODES,
            ),
            (
                "ad_user_port_key",
                self.ad_user_port_key != d.ad_user_port_key,
                self.ad_user_port_key.to_string(),
                LACP_MODES,
            ),
            (
                "coupled_control",
                self.coupled_control != d.coupled_control,
                self.coupled_control.to_string(),
                LACP_MODES,
            ),
            (
                "ad_actor_port_prio",
                !self.ad_actor_port_prio.is_empty(),
                render_prio(&self.ad_actor_port_prio),
                LACP_MODES,
            ),
            (
                "lacp_fallback",
                self.lacp_fallback.is_some(),
                self.lacp_fallback
                    .map(|m| m.to_string())
                    .unwrap_or_default(),
                LACP_MODES,
            ),
            (
                "tlb_dynamic_lb",
                self.tlb_dynamic_lb != d.tlb_dynamic_lb,
                self.tlb_dynamic_lb.to_string(),
                TLB_MODES,
            ),
            (
                "lp_interval",
                self.lp_interval != d.lp_interval,
                self.lp_interval.to_string(),
                TLB_MODES,
            ),
            (
                "arp_interval",
                self.arp_interval != 0,
                self.arp_interval.to_string(),
                ARP_MODES,
            ),
            (
                "arp_ip_target",
                !self.arp_ip_target.is_empty(),
                render_display_list(&self.arp_ip_target),
                ARP_MODES,
            ),
            (
                "ns_ip6_target",
                !self.ns_ip6_target.is_empty(),
                render_display_list(&self.ns_ip6_target),
                ARP_MODES,
            ),
            (
                "arp_validate",
                self.arp_validate != d.arp_validate,
                self.arp_validate.to_string(),
                ARP_MODES,
            ),
            (
                "arp_missed_max",
                self.arp_missed_max != d.arp_missed_max,
                self.arp_missed_max.to_string(),
                ARP_MODES,
            ),
        ];
        for (key, set, value, modes) in rules {
            if set && !modes.contains(&self.mode) {
                return Err(ConfigError::NotInMode {
                    key: key.into(),
                    value: clean(&value),
                    mode: self.mode,
                    valid_in: modes,
                });
            }
        }
        if self.arp_all_targets != d.arp_all_targets && !ARP_MODES.contains(&self.mode) {
            return Err(ConfigError::NotInMode {
                key: "arp_all_targets".into(),
                value: self.arp_all_targets.to_string(),
                mode: self.mode,
                valid_in: ARP_MODES,
            });
        }
        Ok(())
    }

    fn check_slave_refs(&self) -> Result<(), ConfigError> {
        let names = self
            .primary
            .iter()
            .map(|p| ("primary", p))
            .chain(self.prio.keys().map(|k| ("prio", k)))
            .chain(
                self.ad_actor_port_prio
                    .keys()
                    .map(|k| ("ad_actor_port_prio", k)),
            );
        for (key, slave) in names {
            if self.slaves.is_empty() {
                // An import that still needs its slaves: check the name only.
                check_ifname(key, slave)?;
            } else if !self.slaves.contains(slave) {
                return Err(ConfigError::UnknownSlave {
                    key: key.into(),
                    value: clean(slave),
                    slaves: self.slaves.clone(),
                });
            }
        }
        Ok(())
    }

    fn check_monitors(&self) -> Result<(), ConfigError> {
        let targets = self.arp_ip_target.len() + self.ns_ip6_target.len();
        if self.monitoring_off() && (self.miimon > 0 || self.arp_interval > 0) {
            let (k, v) = if self.miimon > 0 {
                ("miimon", self.miimon)
            } else {
                ("arp_interval", self.arp_interval)
            };
            return Err(ConfigError::Conflict {
                key: "link_watch_policy".into(),
                value: "\"none\"".into(),
                with: format!("{k} = {v}"),
                reason: format!(
                    "\"none\" turns every link monitor off; set {k} = 0 as well, or use \"all\" or \"any\""
                ),
            });
        }
        if self.arp_interval > 0 && targets == 0 {
            return Err(ConfigError::MissingKey {
                key: "arp_ip_target".into(),
                expected: format!(
                    "arp_interval = {} needs at least one arp_ip_target or ns_ip6_target to probe, \
                     e.g. arp_ip_target = [\"192.0.2.1\"]",
                    self.arp_interval
                ),
            });
        }
        if self.arp_interval == 0 && targets > 0 {
            return Err(ConfigError::MissingKey {
                key: "arp_interval".into(),
                expected: "arp_ip_target / ns_ip6_target need a probe interval in ms, \
                           e.g. arp_interval = 1000 (or remove the targets)"
                    .into(),
            });
        }
        if self.miimon == 0 && self.arp_interval == 0 && !self.monitoring_off() {
            return Err(ConfigError::NoLinkMonitor);
        }
        if self.miimon > 0 && self.arp_interval > 0 && self.link_watch_policy.is_none() {
            return Err(ConfigError::MonitorMix {
                miimon: self.miimon,
                arp_interval: self.arp_interval,
            });
        }
        Ok(())
    }

    fn check_delays(&self) -> Result<(), ConfigError> {
        let m = self.miimon;
        for (key, v) in [
            ("updelay", self.updelay),
            ("downdelay", self.downdelay),
            ("peer_notif_delay", self.peer_notif_delay),
        ] {
            if v == 0 {
                continue;
            }
            if m == 0 {
                return Err(ConfigError::Conflict {
                    key: key.into(),
                    value: v.to_string(),
                    with: "miimon = 0".into(),
                    reason: format!(
                        "{key} counts miimon polls, so it needs miimon > 0; set miimon = 100 or {key} = 0"
                    ),
                });
            }
            if v % m != 0 {
                let lower = v / m * m;
                let upper = u64::from(lower) + u64::from(m);
                return Err(bad_with(
                    key,
                    v.to_string(),
                    format!(
                        "a multiple of miimon ({m} ms); nearest: {lower} or {upper} \
                         (the kernel would round down to {lower})"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Writes the TOML file; keys in `fill_in` get a `# fill in` comment.
    fn write_toml(&self, fill_in: &[String]) -> String {
        let d = BondConfig::new(&self.name, Vec::new());
        let mut w = TomlWriter {
            out: String::new(),
            fill_in,
        };
        w.line("name", toml_str(&self.name));
        w.line("slaves", render_strings(&self.slaves));
        w.line("mode", toml_str(self.mode.as_str()));
        w.line("miimon", self.miimon.to_string());
        if self.peer_name != d.peer_name {
            w.line("peer_name", toml_str(&self.peer_name));
        }
        w.num("updelay", self.updelay, d.updelay);
        w.num("downdelay", self.downdelay, d.downdelay);
        if let Some(p) = &self.primary {
            w.line("primary", toml_str(p));
        }
        w.word(
            "primary_reselect",
            self.primary_reselect,
            d.primary_reselect,
        );
        w.word("fail_over_mac", self.fail_over_mac, d.fail_over_mac);
        w.word(
            "xmit_hash_policy",
            self.xmit_hash_policy,
            d.xmit_hash_policy,
        );
        w.word(
            "xmit_hash_function",
            self.xmit_hash_function,
            d.xmit_hash_function,
        );
        w.num(
            "packets_per_slave",
            self.packets_per_slave,
            d.packets_per_slave,
        );
        w.num("num_grat_arp", self.num_grat_arp, d.num_grat_arp);
        w.num("num_unsol_na", self.num_unsol_na, d.num_unsol_na);
        w.num(
            "peer_notif_delay",
            self.peer_notif_delay,
            d.peer_notif_delay,
        );
        w.num(
            "all_slaves_active",
            self.all_slaves_active,
            d.all_slaves_active,
        );
        w.num("arp_interval", self.arp_interval, d.arp_interval);
        if !self.arp_ip_target.is_empty() {
            w.line("arp_ip_target", render_display_list(&self.arp_ip_target));
        }
        if !self.ns_ip6_target.is_empty() {
            w.line("ns_ip6_target", render_display_list(&self.ns_ip6_target));
        }
        if let Some(p) = self.link_watch_policy {
            w.line("link_watch_policy", toml_str(p.as_str()));
        }
        w.num("min_links", self.min_links, d.min_links);
        if let Some(m) = self.mac {
            w.line("mac", toml_str(&m.to_string()));
        }
        w.num("queues", self.queues, d.queues);
        w.word("lacp_rate", self.lacp_rate, d.lacp_rate);
        w.num("lacp_active", self.lacp_active, d.lacp_active);
        w.word("ad_select", self.ad_select, d.ad_select);
        if let Some(m) = self.ad_actor_system {
            w.line("ad_actor_system", toml_str(&m.to_string()));
        }
        w.num(
            "ad_actor_sys_prio",
            self.ad_actor_sys_prio,
            d.ad_actor_sys_prio,
        );
        w.num(
            "ad_user_port_key",
            self.ad_user_port_key,
            d.ad_user_port_key,
        );
        w.num("coupled_control", self.coupled_control, d.coupled_control);
        if let Some(m) = self.lacp_fallback {
            w.line("lacp_fallback", toml_str(m.as_str()));
        }
        w.word("arp_validate", self.arp_validate, d.arp_validate);
        w.word("arp_all_targets", self.arp_all_targets, d.arp_all_targets);
        w.num("arp_missed_max", self.arp_missed_max, d.arp_missed_max);
        w.num("tlb_dynamic_lb", self.tlb_dynamic_lb, d.tlb_dynamic_lb);
        w.num("lp_interval", self.lp_interval, d.lp_interval);
        w.num("resend_igmp", self.resend_igmp, d.resend_igmp);
        w.num("use_carrier", self.use_carrier, d.use_carrier);
        if let Some(p) = &self.control_socket {
            w.line("control_socket", toml_str(p));
        }
        if let Some(g) = &self.control_group {
            w.line("control_group", toml_str(g));
        }
        for (table, entries) in [
            ("prio", render_table(&self.prio)),
            ("ad_actor_port_prio", render_table(&self.ad_actor_port_prio)),
        ] {
            if !entries.is_empty() {
                w.out.push_str(&format!("\n[{table}]\n{entries}"));
            }
        }
        w.out
    }
}

/// Accumulates TOML lines.
struct TomlWriter<'a> {
    out: String,
    fill_in: &'a [String],
}

impl TomlWriter<'_> {
    fn line(&mut self, key: &str, value: String) {
        self.out.push_str(key);
        self.out.push_str(" = ");
        self.out.push_str(&value);
        if self.fill_in.iter().any(|k| k == key) {
            self.out.push_str("  # fill in");
        }
        self.out.push('\n');
    }

    /// A number or boolean, written only if not the default.
    fn num<T: PartialEq + fmt::Display>(&mut self, key: &str, v: T, default: T) {
        if v != default {
            self.line(key, v.to_string());
        }
    }

    /// An enum, written as its string only if not the default.
    fn word<T: PartialEq + fmt::Display>(&mut self, key: &str, v: T, default: T) {
        if v != default {
            self.line(key, toml_str(&v.to_string()));
        }
    }
}

fn default_peer_name(name: &str) -> String {
    format!("xb-{name}")
}

fn missing_name() -> ConfigError {
    ConfigError::MissingKey {
        key: "name".into(),
        expected: "the bond interface xbond creates, e.g. name = \"bond0\"".into(),
    }
}

fn missing_slaves() -> ConfigError {
    ConfigError::MissingKey {
        key: "slaves".into(),
        expected: format!("1 to {MAX_SLAVES} slave interfaces, e.g. slaves = [\"eno1\", \"eno2\"]"),
    }
}

// ---------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------

/// Integer options: (min, max, unit). One table for parsing and validation.
fn int_range(key: &str) -> Option<(u64, u64, &'static str)> {
    Some(match key {
        "miimon" | "updelay" | "downdelay" | "arp_interval" => (0, INT_MAX, " ms"),
        "peer_notif_delay" => (0, 300_000, " ms"),
        "packets_per_slave" => (0, 65_535, ""),
        "min_links" => (0, INT_MAX, ""),
        "num_grat_arp" | "num_unsol_na" | "resend_igmp" => (0, 255, ""),
        "arp_missed_max" => (1, 255, ""),
        "ad_actor_sys_prio" => (1, 65_535, ""),
        "ad_user_port_key" => (0, 1023, ""),
        "lp_interval" => (1, INT_MAX, " s"),
        "queues" => (1, u64::from(MAX_QUEUES), ""),
        _ => return None,
    })
}

/// What is valid for `key`, for error messages.
fn valid_for(key: &str) -> String {
    if let Some((min, max, unit)) = int_range(key) {
        return format!("an integer from {min} to {max}{unit}");
    }
    match key {
        "name" | "peer_name" | "primary" => IFNAME_VALID.into(),
        "slaves" => {
            format!("a list of 1 to {MAX_SLAVES} interface names, e.g. [\"eno1\", \"eno2\"]")
        }
        "mode" => enum_valid::<Mode>(),
        "primary_reselect" => enum_valid::<PrimaryReselect>(),
        "fail_over_mac" => enum_valid::<FailOverMac>(),
        "xmit_hash_policy" => enum_valid::<HashPolicy>(),
        "xmit_hash_function" => enum_valid::<HashFunction>(),
        "link_watch_policy" => enum_valid::<LinkWatchPolicy>(),
        "lacp_rate" => enum_valid::<LacpRate>(),
        "ad_select" => enum_valid::<AdSelect>(),
        "arp_validate" => enum_valid::<ArpValidate>(),
        "arp_all_targets" => enum_valid::<ArpAllTargets>(),
        "all_slaves_active" | "lacp_active" | "coupled_control" | "tlb_dynamic_lb"
        | "use_carrier" => BOOL_VALID.into(),
        "mac" | "ad_actor_system" => MAC_VALID.into(),
        "arp_ip_target" => {
            format!("up to {MAX_TARGETS} distinct unicast IPv4 addresses, e.g. [\"192.0.2.1\"]")
        }
        "ns_ip6_target" => {
            format!("up to {MAX_TARGETS} distinct unicast IPv6 addresses, e.g. [\"2001:db8::1\"]")
        }
        "lacp_fallback" => "\"active-backup\", or \"off\" for no fallback".into(),
        "control_socket" => format!(
            "an absolute path of at most {MAX_SOCKET_PATH} bytes, e.g. \"/run/xbond/bond0.sock\""
        ),
        "control_group" => {
            "a group name of up to 32 letters, digits, _ - . (its members may read the status)"
                .into()
        }
        "prio" => "a table of slave = integer priority, e.g. [prio] then eno1 = 10".into(),
        "ad_actor_port_prio" => {
            "a table of slave = LACP port priority 0-65535 (lower is preferred), e.g. [ad_actor_port_prio] then eno1 = 100".into()
        }
        _ => format!("one of the keys: {}", KEYS.join(", ")),
    }
}

/// The names of an enum's values, plus the numbers the kernel accepts.
fn enum_valid<T: FromStr<Err = BadValue>>() -> String {
    match "".parse::<T>() {
        Err(e) => {
            let names: Vec<&str> = e.valid.split_whitespace().collect();
            format!(
                "{} (or 0-{})",
                names.join(", "),
                names.len().saturating_sub(1)
            )
        }
        Ok(_) => String::new(),
    }
}

/// Makes a value safe for a one-line message: control characters escaped,
/// long values cut.
fn clean(s: &str) -> String {
    const MAX: usize = 100;
    let mut out: String = if s.chars().any(char::is_control) {
        s.escape_debug().to_string()
    } else {
        s.to_string()
    };
    if out.chars().count() > MAX {
        out = out.chars().take(MAX).collect();
        out.push_str("...");
    }
    out
}

fn bad(key: &str, value: impl AsRef<str>) -> ConfigError {
    bad_with(key, value, valid_for(key))
}

fn bad_with(key: &str, value: impl AsRef<str>, valid: String) -> ConfigError {
    ConfigError::BadValue {
        key: clean(key),
        value: clean(value.as_ref()),
        valid,
    }
}

fn check_ifname(key: &str, name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_IFNAME_LEN
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(bad_with(key, name, IFNAME_VALID.into()))
    }
}

fn check_targets<A: PartialEq + fmt::Display>(
    key: &str,
    targets: &[A],
    unusable: impl Fn(&A) -> bool,
) -> Result<(), ConfigError> {
    if targets.len() > MAX_TARGETS {
        return Err(bad(key, render_display_list(targets)));
    }
    for (i, t) in targets.iter().enumerate() {
        if unusable(t) || targets[..i].contains(t) {
            return Err(bad(key, t.to_string()));
        }
    }
    Ok(())
}

/// A TOML value as the user wrote it, for messages.
fn render(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => render_inner(other),
    }
}

fn render_inner(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => toml_str(s),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Datetime(d) => d.to_string(),
        toml::Value::Array(a) => format!(
            "[{}]",
            a.iter().map(render_inner).collect::<Vec<_>>().join(", ")
        ),
        toml::Value::Table(t) => format!(
            "{{ {} }}",
            t.iter()
                .map(|(k, v)| format!("{} = {}", toml_key(k), render_inner(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn render_strings(items: &[String]) -> String {
    format!(
        "[{}]",
        items
            .iter()
            .map(|s| toml_str(s))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn render_display_list<T: fmt::Display>(items: &[T]) -> String {
    format!(
        "[{}]",
        items
            .iter()
            .map(|s| toml_str(&s.to_string()))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn render_table<V: std::fmt::Display>(t: &BTreeMap<String, V>) -> String {
    t.iter()
        .map(|(k, v)| format!("{} = {v}\n", toml_key(k)))
        .collect()
}

fn render_prio<V: std::fmt::Display>(prio: &BTreeMap<String, V>) -> String {
    format!(
        "{{ {} }}",
        prio.iter()
            .map(|(k, v)| format!("{} = {v}", toml_key(k)))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// A TOML basic string.
fn toml_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A TOML key: bare if possible, quoted otherwise.
fn toml_key(k: &str) -> String {
    if !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        k.to_string()
    } else {
        toml_str(k)
    }
}

fn toml_error_text(text: &str, e: &toml::de::Error) -> String {
    let msg = e.message().trim().replace(['\n', '\r'], " ");
    match e.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}: {msg}")
        }
        None => msg,
    }
}

fn get_str(key: &str, v: &toml::Value) -> Result<String, ConfigError> {
    match v {
        toml::Value::String(s) => Ok(s.clone()),
        other => Err(bad(key, render(other))),
    }
}

fn get_int<T: TryFrom<u64>>(key: &str, v: &toml::Value) -> Result<T, ConfigError> {
    let (min, max, _) = int_range(key).unwrap_or((0, u64::MAX, ""));
    let n = match v {
        toml::Value::Integer(i) => u64::try_from(*i).ok(),
        toml::Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    match n {
        Some(n) if (min..=max).contains(&n) => T::try_from(n).map_err(|_| bad(key, render(v))),
        _ => Err(bad(key, render(v))),
    }
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "on" | "true" | "yes" => Some(true),
        "0" | "off" | "false" | "no" => Some(false),
        _ => None,
    }
}

fn get_bool(key: &str, v: &toml::Value) -> Result<bool, ConfigError> {
    let b = match v {
        toml::Value::Boolean(b) => Some(*b),
        toml::Value::Integer(0) => Some(false),
        toml::Value::Integer(1) => Some(true),
        toml::Value::String(s) => parse_bool(s),
        _ => None,
    };
    b.ok_or_else(|| bad(key, render(v)))
}

fn get_enum<T: FromStr<Err = BadValue>>(key: &str, v: &toml::Value) -> Result<T, ConfigError> {
    let text = match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        other => return Err(bad(key, render(other))),
    };
    text.parse().map_err(|_: BadValue| bad(key, render(v)))
}

fn get_mac(key: &str, v: &toml::Value) -> Result<MacAddr, ConfigError> {
    let s = get_str(key, v)?;
    s.parse().map_err(|_: BadValue| bad(key, &s))
}

/// Items of a list value: a TOML array of strings, or one string separated
/// by commas or whitespace.
fn get_items(key: &str, v: &toml::Value) -> Result<Vec<String>, ConfigError> {
    match v {
        toml::Value::Array(a) => a
            .iter()
            .map(|item| match item {
                toml::Value::String(s) => Ok(s.trim().to_string()),
                other => Err(bad(key, render(other))),
            })
            .collect(),
        toml::Value::String(s) => Ok(split_items(s).map(str::to_string).collect()),
        other => Err(bad(key, render(other))),
    }
}

fn split_items(s: &str) -> impl Iterator<Item = &str> {
    s.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|t| !t.is_empty())
}

fn get_addrs<A: FromStr>(key: &str, v: &toml::Value) -> Result<Vec<A>, ConfigError> {
    get_items(key, v)?
        .iter()
        .map(|s| s.parse::<A>().map_err(|_| bad(key, s)))
        .collect()
}

fn get_lacp_fallback(key: &str, v: &toml::Value) -> Result<Option<Mode>, ConfigError> {
    let off = match v {
        toml::Value::Boolean(false) => true,
        toml::Value::String(s) => matches!(
            s.trim().to_ascii_lowercase().as_str(),
            "off" | "none" | "no" | "false"
        ),
        _ => false,
    };
    if off {
        return Ok(None);
    }
    match get_enum::<Mode>(key, v) {
        Ok(Mode::ActiveBackup) => Ok(Some(Mode::ActiveBackup)),
        _ => Err(bad(key, render(v))),
    }
}

fn get_prio(key: &str, v: &toml::Value) -> Result<BTreeMap<String, i32>, ConfigError> {
    let toml::Value::Table(t) = v else {
        return Err(bad(key, render(v)));
    };
    let mut out = BTreeMap::new();
    for (slave, p) in t {
        let n = match p {
            toml::Value::Integer(i) => i32::try_from(*i).ok(),
            toml::Value::String(s) => s.trim().parse::<i32>().ok(),
            _ => None,
        };
        let n = n.ok_or_else(|| {
            bad_with(
                &format!("prio.{slave}"),
                render(p),
                format!("an integer from {} to {}", i32::MIN, i32::MAX),
            )
        })?;
        out.insert(slave.clone(), n);
    }
    Ok(out)
}

/// Sets one key from a TOML value (strings are accepted for every kind).
fn set_key(c: &mut BondConfig, key: &str, v: &toml::Value) -> Result<(), ConfigError> {
    match key {
        "name" => c.name = get_str(key, v)?,
        "peer_name" => c.peer_name = get_str(key, v)?,
        "slaves" => c.slaves = get_items(key, v)?,
        "mode" => c.mode = get_enum(key, v)?,
        "miimon" => c.miimon = get_int(key, v)?,
        "updelay" => c.updelay = get_int(key, v)?,
        "downdelay" => c.downdelay = get_int(key, v)?,
        "primary" => c.primary = Some(get_str(key, v)?),
        "primary_reselect" => c.primary_reselect = get_enum(key, v)?,
        "fail_over_mac" => c.fail_over_mac = get_enum(key, v)?,
        "xmit_hash_policy" => c.xmit_hash_policy = get_enum(key, v)?,
        "xmit_hash_function" => c.xmit_hash_function = get_enum(key, v)?,
        "packets_per_slave" => c.packets_per_slave = get_int(key, v)?,
        "num_grat_arp" => c.num_grat_arp = get_int(key, v)?,
        "num_unsol_na" => c.num_unsol_na = get_int(key, v)?,
        "peer_notif_delay" => c.peer_notif_delay = get_int(key, v)?,
        "all_slaves_active" => c.all_slaves_active = get_bool(key, v)?,
        "arp_interval" => c.arp_interval = get_int(key, v)?,
        "arp_ip_target" => c.arp_ip_target = get_addrs(key, v)?,
        "ns_ip6_target" => c.ns_ip6_target = get_addrs(key, v)?,
        "link_watch_policy" => c.link_watch_policy = Some(get_enum(key, v)?),
        "min_links" => c.min_links = get_int(key, v)?,
        "mac" => c.mac = Some(get_mac(key, v)?),
        "queues" => c.queues = get_int(key, v)?,
        "prio" => c.prio = get_prio(key, v)?,
        "ad_actor_port_prio" => {
            c.ad_actor_port_prio = get_prio(key, v)?
                .into_iter()
                .map(|(slave, p)| {
                    u16::try_from(p).map(|p| (slave.clone(), p)).map_err(|_| {
                        bad_with(
                            &format!("ad_actor_port_prio.{slave}"),
                            p.to_string(),
                            "an integer from 0 to 65535".to_string(),
                        )
                    })
                })
                .collect::<Result<_, _>>()?
        }
        "lacp_rate" => c.lacp_rate = get_enum(key, v)?,
        "lacp_active" => c.lacp_active = get_bool(key, v)?,
        "ad_select" => c.ad_select = get_enum(key, v)?,
        "ad_actor_system" => c.ad_actor_system = Some(get_mac(key, v)?),
        "ad_actor_sys_prio" => c.ad_actor_sys_prio = get_int(key, v)?,
        "ad_user_port_key" => c.ad_user_port_key = get_int(key, v)?,
        "coupled_control" => c.coupled_control = get_bool(key, v)?,
        "lacp_fallback" => c.lacp_fallback = get_lacp_fallback(key, v)?,
        "arp_validate" => c.arp_validate = get_enum(key, v)?,
        "arp_all_targets" => c.arp_all_targets = get_enum(key, v)?,
        "arp_missed_max" => c.arp_missed_max = get_int(key, v)?,
        "tlb_dynamic_lb" => c.tlb_dynamic_lb = get_bool(key, v)?,
        "lp_interval" => c.lp_interval = get_int(key, v)?,
        "resend_igmp" => c.resend_igmp = get_int(key, v)?,
        "use_carrier" => c.use_carrier = get_bool(key, v)?,
        "control_socket" => c.control_socket = Some(get_str(key, v)?),
        "control_group" => c.control_group = Some(get_str(key, v)?),
        _ => {
            return Err(ConfigError::UnknownKey {
                key: clean(key),
                suggestion: suggest(key, KEYS),
            })
        }
    }
    Ok(())
}

/// The key the user probably meant: the underscore form of a dash form, a
/// known synonym, or a near spelling.
fn suggest(key: &str, candidates: &[&str]) -> Option<String> {
    if key.len() > 64 {
        return None;
    }
    let lower = key.trim().to_ascii_lowercase().replace('-', "_");
    let bare = lower.strip_prefix("bond_").unwrap_or(&lower);
    let bare = match bare {
        "slave" | "ports" | "members" | "interfaces" | "devices" => "slaves",
        "ad_sys_priority" => "ad_actor_sys_prio",
        "ad_sys_mac_addr" => "ad_actor_system",
        "hash_policy" | "xmit_policy" | "transmit_hash_policy" => "xmit_hash_policy",
        other => other,
    };
    if candidates.contains(&bare) {
        return Some(bare.to_string());
    }
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let d = edit_distance(bare, c);
        let better = match best {
            Some((bd, _)) => d < bd,
            None => true,
        };
        if d <= (c.len() / 4).max(1) && better {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c.to_string())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = Vec::with_capacity(b.len() + 1);
        cur.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let subst = prev[j] + usize::from(ca != *cb);
            let delete = prev[j + 1] + 1;
            let insert = cur[j] + 1;
            cur.push(subst.min(delete).min(insert));
        }
        prev = cur;
    }
    prev.last().copied().unwrap_or(0)
}

// ---------------------------------------------------------------------------
// Import
// ---------------------------------------------------------------------------

/// Builds a config from kernel options one at a time, keeping what the
/// kernel would have done in mind.
struct Importer {
    cfg: BondConfig,
    /// Option -> (order given, value as given), for duplicates and "last one wins".
    seen: BTreeMap<String, (usize, String)>,
    warnings: Vec<String>,
}

impl Importer {
    fn new(name: &str) -> Importer {
        Importer {
            cfg: BondConfig::new(name, Vec::new()),
            seen: BTreeMap::new(),
            warnings: Vec::new(),
        }
    }

    /// One kernel option, underscore form.
    fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let value = value.trim();
        let ignored = match key {
            "max_bonds" => Some("is a module parameter; ignored (xbond runs one daemon per bond)"),
            "tx_queues" => Some("ignored; xbond's `queues` sets the queues and worker threads"),
            "active_slave" => Some("is run-time state; ignored (set primary to prefer a slave)"),
            "queue_id" => Some("is a per-slave setting; ignored"),
            "give_a_chance" => Some("(ifenslave) has no xbond equivalent; ignored"),
            "lacp_bypass_allow" => Some(
                "has no exact xbond equivalent; ignored (see lacp_fallback = \"active-backup\")",
            ),
            _ => None,
        };
        if let Some(why) = ignored {
            self.warnings.push(format!("{key}={} {why}", clean(value)));
            return Ok(());
        }
        let known = key == "slaves" || KERNEL_KEYS.contains(&key);
        if !known {
            if KEYS.contains(&key) {
                return Err(ConfigError::Syntax {
                    text: clean(&format!("{key}={value}")),
                    expected: format!(
                        "a kernel bonding option; {key} is an xbond key, set it in the TOML file"
                    ),
                });
            }
            return Err(ConfigError::UnknownKey {
                key: clean(key),
                suggestion: suggest(key, KERNEL_KEYS),
            });
        }
        if value.is_empty() {
            return Err(bad(key, value));
        }
        match key {
            "slaves" => {
                for item in split_items(value) {
                    edit_list(&mut self.cfg.slaves, key, item, |s| {
                        check_ifname(key, s).map(|()| s.to_string())
                    })?;
                }
            }
            "arp_ip_target" => {
                for item in split_items(value) {
                    edit_list(&mut self.cfg.arp_ip_target, key, item, |s| {
                        s.parse::<Ipv4Addr>().map_err(|_| bad(key, s))
                    })?;
                }
            }
            "ns_ip6_target" => {
                for item in split_items(value) {
                    edit_list(&mut self.cfg.ns_ip6_target, key, item, |s| {
                        s.parse::<Ipv6Addr>().map_err(|_| bad(key, s))
                    })?;
                }
            }
            _ => {
                if let Some((_, first)) = self.seen.get(key) {
                    return Err(ConfigError::Duplicate {
                        key: key.into(),
                        first: clean(first),
                        second: clean(value),
                    });
                }
                set_key(&mut self.cfg, key, &toml::Value::String(value.to_string()))?;
                let order = self.seen.len();
                self.seen
                    .insert(key.to_string(), (order, value.to_string()));
            }
        }
        Ok(())
    }

    /// Adds a slave named by a `bond-master` line, once.
    fn add_slave(&mut self, name: &str) {
        if !self.cfg.slaves.iter().any(|s| s == name) {
            self.cfg.slaves.push(name.to_string());
        }
    }

    /// Applies what the kernel would have done with the monitors, then
    /// validates everything but the keys still to fill in.
    fn finish(mut self) -> Result<Import, ConfigError> {
        let miimon_at = self.seen.get("miimon").map(|(o, _)| *o);
        let arp_at = self.seen.get("arp_interval").map(|(o, _)| *o);
        let c = &mut self.cfg;
        // num_grat_arp and num_unsol_na are one kernel value: setting either sets both.
        match (
            self.seen.get("num_grat_arp").map(|(o, _)| *o),
            self.seen.get("num_unsol_na").map(|(o, _)| *o),
        ) {
            (Some(_), None) => c.num_unsol_na = c.num_grat_arp,
            (None, Some(_)) => c.num_grat_arp = c.num_unsol_na,
            (Some(g), Some(n)) if c.num_grat_arp != c.num_unsol_na => {
                let v = if g > n {
                    c.num_grat_arp
                } else {
                    c.num_unsol_na
                };
                self.warnings.push(format!(
                    "num_grat_arp={} and num_unsol_na={} are one kernel setting; the last one given wins, \
                     so xbond uses {v} for both",
                    c.num_grat_arp, c.num_unsol_na
                ));
                c.num_grat_arp = v;
                c.num_unsol_na = v;
            }
            _ => {}
        }
        if let (Some(m), Some(a)) = (miimon_at, arp_at) {
            if c.miimon > 0 && c.arp_interval > 0 {
                // The kernel keeps only the monitor set last.
                if m > a {
                    self.warnings.push(format!(
                        "miimon={} and arp_interval={} both given; the kernel keeps only the one set last, \
                         so xbond uses miimon and drops the ARP monitor",
                        c.miimon, c.arp_interval
                    ));
                    c.arp_interval = 0;
                    c.arp_ip_target.clear();
                    c.ns_ip6_target.clear();
                } else {
                    self.warnings.push(format!(
                        "miimon={} and arp_interval={} both given; the kernel keeps only the one set last, \
                         so xbond uses the ARP monitor and sets miimon = 0",
                        c.miimon, c.arp_interval
                    ));
                    c.miimon = 0;
                }
            }
        }
        match miimon_at {
            Some(_) => {
                if c.miimon == 0 && c.arp_interval == 0 {
                    c.miimon = DEFAULT_MIIMON_MS;
                    self.warnings.push(
                        "imported miimon=0 disables failover; xbond uses miimon = 100 \
                         (set miimon = 0 and link_watch_policy = \"none\" to keep it)"
                            .to_string(),
                    );
                }
            }
            None => {
                if c.arp_interval > 0 {
                    // The ARP monitor is the only one, as on the kernel bond.
                    c.miimon = 0;
                } else if !KERNEL_MIIMON_MODES.contains(&c.mode) {
                    self.warnings.push(format!(
                        "no miimon in the imported options: the kernel default would have been miimon=0 \
                         in mode {}, which never fails over; xbond uses miimon = {DEFAULT_MIIMON_MS}",
                        c.mode
                    ));
                }
            }
        }
        let needs: Vec<String> = if c.slaves.is_empty() {
            vec!["slaves".to_string()]
        } else {
            Vec::new()
        };
        c.check(needs.is_empty())?;
        Ok(Import {
            config: self.cfg,
            warnings: self.warnings,
            needs,
        })
    }
}

/// `item`, `+item` adds; `-item` removes (the sysfs forms).
fn edit_list<T: PartialEq>(
    list: &mut Vec<T>,
    key: &str,
    item: &str,
    parse: impl Fn(&str) -> Result<T, ConfigError>,
) -> Result<(), ConfigError> {
    if let Some(rest) = item.strip_prefix('-') {
        let v = parse(rest)?;
        let before = list.len();
        list.retain(|x| *x != v);
        if list.len() == before {
            return Err(bad_with(
                key,
                item,
                format!("-<entry> removes an entry given before; {rest} was not given"),
            ));
        }
        return Ok(());
    }
    let v = parse(item.strip_prefix('+').unwrap_or(item))?;
    if list.contains(&v) {
        return Err(bad_with(
            key,
            item,
            format!("{}; each entry once", valid_for(key)),
        ));
    }
    list.push(v);
    Ok(())
}

/// Imports a kernel option string: `mode=active-backup,miimon=100,primary=eno1`
/// (NetworkManager `bond.options`), space-separated `key=value` as in modprobe
/// lines (`options bonding mode=4 miimon=100`) and `BONDING_OPTS="..."`, and the
/// sysfs list forms `arp_ip_target=+10.0.0.1`.
///
/// Option strings name no interface and no slaves: the import is named
/// `bond0` and lists `slaves` in [`Import::needs`].
pub fn import_option_string(s: &str) -> Result<Import, ConfigError> {
    let mut text = s.trim();
    if let Some(rest) = text.strip_prefix("BONDING_OPTS=") {
        text = rest.trim();
    }
    for q in ['"', '\''] {
        if let Some(inner) = text.strip_prefix(q).and_then(|t| t.strip_suffix(q)) {
            text = inner.trim();
        }
    }
    let mut tokens: Vec<&str> = split_items(text).collect();
    if tokens.first() == Some(&"options") {
        tokens.remove(0);
        if tokens.first() == Some(&"bonding") {
            tokens.remove(0);
        }
    }
    if tokens.is_empty() {
        return Err(bad_with("options", s, OPTIONS_VALID.into()));
    }
    let mut imp = Importer::new("bond0");
    let mut last_key: Option<&str> = None;
    for tok in tokens {
        match tok.split_once('=') {
            Some((k, v)) => {
                let k = k.trim();
                if k.is_empty() {
                    return Err(ConfigError::Syntax {
                        text: clean(tok),
                        expected: "key=value, e.g. miimon=100".into(),
                    });
                }
                imp.set(k, v)?;
                last_key = Some(k);
            }
            // NetworkManager writes further targets without repeating the key.
            None => match last_key {
                Some(k @ ("arp_ip_target" | "ns_ip6_target" | "slaves")) => imp.set(k, tok)?,
                _ => {
                    return Err(ConfigError::Syntax {
                        text: clean(tok),
                        expected: "key=value, e.g. mode=active-backup".into(),
                    })
                }
            },
        }
    }
    imp.finish()
}

/// Imports the first bond of an `/etc/network/interfaces` text (ifupdown,
/// ifupdown2, Proxmox VE). See [`import_ifupdown_named`].
pub fn import_ifupdown(s: &str) -> Result<Import, ConfigError> {
    import_ifupdown_named(s, None)
}

/// Imports a bond from an `/etc/network/interfaces` text: the `iface <name>`
/// stanza that has `bond-*` lines (the first one, or the one called `name`).
/// `bond-slaves eno1 eno2` lists the slaves (`bond-slaves none` plus
/// `bond-master <name>` in the slaves' stanzas works too); every other
/// `bond-<option>` maps to the kernel option with underscores
/// (`bond-xmit-hash-policy` is `xmit_hash_policy`). Unknown `bond-*` options
/// are errors naming the line.
pub fn import_ifupdown_named(s: &str, name: Option<&str>) -> Result<Import, ConfigError> {
    let stanzas = parse_interfaces(s)?;
    let is_master = |st: &&Stanza| {
        st.opts.iter().any(|o| o.key.is_some())
            && !st.opts.iter().any(|o| o.key.as_deref() == Some("master"))
    };
    let bonds: Vec<&Stanza> = stanzas.iter().filter(is_master).collect();
    let chosen = match name {
        Some(n) => bonds
            .iter()
            .find(|st| st.name == n)
            .copied()
            .ok_or_else(|| {
                let found: Vec<&str> = bonds.iter().map(|b| b.name.as_str()).collect();
                bad_with(
                    "iface",
                    n,
                    if found.is_empty() {
                        "the name of an iface stanza with bond-* lines; there are none".into()
                    } else {
                        format!("one of the stanzas with bond-* lines: {}", found.join(", "))
                    },
                )
            })?,
        None => bonds
            .first()
            .copied()
            .ok_or_else(|| ConfigError::MissingKey {
                key: "bond-slaves".into(),
                expected:
                    "an `iface <name>` stanza with bond-* lines (bond-slaves, bond-mode, ...); \
                       found none"
                        .into(),
            })?,
    };
    let mut imp = Importer::new(&chosen.name);
    if name.is_none() && bonds.len() > 1 {
        let names: Vec<&str> = bonds.iter().map(|b| b.name.as_str()).collect();
        imp.warnings.push(format!(
            "{} bond stanzas found ({}); imported the first, {}",
            bonds.len(),
            names.join(", "),
            chosen.name
        ));
    }
    let mut slaves_line: Option<&Opt> = None;
    for o in &chosen.opts {
        let Some(key) = o.key.as_deref() else {
            continue;
        };
        let r = if key == "driver" {
            // `bond-driver xbond`: the line that hands a stanza to xbond's
            // ifupdown hook instead of the kernel bond; nothing to set.
            match o.value.trim() {
                "xbond" => Ok(()),
                other => Err(bad_with(
                    &o.word,
                    other,
                    "xbond (without the line, the stanza is the kernel bond's)".into(),
                )),
            }
        } else if key == "slaves" {
            match slaves_line {
                Some(first) => Err(ConfigError::Duplicate {
                    key: o.word.clone(),
                    first: clean(&first.value),
                    second: clean(&o.value),
                }),
                None => {
                    slaves_line = Some(o);
                    set_slaves_line(&mut imp, &o.word, &o.value)
                }
            }
        } else {
            imp.set(key, &o.value)
        };
        r.map_err(|e| at_line(o, e))?;
    }
    // Slaves that name this bond in a `bond-master` line, in file order.
    for st in &stanzas {
        let Some(master) = st.opts.iter().find(|o| o.key.as_deref() == Some("master")) else {
            continue;
        };
        if master.value.split_whitespace().next() != Some(chosen.name.as_str()) {
            continue;
        }
        check_ifname("bond-master", &st.name).map_err(|e| at_line(master, e))?;
        imp.add_slave(&st.name);
        // Old Debian files repeat bond options in the slaves' stanzas.
        for o in &st.opts {
            let Some(key) = o.key.as_deref() else {
                continue;
            };
            if key == "master" || key == "slaves" {
                continue;
            }
            if let Some((_, prev)) = imp.seen.get(key) {
                if prev != o.value.trim() {
                    return Err(at_line(
                        o,
                        ConfigError::Duplicate {
                            key: o.word.clone(),
                            first: clean(prev),
                            second: clean(&o.value),
                        },
                    ));
                }
                continue;
            }
            imp.set(key, &o.value).map_err(|e| at_line(o, e))?;
            imp.warnings.push(format!(
                "line {}: {} in {}'s stanza applied to {}",
                o.line,
                clean(&o.text),
                st.name,
                chosen.name
            ));
        }
    }
    imp.finish()
}

fn set_slaves_line(imp: &mut Importer, word: &str, value: &str) -> Result<(), ConfigError> {
    let items: Vec<&str> = value.split_whitespace().collect();
    match items.as_slice() {
        [] => Err(bad_with(
            word,
            value,
            "interface names separated by spaces, or none".into(),
        )),
        ["none"] => Ok(()),
        ["glob" | "regex", ..] => Err(bad_with(
            word,
            value,
            "a list of interface names (glob and regex lists are not supported)".into(),
        )),
        names => {
            for n in names {
                check_ifname("slaves", n)?;
                imp.cfg.slaves.push((*n).to_string());
            }
            Ok(())
        }
    }
}

/// One option line of a stanza.
#[derive(Debug)]
struct Opt {
    line: usize,
    text: String,
    /// The first word as written (`bond-mode`).
    word: String,
    /// The kernel option for `bond-*` lines (`mode`), `None` for other lines.
    key: Option<String>,
    value: String,
}

/// Every `iface <name>` stanza of one name, merged.
#[derive(Debug)]
struct Stanza {
    name: String,
    opts: Vec<Opt>,
}

fn at_line(o: &Opt, e: ConfigError) -> ConfigError {
    let e = match e {
        ConfigError::UnknownKey { suggestion, .. } => ConfigError::UnknownKey {
            key: clean(&o.word),
            suggestion: suggestion.map(|s| format!("bond-{}", s.replace('_', "-"))),
        },
        other => other,
    };
    ConfigError::AtLine {
        line: o.line,
        text: clean(&o.text),
        error: Box::new(e),
    }
}

/// The kernel option a `bond-*` (or `bond_*`, or old `slaves`) line sets.
fn bond_key(word: &str) -> Option<String> {
    if word == "slaves" {
        return Some("slaves".into());
    }
    let rest = word
        .strip_prefix("bond-")
        .or_else(|| word.strip_prefix("bond_"))?;
    let key = rest.replace('-', "_");
    Some(
        match key.as_str() {
            "ports" => "slaves",
            "ad_sys_priority" => "ad_actor_sys_prio",
            "ad_sys_mac_addr" => "ad_actor_system",
            other => other,
        }
        .to_string(),
    )
}

/// Logical lines (continuations joined, comments and blanks dropped) with
/// the number of their first physical line.
fn logical_lines(s: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut cur: Option<(usize, String)> = None;
    for (i, raw) in s.lines().enumerate() {
        let t = raw.trim();
        if cur.is_none() && (t.is_empty() || t.starts_with('#')) {
            continue;
        }
        let (piece, more) = match t.strip_suffix('\\') {
            Some(p) => (p.trim(), true),
            None => (t, false),
        };
        let entry = cur.get_or_insert_with(|| (i + 1, String::new()));
        if !entry.1.is_empty() && !piece.is_empty() {
            entry.1.push(' ');
        }
        entry.1.push_str(piece);
        if !more {
            if let Some(done) = cur.take() {
                out.push(done);
            }
        }
    }
    if let Some(done) = cur {
        out.push(done);
    }
    out
}

fn parse_interfaces(s: &str) -> Result<Vec<Stanza>, ConfigError> {
    let mut stanzas: Vec<Stanza> = Vec::new();
    let mut current: Option<usize> = None;
    for (line, text) in logical_lines(s) {
        let mut words = text.splitn(2, char::is_whitespace);
        let word = words.next().unwrap_or("");
        let rest = words.next().unwrap_or("").trim();
        match word {
            "iface" => {
                let Some(name) = rest.split_whitespace().next() else {
                    return Err(ConfigError::AtLine {
                        line,
                        text: clean(&text),
                        error: Box::new(ConfigError::Syntax {
                            text: clean(&text),
                            expected: "iface <name> [<family> <method>]".into(),
                        }),
                    });
                };
                current = Some(match stanzas.iter().position(|st| st.name == name) {
                    Some(i) => i,
                    None => {
                        stanzas.push(Stanza {
                            name: name.to_string(),
                            opts: Vec::new(),
                        });
                        stanzas.len() - 1
                    }
                });
            }
            "auto" | "mapping" | "source" | "source-directory" | "rename" | "template" => {
                current = None;
            }
            w if w.starts_with("allow-") => current = None,
            _ => {
                if let Some(st) = current.and_then(|i| stanzas.get_mut(i)) {
                    st.opts.push(Opt {
                        line,
                        text: text.clone(),
                        word: word.to_string(),
                        key: bond_key(word),
                        value: rest.to_string(),
                    });
                }
            }
        }
    }
    Ok(stanzas)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
name = "bond0"            # the host-facing interface xbond creates
slaves = ["eno1", "eno2"]
mode = "active-backup"
miimon = 100
updelay = 0
downdelay = 0
primary = "eno1"
xmit_hash_policy = "layer3+4"
queues = 1                # one worker per queue
"#;

    const PROXMOX_LACP: &str = "auto bond0
iface bond0 inet manual
bond-slaves eno1 eno2
bond-miimon 100
bond-mode 802.3ad
bond-xmit-hash-policy layer3+4

auto vmbr0
iface vmbr0 inet static
address 192.168.1.10/24
bridge-ports bond0
";

    const PROXMOX_AB: &str = "auto bond0
iface bond0 inet manual
        bond-slaves eno1 eno2
        bond-miimon 100
        bond-mode active-backup
        bond-primary eno1

auto vmbr0
iface vmbr0 inet static
        address 192.168.1.10/24
        bridge-ports bond0
        bridge-stp off
        bridge-fd 0
";

    fn two() -> Vec<String> {
        vec!["eno1".into(), "eno2".into()]
    }

    fn base(mode: Mode) -> BondConfig {
        let mut c = BondConfig::new("bond0", two());
        c.mode = mode;
        c
    }

    fn toml_err(text: &str) -> ConfigError {
        match BondConfig::from_toml_str(text) {
            Ok(c) => panic!("expected an error for {text:?}, got {c:?}"),
            Err(e) => e,
        }
    }

    fn with_header(extra: &str) -> String {
        format!("name = \"bond0\"\nslaves = [\"eno1\", \"eno2\"]\n{extra}\n")
    }

    fn assert_mentions(e: &ConfigError, parts: &[&str]) {
        let msg = e.to_string();
        assert!(!msg.contains('\n'), "multi-line message: {msg}");
        for p in parts {
            assert!(msg.contains(p), "message lacks {p:?}: {msg}");
        }
    }

    #[test]
    fn example_parses_with_every_field_right() {
        let c = BondConfig::from_toml_str(EXAMPLE).unwrap();
        let mut want = BondConfig::new("bond0", two());
        want.mode = Mode::ActiveBackup;
        want.primary = Some("eno1".into());
        want.xmit_hash_policy = HashPolicy::Layer34;
        assert_eq!(c, want);
        assert_eq!(c.peer_name, "xb-bond0");
        assert_eq!(c.miimon, 100);
        assert_eq!(c.queues, 1);
        assert_eq!(c.socket_path(), "/run/xbond/bond0.sock");
        assert!(!c.monitoring_off());
    }

    #[test]
    fn defaults_are_the_kernels_except_miimon() {
        let c = BondConfig::new("bond0", two());
        assert_eq!(c.mode, Mode::BalanceRr);
        assert_eq!(c.miimon, DEFAULT_MIIMON_MS);
        assert_eq!(c.peer_name, "xb-bond0");
        assert_eq!((c.queues, c.num_grat_arp, c.num_unsol_na), (1, 1, 1));
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

    #[test]
    fn accepts_numbers_strings_and_kernel_synonyms() {
        let c = BondConfig::from_toml_str(&with_header(
            "mode = 4\nmiimon = \"200\"\nlacp_rate = 1\nlacp_active = \"off\"\n\
             xmit_hash_policy = 2\nuse_carrier = 0\nall_slaves_active = \"on\"",
        ))
        .unwrap();
        assert_eq!(c.mode, Mode::Ieee8023ad);
        assert_eq!(c.miimon, 200);
        assert_eq!(c.lacp_rate, LacpRate::Fast);
        assert!(!c.lacp_active);
        assert_eq!(c.xmit_hash_policy, HashPolicy::Layer23);
        assert!(!c.use_carrier);
        assert!(c.all_slaves_active);
    }

    #[test]
    fn every_key_is_handled() {
        for key in KEYS {
            let mut c = BondConfig::new("bond0", two());
            let r = set_key(&mut c, key, &toml::Value::Float(0.5));
            assert!(
                matches!(r, Err(ConfigError::BadValue { .. })),
                "{key}: {r:?}"
            );
            assert!(!valid_for(key).starts_with("one of the keys"), "{key}");
        }
        for key in KERNEL_KEYS {
            assert!(KEYS.contains(key), "{key}");
        }
    }

    #[test]
    fn unknown_key_suggests_the_underscore_form() {
        let e = toml_err(&with_header("xmit-hash-policy = \"layer3+4\""));
        assert_eq!(
            e,
            ConfigError::UnknownKey {
                key: "xmit-hash-policy".into(),
                suggestion: Some("xmit_hash_policy".into())
            }
        );
        assert_mentions(&e, &["xmit-hash-policy", "did you mean `xmit_hash_policy`"]);
        let e = toml_err(&with_header("mimon = 100"));
        assert_mentions(&e, &["mimon", "`miimon`"]);
        let e = toml_err(&with_header("bond-slaves = [\"eno3\"]"));
        assert_mentions(&e, &["bond-slaves", "`slaves`"]);
        let e = toml_err(&with_header("frobnicate = 1"));
        assert_mentions(&e, &["frobnicate", "valid keys", "miimon", "lacp_rate"]);
    }

    #[test]
    fn bad_values_name_key_value_and_valid() {
        let e = toml_err(&with_header("mode = \"active-active\""));
        assert_eq!(
            e,
            ConfigError::BadValue {
                key: "mode".into(),
                value: "active-active".into(),
                valid: "balance-rr, active-backup, balance-xor, broadcast, 802.3ad, balance-tlb, \
                        balance-alb (or 0-6)"
                    .into()
            }
        );
        assert_mentions(&e, &["mode", "active-active", "active-backup"]);
        let e = toml_err(&with_header("miimon = -5"));
        assert_mentions(&e, &["miimon", "-5", "0 to 2147483647 ms"]);
        let e = toml_err(&with_header("queues = 65"));
        assert_mentions(&e, &["queues", "65", "1 to 64"]);
        let e = toml_err(&with_header("queues = 0"));
        assert_mentions(&e, &["queues", "`0`", "1 to 64"]);
        let e = toml_err(&with_header("use_carrier = \"maybe\""));
        assert_mentions(&e, &["use_carrier", "maybe", "on/off"]);
        let e = toml_err(&with_header("arp_ip_target = [\"10.0.0.300\"]"));
        assert_mentions(&e, &["arp_ip_target", "10.0.0.300", "IPv4"]);
        let e = toml_err(&with_header("mac = \"01:00:5e:00:00:01\""));
        assert_mentions(&e, &["mac", "01:00:5e:00:00:01", "unicast MAC"]);
        let e = toml_err(&with_header("mode = 4\nad_actor_sys_prio = 0"));
        assert_mentions(&e, &["ad_actor_sys_prio", "`0`", "1 to 65535"]);
        let e = toml_err(&with_header("mode = 4\nlacp_fallback = \"balance-xor\""));
        assert_mentions(&e, &["lacp_fallback", "balance-xor", "active-backup"]);
        let e = toml_err(&with_header("control_socket = \"relative.sock\""));
        assert_mentions(&e, &["control_socket", "relative.sock", "absolute path"]);
        let e = toml_err(&with_header("mode = 1\n[prio]\neno1 = \"high\""));
        assert_mentions(&e, &["prio.eno1", "high", "integer"]);
    }

    #[test]
    fn names_follow_the_kernels_rules() {
        let mut c = BondConfig::new("bond0", two());
        c.name = "a-very-long-bond0".into();
        c.peer_name = "xb0".into();
        assert_mentions(
            &c.validate().unwrap_err(),
            &["name", "a-very-long-bond0", "15 bytes"],
        );
        let mut c = BondConfig::new("bond0", vec!["eno 1".into()]);
        assert_mentions(&c.validate().unwrap_err(), &["slaves", "eno 1", "A-Z"]);
        c.slaves = vec!["eno1".into(), "eno1".into()];
        assert_mentions(&c.validate().unwrap_err(), &["slaves", "eno1", "once"]);
        c.slaves = vec!["eno1".into(), "bond0".into()];
        assert_mentions(&c.validate().unwrap_err(), &["slaves", "name = bond0"]);
        c.slaves = (0..17).map(|i| format!("eth{i}")).collect();
        assert_mentions(&c.validate().unwrap_err(), &["slaves", "1 to 16", "got 17"]);
        let c = BondConfig::new("bond-uplink12", two());
        assert_mentions(
            &c.validate().unwrap_err(),
            &["peer_name", "xb-bond-uplink12", "set peer_name"],
        );
        let mut c = BondConfig::new("bond0", two());
        c.peer_name = "bond0".into();
        assert!(matches!(c.validate(), Err(ConfigError::Conflict { .. })));
    }

    #[test]
    fn missing_keys() {
        let e = toml_err("name = \"bond0\"");
        assert_eq!(e, missing_slaves());
        assert_mentions(
            &e,
            &["missing key `slaves`", "slaves = [\"eno1\", \"eno2\"]"],
        );
        let e = toml_err("slaves = [\"eno1\"]");
        assert_mentions(&e, &["missing key `name`"]);
        let e = toml_err(&with_header("").replace("[\"eno1\", \"eno2\"]", "[]"));
        assert_eq!(e, missing_slaves());
    }

    #[test]
    fn primary_in_balance_rr_is_not_valid() {
        let mut c = base(Mode::BalanceRr);
        c.primary = Some("eno1".into());
        let e = c.validate().unwrap_err();
        assert!(matches!(
            e,
            ConfigError::NotInMode {
                mode: Mode::BalanceRr,
                ..
            }
        ));
        assert_mentions(
            &e,
            &["option primary is not valid in mode balance-rr; valid in: active-backup, balance-tlb, balance-alb",
              "primary = eno1"],
        );
    }

    #[test]
    fn mode_rules() {
        let mut c = base(Mode::ActiveBackup);
        c.lacp_rate = LacpRate::Fast;
        assert_mentions(
            &c.validate().unwrap_err(),
            &["lacp_rate", "fast", "active-backup", "valid in: 802.3ad"],
        );
        let mut c = base(Mode::BalanceXor);
        c.packets_per_slave = 4;
        assert_mentions(
            &c.validate().unwrap_err(),
            &["packets_per_slave", "valid in: balance-rr"],
        );
        let mut c = base(Mode::ActiveBackup);
        c.tlb_dynamic_lb = false;
        assert_mentions(
            &c.validate().unwrap_err(),
            &["tlb_dynamic_lb", "balance-tlb, balance-alb"],
        );
        let mut c = base(Mode::Ieee8023ad);
        c.arp_interval = 1000;
        c.arp_ip_target = vec![Ipv4Addr::new(192, 0, 2, 1)];
        c.miimon = 0;
        assert_mentions(
            &c.validate().unwrap_err(),
            &[
                "arp_interval",
                "802.3ad",
                "balance-rr, active-backup, balance-xor, broadcast",
            ],
        );
        let mut c = base(Mode::BalanceRr);
        c.fail_over_mac = FailOverMac::Active;
        assert!(matches!(c.validate(), Err(ConfigError::NotInMode { .. })));
        let mut c = base(Mode::Ieee8023ad);
        c.lacp_fallback = Some(Mode::ActiveBackup);
        c.lacp_rate = LacpRate::Fast;
        c.ad_actor_system = Some(MacAddr([2, 0, 0, 0, 0, 1]));
        c.validate().unwrap();
        // xmit_hash_policy is accepted in every mode.
        for &m in Mode::ALL {
            let mut c = base(m);
            c.xmit_hash_policy = HashPolicy::Layer34;
            c.validate().unwrap();
        }
    }

    #[test]
    fn unknown_slave() {
        let e = toml_err(&with_header("mode = \"active-backup\"\nprimary = \"eno3\""));
        assert_eq!(
            e,
            ConfigError::UnknownSlave {
                key: "primary".into(),
                value: "eno3".into(),
                slaves: two()
            }
        );
        assert_mentions(&e, &["primary", "eno3", "valid: eno1, eno2"]);
        let e = toml_err(&with_header("mode = \"active-backup\"\n[prio]\neno9 = 5"));
        assert_mentions(&e, &["prio", "eno9", "eno1, eno2"]);
        let c =
            BondConfig::from_toml_str(&with_header("mode = \"active-backup\"\n[prio]\neno2 = 5"))
                .unwrap();
        assert_eq!(c.prio.get("eno2"), Some(&5));
    }

    #[test]
    fn miimon_zero_trap_and_its_opt_out() {
        let e = toml_err(&with_header("mode = \"active-backup\"\nmiimon = 0"));
        assert_eq!(e, ConfigError::NoLinkMonitor);
        assert_mentions(
            &e,
            &[
                "miimon = 0",
                "never fails over",
                "runbook",
                "miimon = 100",
                "link_watch_policy = \"none\"",
            ],
        );
        let c = BondConfig::from_toml_str(&with_header(
            "mode = \"active-backup\"\nmiimon = 0\nlink_watch_policy = \"none\"",
        ))
        .unwrap();
        assert!(c.monitoring_off());
        // "none" with a monitor still configured is a conflict.
        let e = toml_err(&with_header("link_watch_policy = \"none\""));
        assert!(matches!(e, ConfigError::Conflict { .. }), "{e}");
        assert_mentions(
            &e,
            &[
                "link_watch_policy",
                "\"none\"",
                "miimon = 100",
                "set miimon = 0",
            ],
        );
    }

    #[test]
    fn miimon_with_arp_needs_a_policy() {
        let arp = "mode = \"active-backup\"\narp_interval = 1000\narp_ip_target = [\"192.0.2.1\"]";
        let e = toml_err(&with_header(arp));
        assert_eq!(
            e,
            ConfigError::MonitorMix {
                miimon: 100,
                arp_interval: 1000
            }
        );
        assert_mentions(
            &e,
            &[
                "miimon = 100",
                "arp_interval = 1000",
                "error-prone",
                "link_watch_policy = \"all\"",
                "\"any\"",
            ],
        );
        let c =
            BondConfig::from_toml_str(&with_header(&format!("{arp}\nlink_watch_policy = \"any\"")))
                .unwrap();
        assert_eq!(c.link_watch_policy, Some(LinkWatchPolicy::Any));
        let c = BondConfig::from_toml_str(&with_header(&format!("{arp}\nmiimon = 0"))).unwrap();
        assert_eq!(c.arp_ip_target, vec![Ipv4Addr::new(192, 0, 2, 1)]);
        // A single comma-separated string works too.
        let c = BondConfig::from_toml_str(&with_header(
            "arp_interval = 500\nmiimon = 0\narp_ip_target = \"192.0.2.1, 192.0.2.2\"",
        ))
        .unwrap();
        assert_eq!(c.arp_ip_target.len(), 2);
    }

    #[test]
    fn arp_interval_and_targets_need_each_other() {
        let e = toml_err(&with_header("miimon = 0\narp_interval = 1000"));
        assert_mentions(&e, &["missing key `arp_ip_target`", "arp_interval = 1000"]);
        let e = toml_err(&with_header("ns_ip6_target = [\"2001:db8::1\"]"));
        assert_mentions(&e, &["missing key `arp_interval`"]);
        let e = toml_err(&with_header(
            "miimon = 0\narp_interval = 100\narp_ip_target = [\"192.0.2.1\", \"192.0.2.1\"]",
        ));
        assert_mentions(&e, &["arp_ip_target", "192.0.2.1", "distinct"]);
    }

    #[test]
    fn delays_must_be_multiples_of_miimon() {
        let e = toml_err(&with_header("updelay = 150"));
        assert_mentions(
            &e,
            &[
                "updelay",
                "150",
                "multiple of miimon (100 ms)",
                "100 or 200",
            ],
        );
        let e = toml_err(&with_header("downdelay = 50"));
        assert_mentions(&e, &["downdelay", "`50`", "0 or 100"]);
        let e = toml_err(&with_header(
            "miimon = 0\narp_interval = 100\narp_ip_target = \"192.0.2.1\"\nupdelay = 200",
        ));
        assert_mentions(&e, &["updelay = 200", "miimon = 0", "needs miimon > 0"]);
        BondConfig::from_toml_str(&with_header("updelay = 200\ndowndelay = 100")).unwrap();
    }

    #[test]
    fn toml_syntax_errors_are_one_line() {
        let e = toml_err("name = \"bond0\"\nslaves = [\"eno1\"\nmode = 1\n");
        assert!(matches!(e, ConfigError::Toml(_)), "{e}");
        assert_mentions(&e, &["TOML syntax error", "line"]);
        let e = toml_err("name = \"bond0\"\nname = \"bond1\"\n");
        assert!(matches!(e, ConfigError::Toml(_)), "{e}");
    }

    #[test]
    fn toml_round_trip_of_many_options() {
        let mut c = base(Mode::ActiveBackup);
        c.slaves = vec!["eno1".into(), "eno2.100".into()];
        c.peer_name = "xbup".into();
        c.primary = Some("eno2.100".into());
        c.primary_reselect = PrimaryReselect::Better;
        c.fail_over_mac = FailOverMac::Follow;
        c.num_grat_arp = 3;
        c.miimon = 0;
        c.arp_interval = 250;
        c.arp_ip_target = vec![Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 9)];
        c.ns_ip6_target = vec!["2001:db8::1".parse().unwrap()];
        c.arp_validate = ArpValidate::FilterActive;
        c.arp_all_targets = ArpAllTargets::All;
        c.arp_missed_max = 5;
        c.mac = Some(MacAddr([2, 0, 0, 0, 0, 0x42]));
        c.queues = 4;
        c.prio.insert("eno2.100".into(), 20);
        c.prio.insert("eno1".into(), -3);
        c.control_socket = Some("/run/xbond/\"odd\".sock".into());
        c.validate().unwrap();
        let text = c.to_toml();
        assert_eq!(BondConfig::from_toml_str(&text).unwrap(), c, "{text}");
        assert!(text.contains("\"eno2.100\" = 20"), "{text}");
        // The defaults write only the four keys always present.
        let text = BondConfig::new("bond0", two()).to_toml();
        assert_eq!(
            text,
            "name = \"bond0\"\nslaves = [\"eno1\", \"eno2\"]\nmode = \"balance-rr\"\nmiimon = 100\n"
        );
    }

    #[test]
    fn imports_the_runbook_option_string() {
        let imp = import_option_string("mode=active-backup,miimon=100,primary=eno1").unwrap();
        let c = &imp.config;
        assert_eq!(c.mode, Mode::ActiveBackup);
        assert_eq!(c.miimon, 100);
        assert_eq!(c.primary.as_deref(), Some("eno1"));
        assert!(c.slaves.is_empty());
        assert_eq!(imp.needs, vec!["slaves".to_string()]);
        let text = imp.to_toml();
        assert!(text.contains("slaves = []  # fill in\n"), "{text}");
        assert!(text.contains("primary = \"eno1\""), "{text}");
        assert!(imp.warnings.is_empty(), "{:?}", imp.warnings);
        assert!(text.starts_with("name = \"bond0\"\n"), "{text}");
        // Until the slaves are filled in, the file does not validate.
        assert_eq!(
            BondConfig::from_toml_str(&text).unwrap_err(),
            missing_slaves()
        );
        let filled = text.replace("slaves = []  # fill in", "slaves = [\"eno1\", \"eno2\"]");
        let mut want = imp.config.clone();
        want.slaves = two();
        assert_eq!(BondConfig::from_toml_str(&filled).unwrap(), want);
    }

    #[test]
    fn imported_miimon_zero_turns_monitoring_on() {
        let imp = import_option_string("mode=active-backup,miimon=0").unwrap();
        assert_eq!(imp.config.miimon, 100);
        assert!(imp.warnings.contains(
            &"imported miimon=0 disables failover; xbond uses miimon = 100 (set miimon = 0 and \
              link_watch_policy = \"none\" to keep it)"
                .to_string()
        ));
        // Without miimon: xbond's default, with a note on the kernel's.
        let imp = import_option_string("mode=1").unwrap();
        assert_eq!(imp.config.miimon, 100);
        assert!(imp
            .warnings
            .iter()
            .any(|w| w.contains("miimon=0") && w.contains("active-backup")));
        // In 802.3ad the kernel turns miimon on itself: no such warning.
        let imp = import_option_string("mode=802.3ad").unwrap();
        assert!(
            !imp.warnings.iter().any(|w| w.contains("miimon")),
            "{:?}",
            imp.warnings
        );
    }

    #[test]
    fn imports_kernel_synonyms_and_forms() {
        let imp = import_option_string(
            "options bonding mode=4 lacp_rate=1 xmit_hash_policy=1 ad_select=2 lacp_active=off max_bonds=1",
        )
        .unwrap();
        let c = &imp.config;
        assert_eq!(c.mode, Mode::Ieee8023ad);
        assert_eq!(c.lacp_rate, LacpRate::Fast);
        assert_eq!(c.xmit_hash_policy, HashPolicy::Layer34);
        assert_eq!(c.ad_select, AdSelect::Count);
        assert!(!c.lacp_active);
        assert!(imp.warnings.iter().any(|w| w.starts_with("max_bonds=1")));

        let imp = import_option_string(
            "BONDING_OPTS=\"mode=1 fail_over_mac=2 arp_interval=1000 arp_ip_target=+10.0.0.1 arp_validate=3\"",
        )
        .unwrap();
        let c = &imp.config;
        assert_eq!(c.fail_over_mac, FailOverMac::Follow);
        assert_eq!(c.arp_validate, ArpValidate::All);
        assert_eq!(c.arp_ip_target, vec![Ipv4Addr::new(10, 0, 0, 1)]);
        assert_eq!((c.miimon, c.arp_interval), (0, 1000));

        // NetworkManager style: further targets without the key; +/- edits.
        let imp = import_option_string(
            "mode=balance-xor,arp_interval=500,arp_ip_target=10.0.0.1,10.0.0.2,10.0.0.3,arp_ip_target=-10.0.0.2",
        )
        .unwrap();
        assert_eq!(
            imp.config.arp_ip_target,
            vec![Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 3)]
        );
        // num_grat_arp and num_unsol_na are one kernel value.
        let imp = import_option_string("mode=1,miimon=100,num_grat_arp=3").unwrap();
        assert_eq!((imp.config.num_grat_arp, imp.config.num_unsol_na), (3, 3));
        // The kernel keeps only the monitor set last.
        let imp =
            import_option_string("mode=1,arp_interval=1000,arp_ip_target=10.0.0.1,miimon=100")
                .unwrap();
        assert_eq!((imp.config.miimon, imp.config.arp_interval), (100, 0));
        assert!(imp.config.arp_ip_target.is_empty());
    }

    #[test]
    fn option_string_errors() {
        let e = import_option_string("mode=active-backup,frobnicate=1").unwrap_err();
        assert_mentions(&e, &["frobnicate"]);
        let e = import_option_string("mode=1,xmit-hash-policy=layer2").unwrap_err();
        assert_mentions(&e, &["did you mean `xmit_hash_policy`"]);
        let e = import_option_string("mode=1,queues=4").unwrap_err();
        assert_mentions(&e, &["queues=4", "xbond key"]);
        let e = import_option_string("mode=balance-rr,primary=eno1").unwrap_err();
        assert_mentions(&e, &["option primary is not valid in mode balance-rr"]);
        let e = import_option_string("mode=1,mode=4").unwrap_err();
        assert_eq!(
            e,
            ConfigError::Duplicate {
                key: "mode".into(),
                first: "1".into(),
                second: "4".into()
            }
        );
        assert_mentions(&e, &["mode", "given twice"]);
    }

    #[test]
    fn malformed_inputs_give_errors() {
        for bad in [
            "",
            "   ",
            ",,,",
            "mode=",
            "=x",
            "=",
            "garbage",
            "mode",
            "mode=1,mode=1",
            "mode==1",
            "miimon=abc",
            "miimon=-1",
            "miimon=99999999999999999999",
            "arp_ip_target=+",
            "arp_ip_target=-10.0.0.1",
            "options bonding",
            "BONDING_OPTS=\"\"",
            "mode=1,\u{0}=x",
            "mode=ünïcode",
            "primary=",
            "slaves=eno1,eno1",
        ] {
            let r = import_option_string(bad);
            assert!(r.is_err(), "{bad:?} gave {r:?}");
            if let Err(e) = r {
                assert!(!e.to_string().contains('\n'), "{bad:?}: {e}");
            }
        }
        let e = import_option_string("mode=").unwrap_err();
        assert_mentions(&e, &["mode", "balance-rr"]);
        let e = import_option_string("=x").unwrap_err();
        assert!(matches!(e, ConfigError::Syntax { .. }), "{e}");
        for bad in [
            "",
            "garbage",
            "[",
            "name = ",
            "name = 5\nslaves = 7",
            "[prio]\n= 1",
            "slaves = [[1]]",
            "\u{0}",
        ] {
            let r = BondConfig::from_toml_str(bad);
            assert!(r.is_err(), "{bad:?} gave {r:?}");
        }
        for bad in [
            "",
            "garbage",
            "iface",
            "iface bond0\nbond-mode",
            "iface bond0\nbond-slaves glob eno1-2",
        ] {
            let r = import_ifupdown(bad);
            assert!(r.is_err(), "{bad:?} gave {r:?}");
        }
    }

    #[test]
    fn parsers_never_panic_on_cut_or_mangled_input() {
        let samples = [
            EXAMPLE,
            PROXMOX_LACP,
            PROXMOX_AB,
            "mode=active-backup,miimon=100,primary=eno1,arp_ip_target=+10.0.0.1",
        ];
        for s in samples {
            let chars: Vec<char> = s.chars().collect();
            for cut in 0..chars.len() {
                let head: String = chars[..cut].iter().collect();
                let tail: String = chars[cut..].iter().collect();
                let swapped: String = chars
                    .iter()
                    .enumerate()
                    .map(|(i, c)| if i == cut { '=' } else { *c })
                    .collect();
                for text in [&head, &tail, &swapped] {
                    let _ = BondConfig::from_toml_str(text);
                    let _ = import_option_string(text);
                    let _ = import_ifupdown(text);
                    let _ = import_ifupdown_named(text, Some("bond0"));
                }
            }
        }
    }

    #[test]
    fn imports_the_proxmox_lacp_stanza() {
        let imp = import_ifupdown(PROXMOX_LACP).unwrap();
        let mut want = base(Mode::Ieee8023ad);
        want.xmit_hash_policy = HashPolicy::Layer34;
        assert_eq!(imp.config, want);
        assert!(imp.warnings.is_empty(), "{:?}", imp.warnings);
        assert!(imp.needs.is_empty());
        let back = BondConfig::from_toml_str(&imp.to_toml()).unwrap();
        assert_eq!(back, imp.config);
    }

    #[test]
    fn imports_the_proxmox_active_backup_stanza() {
        let imp = import_ifupdown(PROXMOX_AB).unwrap();
        let mut want = base(Mode::ActiveBackup);
        want.primary = Some("eno1".into());
        assert_eq!(imp.config, want);
        assert!(imp.warnings.is_empty(), "{:?}", imp.warnings);
        let text = imp.to_toml();
        assert_eq!(
            text,
            "name = \"bond0\"\nslaves = [\"eno1\", \"eno2\"]\nmode = \"active-backup\"\nmiimon = 100\nprimary = \"eno1\"\n"
        );
        assert_eq!(BondConfig::from_toml_str(&text).unwrap(), imp.config);
    }

    #[test]
    fn imports_bond_master_style_and_chooses_by_name() {
        let text = "\
# Debian ifenslave style
auto eno1
iface eno1 inet manual
    bond-master bond1
    bond-primary eno1

iface eno2 inet manual
    bond-master bond1

auto bond0
iface bond0 inet manual
    bond_slaves eno3 \\
        eno4
    bond_mode balance-xor
    bond-lacp-rate 1

auto bond1
iface bond1 inet static
    address 10.0.0.2/24
    bond-slaves none
    bond-mode active-backup
    bond-miimon 100
    bond-downdelay 200
    bond-updelay 200
";
        // The first bond stanza is bond0; its lacp_rate is not valid in balance-xor.
        let e = import_ifupdown(text).unwrap_err();
        assert_mentions(&e, &["lacp_rate", "balance-xor"]);
        let imp = import_ifupdown_named(text, Some("bond1")).unwrap();
        let mut want = BondConfig::new("bond1", two());
        want.mode = Mode::ActiveBackup;
        want.primary = Some("eno1".into());
        want.updelay = 200;
        want.downdelay = 200;
        assert_eq!(imp.config, want);
        assert!(
            imp.warnings.iter().any(|w| w.contains("bond-primary eno1")),
            "{:?}",
            imp.warnings
        );
        assert_eq!(BondConfig::from_toml_str(&imp.to_toml()).unwrap(), want);
        let e = import_ifupdown_named(text, Some("bond7")).unwrap_err();
        assert_mentions(&e, &["iface", "bond7", "bond0, bond1"]);
        let fixed = text.replace("    bond-lacp-rate 1\n", "");
        let imp = import_ifupdown(&fixed).unwrap();
        assert_eq!(
            imp.config.slaves,
            vec!["eno3".to_string(), "eno4".to_string()]
        );
        assert_eq!(imp.config.mode, Mode::BalanceXor);
        assert!(imp.warnings.iter().any(|w| w.contains("2 bond stanzas")));
    }

    #[test]
    fn unknown_bond_option_names_the_line() {
        let text = PROXMOX_LACP.replace("bond-miimon 100", "bond-miimon 100\nbond-xmit-hash 1");
        let e = import_ifupdown(&text).unwrap_err();
        match &e {
            ConfigError::AtLine { line, error, .. } => {
                assert_eq!(*line, 5);
                assert!(matches!(**error, ConfigError::UnknownKey { .. }), "{error}");
            }
            other => panic!("{other:?}"),
        }
        assert_mentions(
            &e,
            &[
                "line 5",
                "bond-xmit-hash 1",
                "unknown key `bond-xmit-hash`",
                "bond-xmit-hash-policy",
            ],
        );
        let text = PROXMOX_LACP.replace("bond-mode 802.3ad", "bond-mode 802.3ac");
        let e = import_ifupdown(&text).unwrap_err();
        assert_mentions(&e, &["line 5", "802.3ac", "valid: balance-rr"]);
        let text = PROXMOX_LACP.replace("bond-mode 802.3ad", "bond-mode 802.3ad\nbond-mode 1");
        assert_mentions(
            &import_ifupdown(&text).unwrap_err(),
            &["line 6", "given twice"],
        );
    }

    #[test]
    fn ifupdown_synonyms_and_targets() {
        let text = "iface bond0 inet manual
  bond-slaves eno1 eno2
  bond-mode active-backup
  bond-arp-interval 1000
  bond-arp-ip-target 192.0.2.1 192.0.2.2
  bond-updelay 0
  bond-downdelay 0
";
        let imp = import_ifupdown(text).unwrap();
        assert_eq!(imp.config.miimon, 0);
        assert_eq!(imp.config.arp_interval, 1000);
        assert_eq!(imp.config.arp_ip_target.len(), 2);
        assert_eq!(
            BondConfig::from_toml_str(&imp.to_toml()).unwrap(),
            imp.config
        );
        let text = "iface bond0\n bond-ports eno1 eno2\n bond-mode 4\n bond-ad-sys-priority 100\n";
        let imp = import_ifupdown(text).unwrap();
        assert_eq!(imp.config.ad_actor_sys_prio, 100);
        assert_eq!(imp.config.slaves, two());
        let imp = import_ifupdown(
            "iface bond0 inet manual\n bond-slaves none\n bond-mode 1\n bond-miimon 100\n",
        )
        .unwrap();
        assert_eq!(imp.needs, vec!["slaves".to_string()]);
    }

    #[test]
    fn set_name_moves_the_default_peer_name() {
        let mut imp = import_option_string("mode=1,miimon=100").unwrap();
        imp.config.set_name("uplink");
        assert_eq!(imp.config.peer_name, "xb-uplink");
        assert_eq!(imp.config.socket_path(), "/run/xbond/uplink.sock");
    }

    #[test]
    fn the_bond_driver_line_hands_a_stanza_to_xbond_and_sets_nothing() {
        let text = "iface bond0 inet manual\n    bond-slaves eno1 eno2\n    bond-mode 802.3ad\n    bond-driver xbond\n";
        let with = import_ifupdown_named(text, Some("bond0")).unwrap();
        let without =
            import_ifupdown_named(&text.replace("    bond-driver xbond\n", ""), Some("bond0"))
                .unwrap();
        assert_eq!(with.config, without.config);
        assert!(with.warnings.is_empty(), "{:?}", with.warnings);
        let e = import_ifupdown_named(&text.replace("driver xbond", "driver bonding"), None)
            .unwrap_err();
        assert_mentions(&e, &["bond-driver", "bonding", "xbond"]);
    }

    #[test]
    fn control_group_is_a_group_name() {
        let c = BondConfig::from_toml_str(&with_header("control_group = \"xbond-ops\"")).unwrap();
        assert_eq!(c.control_group.as_deref(), Some("xbond-ops"));
        let e = toml_err(&with_header("control_group = \"ops;rm\""));
        assert_mentions(&e, &["control_group", "ops;rm", "group name"]);
    }
}
