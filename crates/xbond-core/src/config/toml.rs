//! The bond's TOML file, read and written one way: one list of keys
//! ([`KEYS`], in file order) drives both [`BondConfig::from_toml_str`] and
//! [`BondConfig::to_toml`], and each field's type knows how it reads from a
//! TOML value (strings and the kernel's numbers accepted for every kind) and
//! how it is written back. The `toml` crate parses the syntax; errors name the
//! key, the value and what is valid, and an unknown key gets the nearest known
//! one.

use ::toml::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::error::{bad, bad_with, clean, int_range, missing_name, missing_slaves};
use super::model::{default_peer_name, AdSelect, ArpAllTargets, ArpValidate, LacpRate};
use super::suggest::suggest;
use super::{BondConfig, ConfigError};
use crate::options::UmemLayout;
use crate::options::{
    BadValue, FailOverMac, HashFunction, HashPolicy, LinkWatchPolicy, MacAddr, Mode,
    PrimaryReselect,
};

/// The file's keys, each a [`BondConfig`] field of the same name, in the
/// order the file is written: the keys written always, then the keys written
/// where they differ from the default (with an optional reader of their own),
/// then the tables, which TOML puts last.
macro_rules! toml_keys {
    (
        always: $($always:ident),+;
        optional: $($opt:ident $(= $reader:path)?),+;
        tables: $($table:ident),+;
    ) => {
        /// Every key a bond's TOML file may hold, in the order
        /// [`BondConfig::to_toml`] writes them.
        pub const KEYS: &[&str] = &[
            $(stringify!($always),)+ $(stringify!($opt),)+ $(stringify!($table),)+
        ];

        /// Sets one key from a TOML value (strings are accepted for every kind).
        pub(super) fn set_key(c: &mut BondConfig, key: &str, v: &Value) -> Result<(), ConfigError> {
            match key {
                $(stringify!($always) => c.$always = TomlValue::read(key, v)?,)+
                $(stringify!($opt) => c.$opt = toml_keys!(@read $($reader)?)(key, v)?,)+
                $(stringify!($table) => c.$table = read_table(key, v)?,)+
                _ => {
                    return Err(ConfigError::UnknownKey {
                        key: clean(key),
                        suggestion: suggest(key, KEYS),
                    })
                }
            }
            Ok(())
        }

        /// Writes every key of `c` that differs from `d` (or every key, if
        /// the writer says so).
        fn write_keys(c: &BondConfig, d: &BondConfig, w: &mut TomlWriter<'_>) {
            $(w.line(stringify!($always), c.$always.write());)+
            $(
                if w.defaults || c.$opt != d.$opt {
                    w.line(stringify!($opt), c.$opt.write());
                }
            )+
            $(w.table(stringify!($table), &c.$table);)+
        }
    };
    (@read) => { TomlValue::read };
    (@read $reader:path) => { $reader };
}

toml_keys! {
    always: name, slaves, mode, miimon;
    optional:
        peer_name,
        updelay,
        downdelay,
        primary,
        primary_reselect,
        fail_over_mac,
        xmit_hash_policy,
        xmit_hash_function,
        packets_per_slave,
        num_grat_arp,
        num_unsol_na,
        peer_notif_delay,
        all_slaves_active,
        arp_interval,
        arp_ip_target,
        ns_ip6_target,
        link_watch_policy,
        min_links,
        mac,
        queues,
        umem_layout,
        lacp_rate,
        lacp_active,
        ad_select,
        ad_actor_system,
        ad_actor_sys_prio,
        ad_user_port_key,
        coupled_control,
        lacp_fallback = read_lacp_fallback,
        arp_validate,
        arp_all_targets,
        arp_missed_max,
        tlb_dynamic_lb,
        lp_interval,
        rebalance_interval,
        resend_igmp,
        use_carrier,
        control_socket,
        control_group,
        metrics_listen,
        proc_root;
    tables: prio, ad_actor_port_prio;
}

impl BondConfig {
    /// Parses and validates a bond's TOML file (flat, one bond per file, keys
    /// with the kernel's names in underscore form; see [`KEYS`]).
    pub fn from_toml_str(text: &str) -> Result<BondConfig, ConfigError> {
        let table: ::toml::Table = text
            .parse()
            .map_err(|e: ::toml::de::Error| ConfigError::Toml(toml_error_text(text, &e)))?;
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
        self.write_toml(&[], false)
    }

    /// As [`BondConfig::to_toml`], but with every key that has a value,
    /// defaults included (what `xbond check` prints); reads back to an equal
    /// configuration too.
    pub fn to_toml_with_defaults(&self) -> String {
        self.write_toml(&[], true)
    }

    /// Writes the TOML file; keys in `fill_in` get a `# fill in` comment.
    pub(super) fn write_toml(&self, fill_in: &[String], defaults: bool) -> String {
        let mut w = TomlWriter {
            out: String::new(),
            fill_in,
            defaults,
        };
        write_keys(self, &BondConfig::new(&self.name, Vec::new()), &mut w);
        w.out
    }
}

/// Accumulates TOML lines.
struct TomlWriter<'a> {
    out: String,
    /// Keys that get a `# fill in` comment.
    fill_in: &'a [String],
    /// Write keys that have their default value too.
    defaults: bool,
}

impl TomlWriter<'_> {
    /// `key = value`, if there is a value.
    fn line(&mut self, key: &str, value: Option<String>) {
        let Some(value) = value else {
            return;
        };
        self.out.push_str(key);
        self.out.push_str(" = ");
        self.out.push_str(&value);
        if self.fill_in.iter().any(|k| k == key) {
            self.out.push_str("  # fill in");
        }
        self.out.push('\n');
    }

    /// A `[table]` section, if the table has entries.
    fn table<V: fmt::Display>(&mut self, name: &str, t: &BTreeMap<String, V>) {
        if !t.is_empty() {
            self.out.push_str(&format!("\n[{name}]\n"));
            for (k, v) in t {
                self.out.push_str(&format!("{} = {v}\n", toml_key(k)));
            }
        }
    }
}

/// A field's type as the file holds it.
trait TomlValue: Sized {
    /// The value of `key` from what the user wrote.
    fn read(key: &str, v: &Value) -> Result<Self, ConfigError>;
    /// The value as TOML that reads back to it; `None` for an unset option.
    fn write(&self) -> Option<String>;
}

impl TomlValue for String {
    fn read(key: &str, v: &Value) -> Result<Self, ConfigError> {
        match v {
            Value::String(s) => Ok(s.clone()),
            other => Err(bad(key, render(other))),
        }
    }
    fn write(&self) -> Option<String> {
        Some(toml_str(self))
    }
}

impl<T: TomlValue> TomlValue for Option<T> {
    fn read(key: &str, v: &Value) -> Result<Self, ConfigError> {
        T::read(key, v).map(Some)
    }
    fn write(&self) -> Option<String> {
        self.as_ref().and_then(T::write)
    }
}

/// Integers, within the key's range (see `int_range`); strings of digits too.
macro_rules! int_value {
    ($($t:ty),+) => {$(
        impl TomlValue for $t {
            fn read(key: &str, v: &Value) -> Result<Self, ConfigError> {
                let (min, max, _) = int_range(key).unwrap_or((0, u64::MAX, ""));
                let n = match v {
                    Value::Integer(i) => u64::try_from(*i).ok(),
                    Value::String(s) => s.trim().parse::<u64>().ok(),
                    _ => None,
                };
                n.filter(|n| (min..=max).contains(n))
                    .and_then(|n| <$t>::try_from(n).ok())
                    .ok_or_else(|| bad(key, render(v)))
            }
            fn write(&self) -> Option<String> {
                Some(self.to_string())
            }
        }
    )+};
}

int_value!(u8, u16, u32);

impl TomlValue for bool {
    fn read(key: &str, v: &Value) -> Result<Self, ConfigError> {
        let b = match v {
            Value::Boolean(b) => Some(*b),
            Value::Integer(0) => Some(false),
            Value::Integer(1) => Some(true),
            Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "1" | "on" | "true" | "yes" => Some(true),
                "0" | "off" | "false" | "no" => Some(false),
                _ => None,
            },
            _ => None,
        };
        b.ok_or_else(|| bad(key, render(v)))
    }
    fn write(&self) -> Option<String> {
        Some(self.to_string())
    }
}

/// The kernel's enums: by name or by the kernel's number, written by name.
macro_rules! enum_value {
    ($($t:ty),+) => {$(
        impl TomlValue for $t {
            fn read(key: &str, v: &Value) -> Result<Self, ConfigError> {
                let text = match v {
                    Value::String(s) => s.clone(),
                    Value::Integer(i) => i.to_string(),
                    other => return Err(bad(key, render(other))),
                };
                text.parse().map_err(|_: BadValue| bad(key, render(v)))
            }
            fn write(&self) -> Option<String> {
                Some(toml_str(self.as_str()))
            }
        }
    )+};
}

enum_value!(
    Mode,
    PrimaryReselect,
    FailOverMac,
    HashPolicy,
    HashFunction,
    UmemLayout,
    LinkWatchPolicy,
    LacpRate,
    AdSelect,
    ArpValidate,
    ArpAllTargets
);

/// `"auto"`, or a number of queues in range.
impl TomlValue for super::Queues {
    fn read(key: &str, v: &Value) -> Result<Self, ConfigError> {
        match v {
            Value::String(s) if s.trim().eq_ignore_ascii_case("auto") => Ok(super::Queues::Auto),
            _ => u32::read(key, v).map(super::Queues::Count),
        }
    }
    fn write(&self) -> Option<String> {
        Some(match self {
            super::Queues::Auto => toml_str("auto"),
            super::Queues::Count(n) => n.to_string(),
        })
    }
}

impl TomlValue for MacAddr {
    fn read(key: &str, v: &Value) -> Result<Self, ConfigError> {
        let s = String::read(key, v)?;
        s.parse().map_err(|_: BadValue| bad(key, &s))
    }
    fn write(&self) -> Option<String> {
        Some(toml_str(&self.to_string()))
    }
}

/// Lists: a TOML array of strings, or one string separated by commas or
/// whitespace; written as an array of strings.
macro_rules! list_value {
    ($($t:ty),+) => {$(
        impl TomlValue for Vec<$t> {
            fn read(key: &str, v: &Value) -> Result<Self, ConfigError> {
                let items: Vec<String> = match v {
                    Value::Array(a) => a
                        .iter()
                        .map(|item| match item {
                            Value::String(s) => Ok(s.trim().to_string()),
                            other => Err(bad(key, render(other))),
                        })
                        .collect::<Result<_, _>>()?,
                    Value::String(s) => split_items(s).map(str::to_string).collect(),
                    other => return Err(bad(key, render(other))),
                };
                items
                    .iter()
                    .map(|s| s.parse::<$t>().map_err(|_| bad(key, s)))
                    .collect()
            }
            fn write(&self) -> Option<String> {
                Some(render_list(self))
            }
        }
    )+};
}

list_value!(String, Ipv4Addr, Ipv6Addr);

/// `lacp_fallback`: "off" (and the like) for none, else only active-backup.
fn read_lacp_fallback(key: &str, v: &Value) -> Result<Option<Mode>, ConfigError> {
    let off = match v {
        Value::Boolean(false) => true,
        Value::String(s) => matches!(
            s.trim().to_ascii_lowercase().as_str(),
            "off" | "none" | "no" | "false"
        ),
        _ => false,
    };
    if off {
        return Ok(None);
    }
    match Mode::read(key, v) {
        Ok(Mode::ActiveBackup) => Ok(Some(Mode::ActiveBackup)),
        _ => Err(bad(key, render(v))),
    }
}

/// A table of slave = integer (`[prio]`, `[ad_actor_port_prio]`), each
/// integer within `V`'s range.
fn read_table<V>(key: &str, v: &Value) -> Result<BTreeMap<String, V>, ConfigError>
where
    V: TryFrom<i64> + Into<i64> + Bounded,
{
    let Value::Table(t) = v else {
        return Err(bad(key, render(v)));
    };
    let mut out = BTreeMap::new();
    for (slave, p) in t {
        let n = match p {
            Value::Integer(i) => Some(*i),
            Value::String(s) => s.trim().parse::<i64>().ok(),
            _ => None,
        };
        let n = n.and_then(|n| V::try_from(n).ok()).ok_or_else(|| {
            bad_with(
                &format!("{key}.{slave}"),
                render(p),
                format!("an integer from {} to {}", V::MIN.into(), V::MAX.into()),
            )
        })?;
        out.insert(slave.clone(), n);
    }
    Ok(out)
}

/// The range of a table's integers, for messages.
trait Bounded: Sized {
    const MIN: Self;
    const MAX: Self;
}

impl Bounded for i32 {
    const MIN: i32 = i32::MIN;
    const MAX: i32 = i32::MAX;
}

impl Bounded for u16 {
    const MIN: u16 = u16::MIN;
    const MAX: u16 = u16::MAX;
}

/// The words of a list given as one string.
pub(super) fn split_items(s: &str) -> impl Iterator<Item = &str> {
    s.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|t| !t.is_empty())
}

/// A TOML value as the user wrote it, for messages.
fn render(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => render_inner(other),
    }
}

fn render_inner(v: &Value) -> String {
    match v {
        Value::String(s) => toml_str(s),
        Value::Integer(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Boolean(b) => b.to_string(),
        Value::Datetime(d) => d.to_string(),
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(render_inner).collect::<Vec<_>>().join(", ")
        ),
        Value::Table(t) => format!(
            "{{ {} }}",
            t.iter()
                .map(|(k, v)| format!("{} = {}", toml_key(k), render_inner(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// A list as a TOML array of strings.
pub(super) fn render_list<T: fmt::Display>(items: &[T]) -> String {
    format!(
        "[{}]",
        items
            .iter()
            .map(|s| toml_str(&s.to_string()))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// A table as a TOML inline table, for messages.
pub(super) fn render_prio<V: fmt::Display>(prio: &BTreeMap<String, V>) -> String {
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

/// A syntax error in one line, with its line and column.
fn toml_error_text(text: &str, e: &::toml::de::Error) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::error::valid_for;
    use crate::config::tests::*;
    use crate::config::{ArpAllTargets, ArpValidate, LacpRate, KERNEL_KEYS};
    use crate::options::{FailOverMac, HashPolicy, PrimaryReselect};
    use std::net::Ipv4Addr;

    #[test]
    fn umem_layout_is_auto_by_default_and_reads_each_layout() {
        let c = BondConfig::from_toml_str(&with_header("")).unwrap();
        assert_eq!(c.umem_layout, UmemLayout::Auto);
        for (text, want) in [
            ("auto", UmemLayout::Auto),
            ("shared", UmemLayout::Shared),
            ("split", UmemLayout::Split),
        ] {
            let c = BondConfig::from_toml_str(&with_header(&format!("umem_layout = \"{text}\"")))
                .unwrap();
            assert_eq!(c.umem_layout, want);
            let back = BondConfig::from_toml_str(&c.to_toml()).unwrap();
            assert_eq!(back.umem_layout, want);
        }
        let e = toml_err(&with_header("umem_layout = \"mixed\""));
        assert_mentions(&e, &["umem_layout", "mixed", "auto", "shared", "split"]);
    }

    #[test]
    fn queues_is_auto_by_default_and_reads_auto_or_a_count() {
        use crate::config::Queues;
        let c = BondConfig::from_toml_str(&with_header("")).unwrap();
        assert_eq!(c.queues, Queues::Auto);
        let c = BondConfig::from_toml_str(&with_header("queues = \"auto\"")).unwrap();
        assert_eq!(c.queues, Queues::Auto);
        let c = BondConfig::from_toml_str(&with_header("queues = 8")).unwrap();
        assert_eq!(c.queues, Queues::Count(8));
        let back = BondConfig::from_toml_str(&c.to_toml()).unwrap();
        assert_eq!(back.queues, Queues::Count(8));
        let e = toml_err(&with_header("queues = \"many\""));
        assert_mentions(&e, &["queues", "many", "1 to 64", "auto"]);
    }

    #[test]
    fn example_parses_with_every_field_right() {
        let c = BondConfig::from_toml_str(EXAMPLE).unwrap();
        let mut want = BondConfig::new("bond0", two());
        want.mode = Mode::ActiveBackup;
        want.primary = Some("eno1".into());
        want.xmit_hash_policy = HashPolicy::Layer34;
        want.queues = crate::config::Queues::Count(1);
        assert_eq!(c, want);
        assert_eq!(c.peer_name, "xb-bond0");
        assert_eq!(c.miimon, 100);
        assert_eq!(c.queues, crate::config::Queues::Count(1));
        assert_eq!(c.socket_path(), "/run/xbond/bond0.sock");
        assert!(!c.monitoring_off());
    }

    #[test]
    fn accepts_numbers_strings_and_kernel_synonyms() {
        let c = BondConfig::from_toml_str(&with_header(
            "mode = 4\nmiimon = \"200\"\nlacp_rate = 1\nlacp_active = \"off\"\n\
             xmit_hash_policy = 2\nuse_carrier = \"on\"\nall_slaves_active = \"on\"",
        ))
        .unwrap();
        assert_eq!(c.mode, Mode::Ieee8023ad);
        assert_eq!(c.miimon, 200);
        assert_eq!(c.lacp_rate, LacpRate::Fast);
        assert!(!c.lacp_active);
        assert_eq!(c.xmit_hash_policy, HashPolicy::Layer23);
        assert!(c.use_carrier);
        assert!(c.all_slaves_active);
        let e = toml_err(&with_header("use_carrier = 0"));
        assert_mentions(&e, &["use_carrier", "0", "carrier", "not supported"]);
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
        c.queues = crate::config::Queues::Count(4);
        c.prio.insert("eno2.100".into(), 20);
        c.prio.insert("eno1".into(), -3);
        c.control_socket = Some("/run/xbond/\"odd\".sock".into());
        c.validate().unwrap();
        let text = c.to_toml();
        assert_eq!(BondConfig::from_toml_str(&text).unwrap(), c, "{text}");
        assert!(text.contains("\"eno2.100\" = 20"), "{text}");
        let text = c.to_toml_with_defaults();
        assert_eq!(BondConfig::from_toml_str(&text).unwrap(), c, "{text}");
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

    #[test]
    fn with_defaults_writes_every_key_that_has_a_value() {
        let c = base(Mode::ActiveBackup);
        let text = c.to_toml_with_defaults();
        assert_eq!(BondConfig::from_toml_str(&text).unwrap(), c, "{text}");
        let unset = [
            "primary",
            "link_watch_policy",
            "mac",
            "ad_actor_system",
            "lacp_fallback",
            "control_socket",
            "control_group",
            "metrics_listen",
            "proc_root",
            "prio",
            "ad_actor_port_prio",
        ];
        let written: Vec<&str> = text.lines().filter_map(|l| l.split(" = ").next()).collect();
        let want: Vec<&str> = KEYS
            .iter()
            .copied()
            .filter(|k| !unset.contains(k))
            .collect();
        assert_eq!(written, want, "{text}");
        assert!(text.contains("\nlacp_rate = \"slow\"\n"), "{text}");
    }
}
