//! The rules a configuration must keep ([`BondConfig::validate`]): names,
//! ranges, options that only some modes use, slave references, link
//! monitors and delays.

use std::collections::BTreeSet;
use std::fmt;

use super::error::{
    bad, bad_with, clean, int_range, missing_name, missing_slaves, IFNAME_VALID, MAX_SOCKET_PATH,
};
use super::model::default_peer_name;
use super::toml::{render_list, render_prio};
use super::{BondConfig, ConfigError, MAX_IFNAME_LEN, MAX_TARGETS};
use crate::options::Mode;
use crate::MAX_SLAVES;

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
/// The hashing modes (whose buckets can be rebalanced).
const HASH_MODES: &[Mode] = &[Mode::BalanceXor, Mode::Ieee8023ad];
/// Round robin.
const RR_MODES: &[Mode] = &[Mode::BalanceRr];

impl BondConfig {
    /// Checks every rule; the first broken one is the error.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check(true)
    }

    pub(super) fn check(&self, require_slaves: bool) -> Result<(), ConfigError> {
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
                render_list(&self.slaves),
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
                    value: render_list(&self.slaves),
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
        let values: [(&str, u64); 16] = [
            ("miimon", self.miimon.into()),
            ("updelay", self.updelay.into()),
            ("downdelay", self.downdelay.into()),
            ("peer_notif_delay", self.peer_notif_delay.into()),
            ("arp_interval", self.arp_interval.into()),
            ("packets_per_slave", self.packets_per_slave.into()),
            ("min_links", self.min_links.into()),
            (
                "queues",
                match self.queues {
                    super::Queues::Count(n) => n.into(),
                    super::Queues::Auto => 1,
                },
            ),
            ("ad_actor_sys_prio", self.ad_actor_sys_prio.into()),
            ("ad_user_port_key", self.ad_user_port_key.into()),
            ("arp_missed_max", self.arp_missed_max.into()),
            ("lp_interval", self.lp_interval.into()),
            ("rebalance_interval", self.rebalance_interval.into()),
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
        if !self.use_carrier {
            // The MII/ethtool polling that use_carrier 0 selects is gone from
            // current kernels too; xbond reads the carrier, always.
            return Err(bad_with(
                "use_carrier",
                "0",
                "1 (the carrier is how xbond sees a link: netlink events and \
                 miimon polls of IFLA_CARRIER; the MII/ethtool polling that 0 \
                 selects is not supported, as in current kernels)"
                    .into(),
            ));
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
        if let Some(m) = &self.metrics_listen {
            if m.parse::<std::net::SocketAddr>().is_err() {
                return Err(bad("metrics_listen", m));
            }
        }
        if let Some(p) = &self.proc_root {
            if !p.starts_with('/') || p.len() > 200 || p.contains('\0') || p.contains("..") {
                return Err(bad("proc_root", p));
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
        let rules: [(&str, bool, String, &'static [Mode]); 22] = [
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
                "rebalance_interval",
                self.rebalance_interval != 0,
                self.rebalance_interval.to_string(),
                HASH_MODES,
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
                render_list(&self.arp_ip_target),
                ARP_MODES,
            ),
            (
                "ns_ip6_target",
                !self.ns_ip6_target.is_empty(),
                render_list(&self.ns_ip6_target),
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
}

pub(super) fn check_ifname(key: &str, name: &str) -> Result<(), ConfigError> {
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
        return Err(bad(key, render_list(targets)));
    }
    for (i, t) in targets.iter().enumerate() {
        if unusable(t) || targets[..i].contains(t) {
            return Err(bad(key, t.to_string()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::config::tests::*;
    use crate::config::LacpRate;
    use crate::options::{FailOverMac, HashPolicy, LinkWatchPolicy, MacAddr};

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
}
