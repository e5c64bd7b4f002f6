//! [`ConfigError`], and the helpers that build its messages: what is valid
//! for each key, and values made safe for a one-line message.

use std::str::FromStr;

use super::model::{AdSelect, ArpAllTargets, ArpValidate, LacpRate};
use super::{KERNEL_KEYS, KEYS, MAX_QUEUES, MAX_TARGETS};
use crate::options::UmemLayout;
use crate::options::{
    BadValue, FailOverMac, HashFunction, HashPolicy, LinkWatchPolicy, Mode, PrimaryReselect,
};
use crate::MAX_SLAVES;

/// Longest control socket path in bytes (`sun_path` holds 108 with the NUL).
pub(super) const MAX_SOCKET_PATH: usize = 107;

/// The kernel's `INT_MAX` limit for millisecond options.
const INT_MAX: u64 = i32::MAX as u64;

pub(super) const IFNAME_VALID: &str = "an interface name of 1 to 15 bytes from A-Z a-z 0-9 _ . -";
const BOOL_VALID: &str = "true or false (also on/off, yes/no, 1/0)";
const MAC_VALID: &str = "a unicast MAC address such as 02:00:00:00:00:01";

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

pub(super) fn missing_name() -> ConfigError {
    ConfigError::MissingKey {
        key: "name".into(),
        expected: "the bond interface xbond creates, e.g. name = \"bond0\"".into(),
    }
}

pub(super) fn missing_slaves() -> ConfigError {
    ConfigError::MissingKey {
        key: "slaves".into(),
        expected: format!("1 to {MAX_SLAVES} slave interfaces, e.g. slaves = [\"eno1\", \"eno2\"]"),
    }
}

/// Integer options: (min, max, unit). One table for parsing and validation.
pub(super) fn int_range(key: &str) -> Option<(u64, u64, &'static str)> {
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
        "rebalance_interval" => (0, 3600, " s (0: off)"),
        "queues" => (1, u64::from(MAX_QUEUES), " or \"auto\""),
        _ => return None,
    })
}

/// What is valid for `key`, for error messages.
pub(super) fn valid_for(key: &str) -> String {
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
        "umem_layout" => enum_valid::<UmemLayout>(),
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
        "metrics_listen" => {
            "an address and port to serve Prometheus metrics on, e.g. \"127.0.0.1:9741\"".into()
        }
        "proc_root" => "an absolute directory path, e.g. \"/run/xbond/proc\"".into(),
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
pub(super) fn clean(s: &str) -> String {
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

pub(super) fn bad(key: &str, value: impl AsRef<str>) -> ConfigError {
    bad_with(key, value, valid_for(key))
}

pub(super) fn bad_with(key: &str, value: impl AsRef<str>, valid: String) -> ConfigError {
    ConfigError::BadValue {
        key: clean(key),
        value: clean(value.as_ref()),
        valid,
    }
}
