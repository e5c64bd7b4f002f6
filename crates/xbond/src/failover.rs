//! Failover measurement, shared by `xbond failover-test`, the demo and the
//! benchmark: a steady numbered stream through an active-backup bond, the
//! active slave's path cut in the middle (or the daemon restarted), and the
//! frames (and so the milliseconds of traffic) that never arrived.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::control::query_status;
use crate::lab::{wait_for, Lab};
use crate::pktgen::SinkReport;

/// How the failure is detected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Detection {
    /// Carrier loss: netlink events and the workers' TX-failure hint, with
    /// `miimon` polling as the safety net.
    Carrier,
    /// The ARP monitor (`arp_interval` 100 ms, `arp_missed_max` 2,
    /// `arp_validate all`, no miimon): the path dies with carrier up.
    Arp,
    /// No failure: the daemon is restarted (SIGTERM, then a new start that
    /// adopts bond0); what is lost is the time no daemon forwards.
    Restart,
}

/// What a failover run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FailoverReport {
    /// How the failure was detected.
    pub detection: Detection,
    /// Offered rate, frames per second.
    pub rate: u64,
    /// Frames sent.
    pub sent: u64,
    /// Frames that never arrived, in all.
    pub lost: u64,
    /// The longest run of consecutive missing frames: the failover's loss
    /// (scattered losses elsewhere are the receiver's, not the bond's).
    pub failover_lost: u64,
    /// `failover_lost / rate`, in milliseconds.
    pub lost_ms: f64,
    /// Frames the bond sent on eth0 and eth1 during the run.
    pub per_link: Vec<u64>,
}

/// A lab for failover runs: namespace "host" with an active-backup bond over
/// eth0/eth1, namespace "switch" with the far ends in bridge br0 (address
/// 10.77.0.2/24, the ARP target).
#[derive(Debug)]
pub struct FailoverLab {
    /// The lab (removed on drop).
    pub lab: Lab,
    /// Host namespace.
    pub host: String,
    /// Switch namespace.
    pub sw: String,
    /// The bond's control socket.
    pub sock: String,
    exe: String,
}

impl FailoverLab {
    /// Builds the topology and starts the bond.
    pub fn new(exe: &Path, detection: Detection) -> Result<FailoverLab> {
        let mut lab = Lab::new("fo")?;
        let host = lab.netns("host")?;
        let sw = lab.netns("switch")?;
        lab.veth(&host, "eth0", &sw, "sw-p0")?;
        lab.veth(&host, "eth1", &sw, "sw-p1")?;
        lab.exec(&sw, &["ip", "link", "add", "br0", "type", "bridge"])?;
        for p in ["sw-p0", "sw-p1"] {
            lab.exec(&sw, &["ip", "link", "set", p, "master", "br0"])?;
        }
        // A fixed MAC: a bridge otherwise takes its lowest port MAC, which
        // changes when the cut port leaves it, and the stream would miss.
        lab.exec(
            &sw,
            &["ip", "link", "set", "br0", "address", "02:00:00:77:00:02"],
        )?;
        lab.exec(&sw, &["ip", "link", "set", "br0", "up"])?;
        lab.exec(&sw, &["ip", "addr", "add", "10.77.0.2/24", "dev", "br0"])?;
        let sock = lab.start_xbond(exe, &host, "xbond", &Self::config(detection))?;
        lab.exec(
            &host,
            &["ip", "addr", "add", "10.77.0.1/24", "dev", "bond0"],
        )?;
        let ready = wait_for(Duration::from_secs(10), || {
            query_status(&sock)
                .ok()
                .filter(|s| s.active.as_deref() == Some("eth0"))
        });
        anyhow::ensure!(ready.is_some(), "the bond did not make eth0 active");
        Ok(FailoverLab {
            lab,
            host,
            sw,
            sock,
            exe: exe.display().to_string(),
        })
    }

    /// The bond's configuration file.
    pub fn config(detection: Detection) -> String {
        let monitor = match detection {
            Detection::Carrier | Detection::Restart => "miimon = 100\n",
            Detection::Arp => {
                "miimon = 0\narp_interval = 100\narp_missed_max = 2\narp_validate = \"all\"\narp_ip_target = [\"10.77.0.2\"]\n"
            }
        };
        format!(
            "name = \"bond0\"\nslaves = [\"eth0\", \"eth1\"]\nmode = \"active-backup\"\nprimary = \"eth0\"\n{monitor}"
        )
    }

    /// Streams `count` frames at `rate` into bond0, cuts eth0's path after
    /// `cut_after`, and reports what was lost. With carrier detection the far
    /// end goes down (eth0 loses carrier); with ARP detection it leaves the
    /// switch and stops answering ARP (carrier stays up).
    pub fn run(
        &mut self,
        detection: Detection,
        rate: u64,
        count: u64,
        cut_after: Duration,
    ) -> Result<FailoverReport> {
        let exe = self.exe.clone();
        let br_mac = self
            .lab
            .exec(&self.sw, &["cat", "/sys/class/net/br0/address"])?
            .trim()
            .to_string();
        let expect = count.to_string();
        self.lab.spawn(
            &self.sw,
            "sink",
            &[
                &exe,
                "pktgen",
                "sink",
                "--iface",
                "br0",
                "--stream",
                "7",
                "--duration",
                "30",
                "--idle-ms",
                "700",
                "--expect",
                &expect,
            ],
        )?;
        std::thread::sleep(Duration::from_millis(300));
        let before = query_status(&self.sock)?;
        let (c, r) = (count.to_string(), rate.to_string());
        self.lab.spawn(
            &self.host,
            "sender",
            &[
                &exe,
                "pktgen",
                "send",
                "--engine",
                "af_xdp",
                "--iface",
                "bond0",
                "--dst-mac",
                &br_mac,
                "--src-ip",
                "10.77.0.1",
                "--dst-ip",
                "10.77.0.2",
                "--count",
                &c,
                "--rate",
                &r,
                "--stream",
                "7",
            ],
        )?;
        std::thread::sleep(cut_after);
        match detection {
            Detection::Carrier => {
                self.lab
                    .exec(&self.sw, &["ip", "link", "set", "sw-p0", "down"])?;
            }
            Detection::Arp => {
                self.lab
                    .exec(&self.sw, &["ip", "link", "set", "sw-p0", "arp", "off"])?;
                self.lab
                    .exec(&self.sw, &["ip", "link", "set", "sw-p0", "nomaster"])?;
            }
            Detection::Restart => {
                anyhow::ensure!(self.lab.stop("xbond")?, "xbond did not exit cleanly");
                let cfg = Self::config(detection);
                self.sock = self
                    .lab
                    .start_xbond(Path::new(&exe), &self.host, "xbond", &cfg)?;
            }
        }
        let sent = self.lab.wait("sender", Duration::from_secs(60))?;
        let out = self.lab.wait("sink", Duration::from_secs(60))?;
        let rep: SinkReport =
            serde_json::from_str(out.trim()).with_context(|| format!("sink output: {out}"))?;
        let sent: serde_json::Value = serde_json::from_str(sent.trim()).unwrap_or_default();
        Ok(FailoverReport {
            detection,
            rate,
            sent: sent["sent"].as_u64().unwrap_or(count),
            lost: rep.lost,
            failover_lost: rep.longest_gap,
            lost_ms: rep.longest_gap as f64 * 1000.0 / rate.max(1) as f64,
            per_link: query_status(&self.sock)?
                .slaves
                .iter()
                .zip(&before.slaves)
                .map(|(a, b)| a.runtime.tx_frames.saturating_sub(b.runtime.tx_frames))
                .collect(),
        })
    }
}
