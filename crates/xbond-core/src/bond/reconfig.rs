//! Changes to a running bond (`xbond ctl BOND ...`), as the kernel allows
//! through sysfs and `ip link set bond0 type bond`: options that take
//! effect at once, and the active slave. What the kernel changes only with
//! the bond down or without slaves is refused with the reason.

use std::collections::BTreeMap;
use std::time::Instant;

use super::mode::{lacp_config, ModeState};
use super::{links, Bond, SlaveSpec};
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
    "resend_igmp",
    "rebalance_interval",
    "prio",
];

/// Keys of a configuration with their values as TOML values (a table, such
/// as `prio`, inline: `{ eno1 = 10 }`), read back from what the TOML writer
/// writes.
pub fn key_values(cfg: &BondConfig) -> BTreeMap<String, String> {
    let text = cfg.to_toml_with_defaults();
    let Ok(table) = text.parse::<toml::Table>() else {
        return BTreeMap::new();
    };
    table
        .into_iter()
        .map(|(k, v)| (k, toml_value(&v)))
        .collect()
}

/// One TOML value as it reads in a file (tables inline).
fn toml_value(v: &toml::Value) -> String {
    match v {
        toml::Value::Table(t) => {
            let items: Vec<String> = t
                .iter()
                .map(|(k, v)| format!("{} = {}", toml_key(k), toml_value(v)))
                .collect();
            format!("{{ {} }}", items.join(", "))
        }
        other => other.to_string(),
    }
}

/// A table key, quoted when it is not a bare key.
fn toml_key(k: &str) -> String {
    if !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        k.to_string()
    } else {
        toml::Value::String(k.to_string()).to_string()
    }
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
            self.force_primary = self.primary.is_some();
        }
        if has("rebalance_interval") {
            self.hash.set_interval(self.cfg.rebalance_every(), now);
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

    /// The bond with its slaves changed (`xbond ctl enslave` / `release`):
    /// `cfg` lists the new slaves (validated) and `specs` follows it. Every
    /// slave that stays keeps its state: link, counters, MAC, LACP machines
    /// and partner, ARP proof; the active slave stays if it stays; the bond
    /// keeps its MAC. A new slave starts down (feed its carrier) and takes
    /// the bond's MAC where the mode gives slaves the bond's. balance-tlb/alb
    /// assign their tables again.
    pub fn with_slaves(self, cfg: BondConfig, specs: Vec<SlaveSpec>, now: Instant) -> Bond {
        let old = self;
        let map: Vec<Option<usize>> = old
            .slaves
            .iter()
            .map(|s| cfg.slaves.iter().position(|n| *n == s.spec.name))
            .collect();
        let mut cfg = cfg;
        if cfg.mac.is_none() {
            // The bond keeps its MAC when its first slave goes.
            cfg.mac = Some(old.bond_mac);
        }
        let mut new = Bond::new(cfg, specs, now);
        new.cfg.mac = old.cfg.mac;
        new.events.clear();
        let mut fresh = vec![true; new.slaves.len()];
        for (i, to) in map.iter().enumerate() {
            if let Some(j) = *to {
                let prio = new.slaves[j].prio;
                new.slaves[j] = old.slaves[i].clone();
                new.slaves[j].prio = prio;
                fresh[j] = false;
            }
        }
        new.active = old.active.and_then(|a| map[a]);
        // Forced as the kernel forces it: the primary was just enslaved, or
        // a force was still pending.
        new.force_primary = new.primary.is_some_and(|p| fresh[p]) || old.force_primary;
        new.carrier = old.carrier;
        new.plan_version = old.plan_version;
        new.mtu = old.mtu;
        new.ipv4 = old.ipv4.clone();
        new.ipv6 = old.ipv6.clone();
        new.uppers = old.uppers.clone();
        new.joined = old.joined.clone();
        new.mii_timer = old.mii_timer;
        new.hash = old.hash.clone();
        match (&mut new.mode, &old.mode) {
            (ModeState::Lacp { engine }, ModeState::Lacp { engine: was }) => {
                engine.adopt(was, &map);
            }
            (ModeState::Static { arp: Some(a) }, ModeState::Static { arp: Some(w) })
            | (
                ModeState::ActiveBackup { arp: Some(a), .. },
                ModeState::ActiveBackup { arp: Some(w), .. },
            ) => a.keep_proof_of(w, &map),
            _ => {}
        }
        new.set_probe_paths(old.probe_paths.clone());
        if let Some(r) = new.mode.rlb_mut() {
            r.set_bond_ips(new.ipv4.clone());
        }
        let take_bond_mac = new.slaves_take_bond_mac();
        for (j, is_new) in fresh.iter().enumerate() {
            if *is_new && take_bond_mac {
                let mac = new.bond_mac;
                new.slaves[j].mac = new.slaves[j].spec.perm_mac;
                new.set_slave_mac(j, mac);
            }
        }
        // A released active slave: the reselection picks another.
        new.reselect(now);
        new.publish();
        new
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

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::super::test_util::{bond, cfg, drain, spec};
    use super::*;
    use crate::bond::BondEvent;
    use crate::options::Mode;

    #[test]
    fn releasing_a_backup_changes_nothing_for_the_active_and_releasing_the_active_fails_over() {
        let t0 = Instant::now();
        let b = bond(cfg(Mode::ActiveBackup), t0);
        let names: Vec<String> = b.slaves().iter().map(|s| s.spec.name.clone()).collect();
        let mut b = b;
        for i in 0..names.len() {
            b.handle_carrier(i, true, t0);
        }
        drain(&mut b);
        let active = b.active().unwrap();
        let mac = b.bond_mac();
        // Release a slave that is not active.
        let gone = (0..names.len()).find(|&i| i != active).unwrap();
        let mut c = b.config().clone();
        c.slaves.retain(|n| *n != names[gone]);
        let specs: Vec<SlaveSpec> = b
            .slaves()
            .iter()
            .filter(|s| s.spec.name != names[gone])
            .map(|s| s.spec.clone())
            .collect();
        let failures = b.slaves()[active].link_failure_count;
        let mut b = b.with_slaves(c, specs, t0);
        let ev = drain(&mut b);
        assert!(
            !ev.iter().any(|e| matches!(
                e,
                BondEvent::ActiveChanged { .. } | BondEvent::SetBondMac(_)
            )),
            "{ev:?}"
        );
        assert_eq!(b.slaves()[b.active().unwrap()].spec.name, names[active]);
        assert_eq!(b.slaves()[b.active().unwrap()].link_failure_count, failures);
        assert_eq!(b.bond_mac(), mac);
        // Enslave a new one: down until its carrier comes, with the bond's MAC.
        let mut c = b.config().clone();
        c.slaves.push("eno9".into());
        let mut specs: Vec<SlaveSpec> = b.slaves().iter().map(|s| s.spec.clone()).collect();
        specs.push(spec("eno9", 9, 1000));
        let mut b = b.with_slaves(c, specs, t0);
        let ev = drain(&mut b);
        let j = b.slaves().len() - 1;
        assert!(
            ev.contains(&BondEvent::SetSlaveMac { slave: j, mac }),
            "{ev:?}"
        );
        assert!(!b.slaves()[j].link.usable());
        b.handle_carrier(j, true, t0);
        assert!(b.slaves()[j].link.usable());
        // Release the active one: another takes over.
        let a = b.active().unwrap();
        let name = b.slaves()[a].spec.name.clone();
        let mut c = b.config().clone();
        c.slaves.retain(|n| *n != name);
        let specs: Vec<SlaveSpec> = b
            .slaves()
            .iter()
            .filter(|s| s.spec.name != name)
            .map(|s| s.spec.clone())
            .collect();
        let mut b = b.with_slaves(c, specs, t0);
        let ev = drain(&mut b);
        assert!(
            ev.iter()
                .any(|e| matches!(e, BondEvent::ActiveChanged { new: Some(_), .. })),
            "{ev:?}"
        );
        assert_ne!(b.slaves()[b.active().unwrap()].spec.name, name);
    }
}

#[cfg(test)]
mod arp_tests {
    use std::time::{Duration, Instant};

    use super::super::test_util::{bond, cfg};
    use crate::options::Mode;

    #[test]
    fn an_arp_monitor_started_at_run_time_keeps_a_backup_that_sees_traffic() {
        let t0 = Instant::now();
        let mut b = bond(cfg(Mode::ActiveBackup), t0);
        b.handle_carrier(0, true, t0);
        b.handle_carrier(1, true, t0);
        b.set_active_slave("eno2", t0).unwrap();
        let mut c = b.config().clone();
        c.miimon = 0;
        c.arp_interval = 200;
        c.arp_ip_target = vec!["10.0.0.2".parse().unwrap()];
        b.reconfigure(c, t0).unwrap();
        let mut failures = Vec::new();
        for step in 1..=60u64 {
            let now = t0 + Duration::from_millis(step * 50);
            // The backup sees the active's broadcast probes through the
            // switch: traffic on it every tick.
            if step % 4 == 1 {
                b.note_rx(0, now);
            }
            if b.poll_timeout().is_some_and(|t| t <= now) {
                b.handle_timeout(now);
            }
            failures.push(b.slaves()[0].link_failure_count);
        }
        assert!(failures.iter().all(|&f| f == 0), "{failures:?}");
    }
}
