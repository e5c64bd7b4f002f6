//! `xbond doctor [BOND]`: reads the live bond (its status, twice, a second
//! apart, to see counters move) and the host (bond0's and the slaves'
//! links, bond0's addresses), and prints each problem
//! [`xbond_core::doctor::examine`] finds with what it means and the fix.
//! Exit status: 0 healthy, 1 warnings, 2 errors.

use std::time::Duration;

use anyhow::{Context, Result};
use xbond_core::doctor::{examine, Finding, HostView, Severity};
use xbond_core::status::Status;
use xbond_xdp::netlink::Netlink;

/// One bond's examination.
#[derive(Debug, serde::Serialize)]
pub struct Report {
    /// The bond.
    pub bond: String,
    /// What is wrong, errors first.
    pub findings: Vec<Finding>,
}

impl Report {
    /// 0 healthy, 1 warnings, 2 errors.
    pub fn exit_code(&self) -> u8 {
        match self.findings.iter().map(|f| f.severity).max() {
            None => 0,
            Some(Severity::Warning) => 1,
            Some(Severity::Error) => 2,
        }
    }

    /// The report for a terminal, when there is no status to name.
    pub fn text_unreachable(&self) -> String {
        self.lines()
    }

    /// The report for a terminal.
    pub fn text(&self, now: &Status) -> String {
        if self.findings.is_empty() {
            let up = now.slaves.iter().filter(|s| s.mii_status == "up").count();
            return format!(
                "{}: healthy ({}, {up} of {} slaves up)\n",
                self.bond,
                now.mode,
                now.slaves.len()
            );
        }
        self.lines()
    }

    fn lines(&self) -> String {
        let mut o = String::new();
        for f in &self.findings {
            let sev = match f.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            o.push_str(&format!(
                "{sev} [{}]: {}\n  means: {}\n  fix: {}\n",
                f.code, f.problem, f.means, f.fix
            ));
        }
        o
    }
}

/// The report for a bond whose daemon does not answer on `socket`.
pub fn unreachable(bond: &str, socket: &str, why: &str) -> Report {
    Report {
        bond: bond.to_string(),
        findings: vec![Finding {
            severity: Severity::Error,
            code: "no-daemon".into(),
            problem: format!("{bond}: its daemon does not answer on {socket}: {why}"),
            means: "the bond is not running (a stale socket after a crash), so nothing forwards"
                .into(),
            fix: format!("systemctl status xbond@{bond}; start it (systemctl start xbond@{bond})"),
        }],
    }
}

/// The bonds with a control socket in /run/xbond.
pub fn running_bonds() -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir("/run/xbond")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().to_string();
            n.strip_suffix(".sock").map(str::to_string)
        })
        .collect();
    out.sort();
    out
}

/// Examines the bond behind `socket`; returns the report and the last status.
pub fn examine_bond(socket: &str, pause: Duration) -> Result<(Report, Status)> {
    let before = crate::control::query_status(socket)?;
    std::thread::sleep(pause);
    let now = crate::control::query_status(socket)?;
    let host = host_view(&now).context("reading the host's links")?;
    let findings = examine(&before, &now, &host);
    Ok((
        Report {
            bond: now.name.clone(),
            findings,
        },
        now,
    ))
}

/// bond0 and the slaves as netlink shows them.
fn host_view(s: &Status) -> Result<HostView> {
    let mut nl = Netlink::open()?;
    let bond = nl.link(&s.name).ok();
    let (v4, v6) = nl.addresses(&s.name).unwrap_or_default();
    let has = (s.arp_ip_target.is_empty() || !v4.is_empty())
        && (s.ns_ip6_target.is_empty() || !v6.is_empty());
    Ok(HostView {
        // An appliance's in-process upper has no bond0: the bond's own
        // carrier is all there is.
        bond_carrier: bond.as_ref().map_or(s.mii_status, |l| l.carrier),
        bond_mtu: bond.as_ref().map_or(0, |l| l.mtu),
        bond_promisc: bond.as_ref().is_some_and(|l| l.promisc),
        bond_has_address: has || bond.is_none(),
        slaves: s
            .slaves
            .iter()
            .map(|x| nl.link(&x.name).ok().map(|l| (l.mtu, l.promisc)))
            .collect(),
    })
}
