//! The bond's TOML file: [`BondConfig::from_toml_str`] reads it,
//! [`BondConfig::to_toml`] writes it.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use super::error::{bad, bad_with, clean, int_range, missing_name, missing_slaves};
use super::model::default_peer_name;
use super::suggest::suggest;
use super::{BondConfig, ConfigError};
use crate::options::{BadValue, MacAddr, Mode};

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

impl BondConfig {
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

    /// Writes the TOML file; keys in `fill_in` get a `# fill in` comment.
    pub(super) fn write_toml(&self, fill_in: &[String]) -> String {
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

pub(super) fn render_strings(items: &[String]) -> String {
    format!(
        "[{}]",
        items
            .iter()
            .map(|s| toml_str(s))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

pub(super) fn render_display_list<T: fmt::Display>(items: &[T]) -> String {
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

pub(super) fn render_prio<V: std::fmt::Display>(prio: &BTreeMap<String, V>) -> String {
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

pub(super) fn split_items(s: &str) -> impl Iterator<Item = &str> {
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
pub(super) fn set_key(c: &mut BondConfig, key: &str, v: &toml::Value) -> Result<(), ConfigError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::error::valid_for;
    use crate::config::tests::*;
    use crate::config::{ArpAllTargets, ArpValidate, LacpRate, KERNEL_KEYS};
    use crate::options::{FailOverMac, HashPolicy, PrimaryReselect};
    use std::net::Ipv4Addr;

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
    fn control_group_is_a_group_name() {
        let c = BondConfig::from_toml_str(&with_header("control_group = \"xbond-ops\"")).unwrap();
        assert_eq!(c.control_group.as_deref(), Some("xbond-ops"));
        let e = toml_err(&with_header("control_group = \"ops;rm\""));
        assert_mentions(&e, &["control_group", "ops;rm", "group name"]);
    }
}
