//! Kernel option strings (`mode=active-backup,miimon=100,primary=eno1`)
//! into a [`BondConfig`], doing with the monitors what the kernel would have
//! done, and [`Import`], the result that ifupdown stanzas share.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::error::{bad, bad_with, clean, valid_for};
use super::suggest::suggest;
use super::toml::{set_key, split_items};
use super::validate::check_ifname;
use super::{BondConfig, ConfigError, DEFAULT_MIIMON_MS, KEYS};
use crate::options::Mode;

/// The kernel bonding options that [`import_option_string`] and
/// [`import_ifupdown`](super::import_ifupdown) accept (besides `slaves`).
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

/// Modes where the kernel turns `miimon = 100` on by itself when no monitor is set.
const KERNEL_MIIMON_MODES: &[Mode] = &[Mode::Ieee8023ad, Mode::BalanceTlb, Mode::BalanceAlb];

const OPTIONS_VALID: &str =
    "key=value pairs separated by commas or spaces, e.g. mode=active-backup,miimon=100,primary=eno1";

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
        out.push_str(&self.config.write_toml(&self.needs, false));
        out
    }
}

/// Builds a config from kernel options one at a time, keeping what the
/// kernel would have done in mind.
pub(super) struct Importer {
    pub(super) cfg: BondConfig,
    /// Option -> (order given, value as given), for duplicates and "last one wins".
    pub(super) seen: BTreeMap<String, (usize, String)>,
    pub(super) warnings: Vec<String>,
}

impl Importer {
    pub(super) fn new(name: &str) -> Importer {
        Importer {
            cfg: BondConfig::new(name, Vec::new()),
            seen: BTreeMap::new(),
            warnings: Vec::new(),
        }
    }

    /// One kernel option, underscore form.
    pub(super) fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
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
    pub(super) fn add_slave(&mut self, name: &str) {
        if !self.cfg.slaves.iter().any(|s| s == name) {
            self.cfg.slaves.push(name.to_string());
        }
    }

    /// Applies what the kernel would have done with the monitors, then
    /// validates everything but the keys still to fill in.
    pub(super) fn finish(mut self) -> Result<Import, ConfigError> {
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

/// xbond's own keys that `xbond ctl BOND set` changes too.
pub const XBOND_LIVE_KEYS: &[&str] = &["rebalance_interval"];

/// Per-slave tables `xbond ctl BOND set` changes entry by entry
/// (`prio eno1=10`, as `ip link set eno1 type bond_slave prio 10`).
const SLAVE_TABLES: &[&str] = &["prio", "ad_actor_port_prio"];

/// `cfg` with kernel options changed together, as `xbond ctl BOND set KEY
/// VALUE [KEY VALUE ...]` and `ip link set bond0 type bond ...` ask (the
/// sysfs forms: `arp_ip_target +10.0.0.1` adds, `-10.0.0.1` removes, a plain
/// list replaces), validated as a config file is: the error names the key,
/// the value and what is valid.
pub fn with_kernel_options(
    cfg: &BondConfig,
    pairs: &[(String, String)],
) -> Result<BondConfig, ConfigError> {
    let mut imp = Importer {
        cfg: cfg.clone(),
        seen: BTreeMap::new(),
        warnings: Vec::new(),
    };
    for (key, value) in pairs {
        let key = key.trim().replace('-', "_");
        let v = value.trim();
        // A plain list replaces the targets (sysfs appends one at a time;
        // a whole list is what a config file gives).
        if !v.starts_with('+') && !v.starts_with('-') {
            match key.as_str() {
                "arp_ip_target" => imp.cfg.arp_ip_target.clear(),
                "ns_ip6_target" => imp.cfg.ns_ip6_target.clear(),
                _ => {}
            }
        }
        if SLAVE_TABLES.contains(&key.as_str()) {
            let mut table = toml::Table::new();
            let current: Vec<(String, i64)> = if key == "prio" {
                imp.cfg
                    .prio
                    .iter()
                    .map(|(k, v)| (k.clone(), i64::from(*v)))
                    .collect()
            } else {
                imp.cfg
                    .ad_actor_port_prio
                    .iter()
                    .map(|(k, v)| (k.clone(), i64::from(*v)))
                    .collect()
            };
            for (k, n) in current {
                table.insert(k, toml::Value::Integer(n));
            }
            for item in v.split(',').map(str::trim).filter(|i| !i.is_empty()) {
                let (k, n) = item
                    .split_once('=')
                    .ok_or_else(|| bad_with(&key, item, "SLAVE=N, e.g. eno1=10".into()))?;
                let n: i64 = n.trim().parse().map_err(|_| bad(&key, item))?;
                table.insert(k.trim().to_string(), toml::Value::Integer(n));
            }
            set_key(&mut imp.cfg, &key, &toml::Value::Table(table))?;
            continue;
        }
        if XBOND_LIVE_KEYS.contains(&key.as_str()) {
            // xbond's own keys, as the TOML file writes them.
            let doc: toml::Table =
                toml::from_str(&format!("v = {v}")).map_err(|_| super::error::bad(&key, v))?;
            let value = doc.get("v").ok_or_else(|| super::error::bad(&key, v))?;
            set_key(&mut imp.cfg, &key, value)?;
            continue;
        }
        imp.set(&key, v)?;
        if let Some(w) = imp.warnings.first() {
            return Err(ConfigError::Syntax {
                text: clean(&format!("{key} {v}")),
                expected: w.clone(),
            });
        }
    }
    imp.cfg.validate()?;
    Ok(imp.cfg)
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

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::config::error::missing_slaves;
    use crate::config::tests::*;
    use crate::config::{AdSelect, ArpValidate, LacpRate};
    use crate::options::{FailOverMac, HashPolicy};

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
    fn set_name_moves_the_default_peer_name() {
        let mut imp = import_option_string("mode=1,miimon=100").unwrap();
        imp.config.set_name("uplink");
        assert_eq!(imp.config.peer_name, "xb-uplink");
        assert_eq!(imp.config.socket_path(), "/run/xbond/uplink.sock");
    }
}
