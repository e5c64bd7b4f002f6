//! `xbond failover-test --bond BOND --target IP --yes`: the runbook's test
//! procedure on the operator's own bond. A ping stream (100 a second)
//! through the bond to the target; the active slave taken administratively
//! down; the new active slave and the pings lost; the slave restored; and
//! whether the primary came back as `primary_reselect` says. The verdict is
//! the runbook's: at most 2 pings lost.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Serialize;
use xbond_core::options::PrimaryReselect;
use xbond_core::status::Status;
use xbond_xdp::netlink::Netlink;

use crate::control::query_status;
use crate::lab::wait_for;

/// Pings a second; each lost ping is this much traffic lost.
const PINGS_PER_SECOND: u64 = 100;
/// The runbook's bound: "at most 1-2 dropped pings".
pub const MAX_LOST: u64 = 2;

/// What the test found.
#[derive(Debug, Clone, Serialize)]
pub struct LiveReport {
    /// The bond.
    pub bond: String,
    /// The slave taken down.
    pub taken_down: String,
    /// The active slave the bond chose instead (None: none took over).
    pub new_active: Option<String>,
    /// Pings sent and answered.
    pub sent: u64,
    /// Pings lost.
    pub lost: u64,
    /// Milliseconds of traffic lost (lost pings at 10 ms apart).
    pub lost_ms: u64,
    /// The active slave after the slave came back.
    pub active_after: Option<String>,
    /// Whether `primary_reselect` wanted the primary back.
    pub primary_expected_back: bool,
    /// Whether it was as `primary_reselect` says.
    pub primary_as_configured: bool,
    /// Passed: a new active slave, at most [`MAX_LOST`] pings lost, the
    /// primary as configured.
    pub passed: bool,
    /// One line per problem.
    pub problems: Vec<String>,
}

/// Sets a link back up when dropped, so that an error never leaves it down.
struct Restore(String);

impl Drop for Restore {
    fn drop(&mut self) {
        if let Ok(mut nl) = Netlink::open() {
            let _ = nl.set_up(&self.0, true);
        }
    }
}

/// Pings `target` through `bond` for about `seconds` (a count, so that the
/// last replies are waited for rather than cut off).
fn ping(bond: &str, target: &str, seconds: u64) -> Result<Child> {
    let count = (seconds * PINGS_PER_SECOND).to_string();
    Command::new("ping")
        .args([
            "-n", "-q", "-I", bond, "-i", "0.01", "-W", "1", "-c", &count, target,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting ping (iputils-ping)")
}

/// "N packets transmitted, M received" of ping's summary.
fn counts(summary: &str) -> Option<(u64, u64)> {
    let line = summary
        .lines()
        .find(|l| l.contains("packets transmitted"))?;
    let mut nums = line
        .split(',')
        .filter_map(|p| p.split_whitespace().next()?.parse::<u64>().ok());
    Some((nums.next()?, nums.next()?))
}

/// What `primary_reselect` wants once `back` is up again.
fn primary_wanted(s: &Status, back: &str) -> bool {
    s.primary.as_deref() == Some(back)
        && match s.primary_reselect {
            PrimaryReselect::Always => true,
            PrimaryReselect::Better => {
                let speed = |n: &str| {
                    s.slaves
                        .iter()
                        .find(|x| x.name == n)
                        .and_then(|x| x.speed_mbps)
                };
                s.active.as_deref().is_some_and(|a| speed(back) > speed(a))
            }
            PrimaryReselect::Failure => false,
        }
}

/// Runs the procedure on the bond behind `socket`. Without `yes` it only
/// says what it would do.
pub fn run(socket: &str, target: &str, yes: bool) -> Result<LiveReport> {
    let s = query_status(socket)?;
    let Some(active) = s.active.clone() else {
        bail!(
            "{}: mode {} has no active slave to take down; the test is for active-backup, \
             balance-tlb and balance-alb",
            s.name,
            s.mode
        );
    };
    let others_up = s
        .slaves
        .iter()
        .filter(|x| x.name != active && x.mii_status == "up")
        .count();
    if others_up == 0 {
        bail!(
            "{}: no other slave is up: taking {active} down would cut the host off",
            s.name
        );
    }
    if !yes {
        bail!(
            "this takes {active}, {}'s active slave, administratively down on this host for \
             about 2 s while pinging {target}; traffic may be lost. Rerun with --yes to go ahead",
            s.name
        );
    }
    let mut nl = Netlink::open()?;
    // 1 s of pings before the cut, the takeover (downdelay), 2 s on the
    // backup, the return (updelay), and a second after: the ping count
    // covers it all.
    let wait_new = Duration::from_millis(u64::from(s.downdelay) + 3000);
    let wait_back = Duration::from_millis(u64::from(s.updelay) + 3000);
    let total =
        1 + u64::from(s.downdelay).div_ceil(1000) + 2 + u64::from(s.updelay).div_ceil(1000) + 2;
    // A signal now must not leave the slave down: it is noted, the test
    // finishes (a few seconds), and the slave is set up as always.
    let interrupted = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, interrupted.clone())
            .context("installing signal handlers")?;
    }
    let pinger = ping(&s.name, target, total)?;
    std::thread::sleep(Duration::from_secs(1));
    let restore = Restore(active.clone());
    nl.set_up(&active, false)
        .with_context(|| format!("ip link set {active} down"))?;
    let new_active = wait_for(wait_new, || {
        query_status(socket).ok()?.active.filter(|a| *a != active)
    });
    std::thread::sleep(Duration::from_secs(2));
    drop(restore);
    let expect_back = primary_wanted(&query_status(socket)?, &active);
    let came_back = wait_for(wait_back, || {
        let now = query_status(socket).ok()?;
        let up = now
            .slaves
            .iter()
            .any(|x| x.name == active && x.mii_status == "up");
        (up && (!expect_back || now.active.as_deref() == Some(active.as_str()))).then_some(now)
    });
    let out = pinger.wait_with_output().context("waiting for ping")?;
    let summary = String::from_utf8_lossy(&out.stdout);
    let (sent, received) =
        counts(&summary).with_context(|| format!("reading ping's summary: {summary}"))?;
    let after = query_status(socket)?;
    let active_after = after.active.clone();
    let as_configured =
        came_back.is_some() && (active_after.as_deref() == Some(active.as_str())) == expect_back;
    let lost = sent.saturating_sub(received);
    let mut problems = Vec::new();
    if new_active.is_none() {
        problems.push(format!(
            "no slave took over from {active}: the bond did not fail over"
        ));
    }
    if lost > MAX_LOST {
        problems.push(format!(
            "{lost} pings lost, more than the runbook's {MAX_LOST}"
        ));
    }
    if interrupted.load(std::sync::atomic::Ordering::Relaxed) {
        problems.push(format!(
            "interrupted by a signal; {active} was set up again"
        ));
    }
    if !as_configured {
        problems.push(format!(
            "after {active} came back the active slave is {}, but primary_reselect {} {}",
            active_after.as_deref().unwrap_or("none"),
            after.primary_reselect,
            if expect_back {
                "wants the primary back"
            } else {
                "keeps the backup"
            }
        ));
    }
    Ok(LiveReport {
        bond: s.name,
        taken_down: active,
        new_active,
        sent,
        lost,
        lost_ms: lost * 1000 / PINGS_PER_SECOND,
        active_after,
        primary_expected_back: expect_back,
        primary_as_configured: as_configured,
        passed: problems.is_empty(),
        problems,
    })
}

impl LiveReport {
    /// The report for a terminal.
    pub fn text(&self) -> String {
        let mut o =
            format!(
            "{}: took {} down: {}; {} of {} pings lost ({} ms of traffic); after it came back the \
             active slave is {} ({}).\n",
            self.bond,
            self.taken_down,
            self.new_active
                .as_ref()
                .map_or("no slave took over".to_string(), |n| format!("{n} took over")),
            self.lost,
            self.sent,
            self.lost_ms,
            self.active_after.as_deref().unwrap_or("none"),
            if self.primary_expected_back {
                "primary_reselect wants the primary back"
            } else {
                "primary_reselect keeps the backup"
            }
        );
        if self.passed {
            o.push_str(&format!(
                "verdict: passed (at most {MAX_LOST} pings lost, as the runbook asks)\n"
            ));
        } else {
            for p in &self.problems {
                o.push_str(&format!("problem: {p}\n"));
            }
            o.push_str("verdict: failed\n");
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::counts;

    #[test]
    fn ping_summaries_are_read() {
        let s = "--- 10.0.0.2 ping statistics ---\n812 packets transmitted, 810 received, 0.246305% packet loss, time 8123ms\n";
        assert_eq!(counts(s), Some((812, 810)));
        let s = "5 packets transmitted, 0 received, +5 errors, 100% packet loss, time 4ms\n";
        assert_eq!(counts(s), Some((5, 0)));
        assert_eq!(counts("ping: unknown host"), None);
    }
}
