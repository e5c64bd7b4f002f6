//! Changes to a running bond (`xbond ctl BOND ...`), as the kernel allows
//! through sysfs and `ip link set bond0 type bond`: options that take
//! effect at once, and the active slave. What the kernel changes only with
//! the bond down or without slaves is refused with the reason.

use std::collections::BTreeMap;
use std::time::Instant;

use super::mode::{lacp_config, ModeState};
use super::{links, Bond};
use crate::config::BondConfig;

/// The options a running bond takes. The kernel also changes `lacp_rate`,
/// `ad_actor_sys_prio` and `ad_actor_port_prio` only while the bond is down;
/// xbond takes them live (the ports tell the partner at once).
pub const LIVE_KEYS: &[&str] = &[
    "miimon",
    "updelay",
    "downdelay",
    "primary",
    "primary_reselect",
    "xmit_hash_policy",
    "packets_per_slave",
    "num_grat_arp",
    "num_unsol_na",
    "peer_notif_delay",
    "all_slaves_active",
    "arp_interval",
    "arp_ip_target",
    "ns_ip6_target",
    "arp_validate",
    "arp_all_targets",
    "arp_missed_max",
    "min_links",
    "lacp_rate",
    "lacp_active",
    "ad_actor_sys_prio",
    "ad_actor_port_prio",
    "lp_interval",
    "resend_igmp",
    "rebalance_interval",
    "prio",
];

/// Keys of a configuration with their values as the TOML file writes them
/// (a table, such as `prio`, as its whole text).
pub fn key_values(cfg: &BondConfig) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut table: Option<String> = None;
    for line in cfg.to_toml_with_defaults().lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            table = Some(name.to_string());
            out.insert(name.to_string(), String::new());
            continue;
        }
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match &table {
            Some(t) => {
                let v = out.entry(t.clone()).or_default();
                v.push_str(line);
                v.push('\n');
            }
            None => {
                if let Some((k, v)) = line.split_once(" = ") {
                    out.insert(k.trim().to_string(), v.trim().to_string());
                }
            }
        }
    }
    out
}

/// The keys whose values differ between `a` and `b`.
pub fn changed_keys(a: &BondConfig, b: &BondConfig) -> Vec<String> {
    let (a, b) = (key_values(a), key_values(b));
    let mut keys: Vec<String> = a
        .keys()
        .chain(b.keys())
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// Why a key cannot change while the bond runs.
fn why_not_live(key: &str) -> String {
    match key {
        "mode" => "the mode cannot change while the bond has slaves (as the kernel); \
                   edit the config and restart the bond"
            .into(),
        "slaves" => "slaves change with `xbond ctl BOND enslave IF` and `release IF`".into(),
        "fail_over_mac" => "fail_over_mac cannot change while the bond has slaves (as the \
                            kernel); edit the config and restart the bond"
            .into(),
        _ => format!(
            "{key} cannot change while the bond runs (the kernel needs the bond down for \
             it, or it is xbond's set-up); edit the config and restart the bond; live: {}",
            LIVE_KEYS.join(", ")
        ),
    }
}

impl Bond {
    /// Moves the running bond to `new`, a validated configuration that
    /// differs from the current one only in [`LIVE_KEYS`]; returns the keys
    /// that changed. A change of any other key is refused and nothing
    /// changes.
    pub fn reconfigure(&mut self, new: BondConfig, now: Instant) -> Result<Vec<String>, String> {
        let changed = changed_keys(&self.cfg, &new);
        if let Some(k) = changed.iter().find(|k| !LIVE_KEYS.contains(&k.as_str())) {
            return Err(why_not_live(k));
        }
        if changed.is_empty() {
            return Ok(changed);
        }
        let has = |k: &str| changed.iter().any(|c| c == k);
        self.cfg = new;
        if has("miimon") {
            self.mii_timer = links::mii_timer(self.cfg.miimon, now);
        }
        if has("primary") {
            self.primary = self
                .cfg
                .primary
                .as_ref()
                .and_then(|p| self.slaves.iter().position(|s| &s.spec.name == p));
        }
        if has("rebalance_interval") {
            let every = (self.cfg.rebalance_interval > 0)
                .then(|| std::time::Duration::from_secs(u64::from(self.cfg.rebalance_interval)));
            self.hash.set_interval(every, now);
        }
        if has("prio") {
            for s in &mut self.slaves {
                s.prio = self.cfg.prio.get(&s.spec.name).copied().unwrap_or(0);
            }
        }
        let arp_keys = [
            "arp_interval",
            "arp_ip_target",
            "ns_ip6_target",
            "arp_validate",
            "arp_all_targets",
            "arp_missed_max",
        ];
        if arp_keys.iter().any(|k| has(k)) {
            self.mode.set_arp(&self.cfg, &self.slaves, now);
            if let Some(arp) = self.mode.arp_mut() {
                arp.set_paths(self.probe_paths.clone());
            }
        }
        let bond_mac = self.bond_mac;
        let slaves = self.slaves.clone();
        if let ModeState::Lacp { engine } = &mut self.mode {
            let (lcfg, prios) = lacp_config(&self.cfg, &slaves, bond_mac);
            engine.reconfigure(lcfg, &prios, now);
        }
        // Links re-judged by the new monitors and delays, then the active
        // slave, carrier and plan.
        for i in 0..self.slaves.len() {
            let carrier = self.slaves[i].carrier;
            self.handle_carrier(i, carrier, now);
        }
        self.reselect(now);
        Ok(changed)
    }

    /// Makes `name` the active slave, as writing the kernel's `active_slave`
    /// does: in modes with an active slave, to a slave whose link is up. It
    /// stays active until the next reselection (a link change), when
    /// `primary` and `primary_reselect` apply again.
    pub fn set_active_slave(&mut self, name: &str, now: Instant) -> Result<(), String> {
        if !self.cfg.mode.has_active_slave() {
            return Err(format!(
                "active-slave: mode {} has no active slave; valid in active-backup, \
                 balance-tlb and balance-alb",
                self.cfg.mode
            ));
        }
        let Some(i) = self.slaves.iter().position(|s| s.spec.name == name) else {
            return Err(format!(
                "active-slave {name}: no such slave; slaves: {}",
                self.slave_names()
            ));
        };
        if !self.slaves[i].link.usable() {
            return Err(format!(
                "active-slave {name}: its link is down; the active slave must have its link up"
            ));
        }
        if self.active != Some(i) {
            self.change_active(Some(i), now);
            self.publish();
        }
        Ok(())
    }

    /// The slaves' names, comma-separated.
    pub(super) fn slave_names(&self) -> String {
        self.slaves
            .iter()
            .map(|s| s.spec.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}
